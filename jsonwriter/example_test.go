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
	w.BeginObject()
	w.Key("key")
	w.String("user_42")
	w.Key("meta")
	w.RawValue([]byte(`{"name":"Alice"}`))
	w.EndObject()
	fmt.Println(string(w.Bytes()), w.Err())
	// Output: {"key":"user_42","meta":{"name":"Alice"}} <nil>
}
