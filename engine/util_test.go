package engine

import (
	"bytes"
	"errors"
	"io"
)

var errTrailing = errors.New("trailing data")

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
