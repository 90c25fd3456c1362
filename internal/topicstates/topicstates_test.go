package topicstates

import "testing"

func TestCheck(t *testing.T) {
	log := []Op{
		{Kind: Join, Key: "a", Meta: `{"v":1}`},
		{Kind: Join, Key: "b", Meta: `{}`},
		{Kind: Update, K: 0, Key: "a", Meta: `{"v":2}`},
		{Kind: Remove, K: 1},
	}
	var reads []uint64
	for _, body := range []string{``, ``, `{"key":"a","meta":{"v":1}},{"key":"b","meta":{}}`, `{"key":"a","meta":{"v":2}}`} {
		reads = AddRead(reads, []byte(body))
	}
	if len(reads) != 3 {
		t.Fatalf("kept %d reads, want 3: equal reads in a row are kept once", len(reads))
	}
	if err := Check(log, reads); err != nil {
		t.Fatal(err)
	}
	// b alone: a state the topic never held.
	if err := Check(log, AddRead(reads, []byte(`{"key":"b","meta":{}}`))); err == nil {
		t.Fatal("a read of no state passed")
	}
	if err := Check(log, AddRead(nil, nil)); err == nil {
		t.Fatal("reads that never found an entry passed")
	}
}
