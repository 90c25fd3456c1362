package jsonobject

import (
	"math/bits"
	"strings"
	"testing"
)

// flatCases are inputs near the edges of the fast path: each must get the
// same answer from Check as from the general checker alone.
var flatCases = []string{
	`{}`, ` {} `, "\t{\n}\r", `{"a":1}`, `{"a":"b"}`, `{"a":true,"b":false,"c":null}`,
	`{"name":"Alice","status":"online","joined_at":"2026-11-28T04:00:00Z"}`,
	`{"a":-0.5e+10,"b":0,"c":12,"d":1E5}`, `{ "a" : "b" , "c" : 1 }`,
	`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8}`,       // flatKeys keys
	`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9}`, // one more
	`{"a":1,"a":2}`, `{"ab":1,"ba":2,"ab":3}`, `{"":1,"":2}`, `{"":1}`,
	`{"a":"\""}`, `{"a":"x\"}`, `{"a\"":1}`, `{"a":"\\"}`, `{"a":"\u0041"}`, `{"\u0061":1,"a":2}`,
	"{\"a\":\"\x1f\"}", "{\"a\":\"\x7f\"}", `{"a":"é"}`, "{\"a\":\"\xff\"}", `{"é":1,"é":2}`,
	`{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`, `{"a":tru}`, `{"a":nul}`, `{"a":falsey}`,
	`{"a":[1]}`, `{"a":{}}`, `{"a":{"a":1}}`, `{"a":1,}`, `{"a" 1}`, `{"a":1}x`, `{"a":1} `, `{"a":1`,
	`{"a":"01234567890123456789012345678901234567"}`, `{"0123456789abcdef":"x"}`,
	`{"a":"01234567\"}`, `{"a":"0123456\\"}`, `{"a":"01234567` + "\x00" + `"}`,
	`{`, `{"`, `{"a`, `{"a"`, `{"a":`, `{"a":"`, `[]`, `""`, ``, ` `,
}

func sameResult(t *testing.T, b []byte) {
	t.Helper()
	s1, e1, err1 := Check(b)
	s2, e2, err2 := checkGeneral(b)
	if err1 != err2 || err1 == nil && (s1 != s2 || e1 != e2) {
		t.Fatalf("Check(%q) = %d, %d, %v; general checker: %d, %d, %v", b, s1, e1, err1, s2, e2, err2)
	}
}

func TestFlatAgreesWithGeneral(t *testing.T) {
	for _, in := range flatCases {
		sameResult(t, []byte(in))
	}
}

// TestFlatTakesTypicalMetas checks that the fast path is taken where it is
// meant to be, so that it cannot silently stop working.
func TestFlatTakesTypicalMetas(t *testing.T) {
	for _, in := range []string{
		`{}`, ` {"a":1} `, `{"name":"Alice","status":"online","joined_at":"2026-11-28T04:00:00Z"}`,
		`{"online_at":1732766400,"typing":false,"device":null,"score":-1.5e3}`,
	} {
		s, e, ok := checkFlat([]byte(in))
		if !ok || in[s:e] != strings.TrimSpace(in) {
			t.Errorf("checkFlat(%q) = %d, %d, %v", in, s, e, ok)
		}
	}
	for _, in := range []string{`{"a":{}}`, `{"a":"\n"}`, `{"é":1}`, `{"a":1,"a":1}`} {
		if _, _, ok := checkFlat([]byte(in)); ok {
			t.Errorf("checkFlat(%q) accepted input the fast path does not handle", in)
		}
	}
}

// TestSpecialFindsFirstByte compares special with a byte-by-byte scan for
// every byte value in every position.
func TestSpecialFindsFirstByte(t *testing.T) {
	w := []byte("abcdefgh")
	for pos := range 8 {
		for c := range 256 {
			for _, fill := range []byte{'a', 0, '"', 0xff} {
				for i := range w {
					w[i] = 'a'
					if i > pos {
						w[i] = fill
					}
				}
				w[pos] = byte(c)
				want := -1
				for i, ch := range w {
					if !plain[ch] {
						want = i
						break
					}
				}
				m := special(uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
					uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56)
				got := -1
				if m != 0 {
					got = bits.TrailingZeros64(m) >> 3
				}
				if got != want {
					t.Fatalf("special(%q) finds byte %d, want %d", w, got, want)
				}
			}
		}
	}
}

// FuzzFlatAgrees checks that the fast path never changes Check's answer.
func FuzzFlatAgrees(f *testing.F) {
	for _, in := range flatCases {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, b []byte) { sameResult(t, b) })
}
