package jsonobject

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheck(t *testing.T) {
	deep := strings.Repeat(`{"a":`, MaxDepth) + "1" + strings.Repeat("}", MaxDepth)
	tooDeep := strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1)
	deepArr := `{"a":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + "}"
	var many, tooMany strings.Builder
	many.WriteString("{")
	tooMany.WriteString("{")
	for i := range MaxKeys + 1 {
		if i > 0 {
			tooMany.WriteString(",")
			if i < MaxKeys {
				many.WriteString(",")
			}
		}
		k := `"k` + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676)) + `":0`
		tooMany.WriteString(k)
		if i < MaxKeys {
			many.WriteString(k)
		}
	}
	many.WriteString("}")
	tooMany.WriteString("}")

	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty object", `{}`, nil},
		{"typical", `{"name":"Alice","status":"online"}`, nil},
		{"whitespace around", " \n{ \"a\" : [1, 2.5e-3, -0, true, false, null, \"x\"] }\t", nil},
		{"nested", `{"a":{"b":{"c":[{"d":"e"}]}}}`, nil},
		{"escapes", `{"a":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}`, nil},
		{"utf8", `{"名前":"世界🎉"}`, nil},
		{"same key in different objects", `{"a":{"a":1},"b":{"a":2}}`, nil},
		{"same key after nested object closes", `{"x":{"a":1,"b":2},"a":3}`, nil},
		{"max depth", deep, nil},
		{"max depth arrays", deepArr, nil},
		{"max keys", many.String(), nil},

		{"nil", ``, ErrNotObject},
		{"array", `[1]`, ErrNotObject},
		{"string", `"x"`, ErrNotObject},
		{"number", `1`, ErrNotObject},
		{"null", `null`, ErrNotObject},
		{"two objects", `{}{}`, ErrTrailingData},
		{"trailing garbage", `{"a":1}x`, ErrTrailingData},
		{"unclosed", `{"a":1`, ErrSyntax},
		{"trailing comma", `{"a":1,}`, ErrSyntax},
		{"missing colon", `{"a" 1}`, ErrSyntax},
		{"unquoted key", `{a:1}`, ErrSyntax},
		{"single quotes", `{'a':1}`, ErrSyntax},
		{"bad literal", `{"a":tru}`, ErrSyntax},
		{"leading zero", `{"a":01}`, ErrSyntax},
		{"bare minus", `{"a":-}`, ErrSyntax},
		{"bad fraction", `{"a":1.}`, ErrSyntax},
		{"bad exponent", `{"a":1e}`, ErrSyntax},
		{"NaN", `{"a":NaN}`, ErrSyntax},
		{"mismatched close", `{"a":[1}`, ErrSyntax},
		{"raw newline in string", "{\"a\":\"x\ny\"}", ErrSyntax},
		{"bad escape", `{"a":"\x"}`, ErrSyntax},
		{"short unicode escape", `{"a":"\u12"}`, ErrSyntax},
		{"invalid utf8", "{\"a\":\"\xff\"}", ErrUTF8},
		{"invalid utf8 in key", "{\"\xc3\":1}", ErrUTF8},
		{"raw surrogate", "{\"a\":\"\xed\xa0\x80\"}", ErrUTF8},
		{"lone high surrogate", `{"a":"\ud800"}`, ErrUTF8},
		{"lone low surrogate", `{"a":"\udc00"}`, ErrUTF8},
		{"high then non-low", `{"a":"\ud800\u0041"}`, ErrUTF8},
		{"too deep", tooDeep, ErrTooDeep},
		{"too many keys", tooMany.String(), ErrTooManyKeys},
		{"duplicate key", `{"a":1,"a":2}`, ErrDuplicateKey},
		{"duplicate key escaped", `{"a":1,"\u0061":2}`, ErrDuplicateKey},
		{"duplicate key nested", `{"x":{"b":1,"b":1}}`, ErrDuplicateKey},
		{"duplicate key surrogate pair", `{"😀":1,"\ud83d\ude00":2}`, ErrDuplicateKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, end, err := Check([]byte(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Check(%.60q) = %v, want %v", tt.in, err, tt.want)
			}
			if err == nil {
				trimmed := strings.TrimSpace(tt.in)
				if got := tt.in[start:end]; got != trimmed {
					t.Fatalf("bounds give %q, want %q", got, trimmed)
				}
			}
		})
	}
}

func TestCheckAllocatesNothing(t *testing.T) {
	ok := []byte(`{"name":"Alice","status":"online","tags":["a","b"],"n":1.5}`)
	bad := []byte(`{"a":1,"a":2}`)
	if n := testing.AllocsPerRun(100, func() {
		Check(ok)
		Check(bad)
	}); n != 0 {
		t.Fatalf("Check allocated %v times", n)
	}
}

// hasDuplicateKeys reports whether any object in v repeats a key, using
// encoding/json's decoder as the reference.
func hasDuplicateKeys(b []byte) bool {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	type frame struct {
		obj    bool
		keys   map[string]bool
		expKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		top := func() *frame {
			if len(stack) == 0 {
				return nil
			}
			return stack[len(stack)-1]
		}
		f := top()
		if f != nil && f.obj && f.expKey {
			if s, ok := tok.(string); ok {
				if f.keys[s] {
					return true
				}
				f.keys[s] = true
				f.expKey = false
				continue
			}
		}
		if f != nil && f.obj && !f.expKey {
			f.expKey = true
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, keys: map[string]bool{}, expKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if f := top(); f != nil && f.obj {
				f.expKey = true
			}
		}
	}
}

// FuzzCheck compares Check with encoding/json: whatever Check accepts is a
// valid JSON object with valid UTF-8 and unique keys, and a valid object
// within the limits is accepted.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":{"b":[1,2,{"c":null}]}}`, `{"a":"\ud83d\ude00"}`,
		`{"a":1,"a":2}`, `[1]`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", ` {"x":-1.5e+10} `, `{"a":1}{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		start, end, err := Check(b)
		valid := json.Valid(b)
		if err == nil {
			if !valid {
				t.Fatalf("Check accepted invalid JSON %q", b)
			}
			if !utf8.Valid(b) {
				t.Fatalf("Check accepted invalid UTF-8 %q", b)
			}
			var m map[string]any
			if err := json.Unmarshal(b[start:end], &m); err != nil {
				t.Fatalf("accepted %q is not an object: %v", b, err)
			}
			if hasDuplicateKeys(b) {
				t.Fatalf("Check accepted duplicate keys in %q", b)
			}
			if strings.Contains(string(b), `\ud`) || strings.Contains(string(b), `\uD`) {
				var v any
				json.Unmarshal(b, &v)
				if out, _ := json.Marshal(v); strings.ContainsRune(string(out), utf8.RuneError) && !strings.ContainsRune(string(b), utf8.RuneError) && !strings.Contains(strings.ToLower(string(b)), `\ufffd`) {
					t.Fatalf("Check accepted a lone surrogate in %q", b)
				}
			}
			return
		}
		if errors.Is(err, ErrSyntax) || errors.Is(err, ErrTrailingData) {
			if valid {
				t.Fatalf("Check(%q) = %v, but encoding/json accepts it", b, err)
			}
		}
		if errors.Is(err, ErrNotObject) && valid {
			var m map[string]any
			if json.Unmarshal(b, &m) == nil && m != nil {
				t.Fatalf("Check(%q) = ErrNotObject for an object", b)
			}
		}
		if errors.Is(err, ErrDuplicateKey) && !hasDuplicateKeys(b) {
			t.Fatalf("Check(%q) = ErrDuplicateKey, reference finds none", b)
		}
	})
}
