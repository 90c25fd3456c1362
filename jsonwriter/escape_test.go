package jsonwriter

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendStringEscapes(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", `""`},
		{"user_42", `"user_42"`},
		{`a"b`, `"a\"b"`},
		{`a\b`, `"a\\b"`},
		{"tab\there", `"tab\there"`},
		{"nl\ncr\r", `"nl\ncr\r"`},
		{"\b\f", `"\b\f"`},
		{"\x00\x01\x1f", `"\u0000\u0001\u001f"`},
		{"\x7f", "\"\x7f\""},
		{"line\u2028para\u2029", `"line\u2028para\u2029"`},
		{"héllo, 世界 🎉", `"héllo, 世界 🎉"`},
		{"bad\xffbyte", `"bad\ufffdbyte"`},
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`}, // a UTF-8 encoded surrogate is invalid
		{"</script>", `"</script>"`},
	}
	for _, tt := range tests {
		got := string(AppendString(nil, tt.in))
		if got != tt.want {
			t.Errorf("AppendString(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if n := EscapedLen(tt.in) + 2; n != len(got) {
			t.Errorf("EscapedLen(%q)+2 = %d, output is %d bytes", tt.in, n, len(got))
		}
		if NeedsEscape(tt.in) != (got != `"`+tt.in+`"`) {
			t.Errorf("NeedsEscape(%q) = %v, output %s", tt.in, NeedsEscape(tt.in), got)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("AppendString(%q) = %s is not valid JSON", tt.in, got)
		}
	}
}

// TestNeedsEscapeEveryPosition puts each byte value at each position of
// strings longer than one word, so that both the word loop and the byte
// loop see it.
func TestNeedsEscapeEveryPosition(t *testing.T) {
	for _, n := range []int{7, 8, 9, 16, 23} {
		for pos := range n {
			for c := range 256 {
				b := []byte(strings.Repeat("a", n))
				b[pos] = byte(c)
				s := string(b)
				out := AppendString(nil, s)
				if want := string(out[1:len(out)-1]) != s; NeedsEscape(s) != want {
					t.Fatalf("NeedsEscape(%q) = %v, want %v", s, !want, want)
				}
			}
			s := strings.Repeat("a", pos) + " " + strings.Repeat("b", n)
			if !NeedsEscape(s) {
				t.Fatalf("NeedsEscape(%q) = false", s)
			}
		}
	}
}

func TestAppendStringBytesMatchesString(t *testing.T) {
	in := []byte("k\"ey\u2028")
	if got, want := string(AppendStringBytes([]byte("x"), in)), "x"+string(AppendString(nil, string(in))); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestAppendStringAllocatesNothing(t *testing.T) {
	buf := make([]byte, 0, 256)
	s := "key \"with\" \\ escapes \u2028 and \x01"
	if n := testing.AllocsPerRun(100, func() { buf = AppendString(buf[:0], s) }); n != 0 {
		t.Fatalf("AppendString allocated %v times", n)
	}
}

// FuzzAppendString checks the escaping against encoding/json: the output is
// valid JSON, and for valid UTF-8 it decodes back to the input.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `"\`, "\u2028\u2029", "\x00\x1f\x7f", "\xff\xfe", "\xed\xa0\x80", "日本語"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendString(nil, s)
		if !json.Valid(out) {
			t.Fatalf("AppendString(%q) = %q, not valid JSON", s, out)
		}
		if len(out) != EscapedLen(s)+2 {
			t.Fatalf("EscapedLen(%q) = %d, output %d bytes", s, EscapedLen(s), len(out))
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("decode %q: %v", out, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("round trip of %q gave %q", s, back)
		}
		if NeedsEscape(s) != (string(out[1:len(out)-1]) != s) {
			t.Fatalf("NeedsEscape(%q) = %v, output %q", s, NeedsEscape(s), out)
		}
		for i := 0; i+2 < len(out); i++ {
			if out[i] == 0xe2 && out[i+1] == 0x80 && (out[i+2] == 0xa8 || out[i+2] == 0xa9) {
				t.Fatalf("output %q holds a raw U+2028/U+2029", out)
			}
		}
	})
}
