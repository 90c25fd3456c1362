package baseline

import "testing"

func TestRegistry(t *testing.T) {
	r := New(2)
	if err := r.Track(1, "room", "a", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := r.Track(2, "room", "b", nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Track(3, "room", "c", nil); err != ErrFull {
		t.Fatalf("third Track = %v, want ErrFull", err)
	}
	if err := r.Track(1, "room", "a2", []byte(`{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	if err := r.Track(1, "room", "a", []byte(`[1]`)); err != ErrInvalid {
		t.Fatalf("array meta = %v, want ErrInvalid", err)
	}
	if got, want := string(r.AppendList(nil, "room")), `[{"key":"a2","meta":{"n":2}},{"key":"b","meta":{}}]`; got != want {
		t.Fatalf("List = %s, want %s", got, want)
	}
	if got, want := string(r.AppendDiff(nil, "room")), `{"joins":[{"key":"a2","meta":{"n":2}},{"key":"b","meta":{}}],"leaves":[]}`; got != want {
		t.Fatalf("Diff = %s, want %s", got, want)
	}
	if r.UntrackAll(1) != 1 || !r.Untrack(2, "room") || r.Untrack(2, "room") || r.Len() != 0 || r.Count("room") != 0 {
		t.Fatal("untrack bookkeeping is wrong")
	}
	if string(r.AppendList(nil, "room")) != "[]" {
		t.Fatal("empty list is not []")
	}
}
