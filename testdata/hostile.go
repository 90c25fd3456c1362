// Package testdata holds the hostile-input catalogue, hostile.json, and
// its loader: inputs an attacker or a broken client might send, each with
// the outcome expected. The engine's and the channel layer's tests run it,
// importing this package under the name hostile. The catalogue is embedded,
// so the loader does not depend on the working directory. Tests only: the
// go tool skips testdata directories in ./... patterns, and nothing outside
// tests imports it.
package testdata

import (
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

//go:embed hostile.json
var catalogue []byte

// Case is one entry of the catalogue.
type Case struct {
	Name   string                     `json:"name"`
	Layer  string                     `json:"layer"` // "engine" or "server"
	Op     string                     `json:"op"`
	Expect string                     `json:"expect"`
	Times  int                        `json:"times"`
	Config map[string]int             `json:"config"`
	Fields map[string]json.RawMessage `json:"-"`
}

// Value returns field as bytes. A field is a JSON string, or an object:
// {"hex": "..."} for bytes JSON cannot hold, or {"prefix", "repeat",
// "times", "suffix"} for large inputs. A missing field gives def.
func (c *Case) Value(field, def string) ([]byte, error) {
	raw, ok := c.Fields[field]
	if !ok {
		return []byte(def), nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []byte(s), nil
	}
	var spec struct {
		Hex    *string `json:"hex"`
		Prefix string  `json:"prefix"`
		Repeat string  `json:"repeat"`
		Times  int     `json:"times"`
		Suffix string  `json:"suffix"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("%s: field %s: %w", c.Name, field, err)
	}
	if spec.Hex != nil {
		return hex.DecodeString(*spec.Hex)
	}
	return []byte(spec.Prefix + strings.Repeat(spec.Repeat, spec.Times) + spec.Suffix), nil
}

// Load reads the catalogue's cases for one layer.
func Load(layer string) ([]Case, error) {
	var raws []map[string]json.RawMessage
	if err := json.Unmarshal(catalogue, &raws); err != nil {
		return nil, err
	}
	var out []Case
	for _, raw := range raws {
		var c Case
		b, _ := json.Marshal(raw)
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, err
		}
		c.Fields = raw
		if c.Layer == layer {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no %s cases in hostile.json", layer)
	}
	return out, nil
}
