package phx

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestParseFrame(t *testing.T) {
	f, err := ParseFrame([]byte(`["1","2","room:lobby","phx_join",{"a":[1]}]`))
	if err != nil || f.JoinRef != MakeRef("1") || f.Ref != MakeRef("2") || f.Topic != "room:lobby" || f.Event != "phx_join" || string(f.Payload) != `{"a":[1]}` {
		t.Fatalf("%+v %v", f, err)
	}
	f, err = ParseFrame([]byte(` [null, "5", "phoenix", "heartbeat", {}] `))
	if err != nil || f.JoinRef.Valid || f.Ref.S != "5" {
		t.Fatalf("%+v %v", f, err)
	}
	for _, bad := range []string{``, `[]`, `{}`, `[null,"1","t","e"]`, `[null,"1","t","e",{},1]`, `[1,"1","t","e",{}]`,
		`[null,"1","","e",{}]`, `[null,"1","t",null,{}]`, `[null,"1","t","e",]`, "[null,\"1\",\"t\xff\",\"e\",{}]"} {
		if _, err := ParseFrame([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseFrame(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestAppendFrame(t *testing.T) {
	got := string(AppendFrame(nil, Ref{}, MakeRef("3"), "room:\"x\"", "new_msg", []byte(`{"body":"hi"}`)))
	if want := `[null,"3","room:\"x\"","new_msg",{"body":"hi"}]`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if got := string(AppendFrame(nil, MakeRef("1"), MakeRef("1"), "t", "phx_close", nil)); got != `["1","1","t","phx_close",{}]` {
		t.Fatalf("empty payload: %s", got)
	}
}

// FuzzParseFrame: the parser never panics, and whatever it accepts
// survives a round trip through AppendFrame.
func FuzzParseFrame(f *testing.F) {
	for _, s := range []string{
		`["1","1","room:lobby","phx_join",{}]`, `[null,"2","phoenix","heartbeat",{}]`,
		`[null,null,"t","e",[1,2,{"a":null}]]`, `["\u2028","1","t","e","str"]`, `[null,"1","t","e",{}`,
		"[null,\"1\",\"t\xff\",\"e\",{}]", `[1,2,3,4,5]`, `[null,"1","t","e",{},{}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ParseFrame(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if !json.Valid(fr.Payload) || fr.Topic == "" || fr.Event == "" {
			t.Fatalf("accepted %q as %+v", b, fr)
		}
		again, err := ParseFrame(AppendFrame(nil, fr.JoinRef, fr.Ref, fr.Topic, fr.Event, fr.Payload))
		if err != nil || again.JoinRef != fr.JoinRef || again.Ref != fr.Ref || again.Topic != fr.Topic ||
			again.Event != fr.Event || string(again.Payload) != string(fr.Payload) {
			t.Fatalf("round trip of %q: %+v, %v", b, again, err)
		}
	})
}
