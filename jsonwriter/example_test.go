package jsonwriter_test

import (
	"fmt"

	"github.com/presencekit/presence/jsonwriter"
)

func ExampleAppendString() {
	buf := jsonwriter.AppendString(nil, "say \"hi\"\u2028")
	fmt.Println(string(buf))
	// Output: "say \"hi\"\u2028"
}

func ExampleWriter() {
	buf := make([]byte, 0, 64)
	var w jsonwriter.Writer
	w.Reset(buf, cap(buf)) // never reallocates buf
	w.RawString(`{"key":`)
	w.QuotedString("user_42")
	w.RawString(`,"meta":`)
	w.Raw([]byte(`{"name":"Alice"}`))
	w.Byte('}')
	fmt.Println(string(w.Bytes()), w.Err())

	w.Reset(buf, 8) // too small: the output is reported, never cut
	w.RawString(`{"key":`)
	w.QuotedString("user_42")
	fmt.Println(w.Err())
	// Output:
	// {"key":"user_42","meta":{"name":"Alice"}} <nil>
	// short buffer
}
