package runinfo

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, "engine", map[string]float64{"ops_per_s": 1.5}); err != nil {
		t.Fatal(err)
	}
	env, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]float64
	if env.Schema != Schema || env.Mode != "engine" || env.CPU != CPU() || env.Cores < 1 || env.GOMAXPROCS < 1 ||
		!strings.HasPrefix(env.Go, "go") || json.Unmarshal(env.Report, &rep) != nil || rep["ops_per_s"] != 1.5 {
		t.Fatalf("%+v", env)
	}
	if !strings.Contains(Line(), CPU()) {
		t.Fatalf("Line() = %q", Line())
	}
}

func TestReadJSONRefusesOtherJSON(t *testing.T) {
	for _, in := range []string{`[1,2]`, `{"runs":[]}`, `{"schema":1,"mode":"engine"}`} {
		if _, err := ReadJSON(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", in)
		} else if in != `[1,2]` && !errors.Is(err, ErrNotEnvelope) {
			t.Errorf("%s: %v, want ErrNotEnvelope", in, err)
		}
	}
}
