package channel

import (
	"errors"
	"fmt"
)

// ErrInvalidConfig is what NewServer returns, wrapped with the field at
// fault, for a Config it cannot serve.
var ErrInvalidConfig = errors.New("channel: invalid config")

// configError is ErrInvalidConfig with what is wrong, in one line.
type configError struct{ what string }

func (c *configError) Error() string        { return ErrInvalidConfig.Error() + ": " + c.what }
func (c *configError) Is(target error) bool { return target == ErrInvalidConfig }

func badConfig(format string, args ...any) error {
	return &configError{fmt.Sprintf(format, args...)}
}
