package engine

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestZeroEngineSaysUseNew calls every method of a zero Engine and of a nil
// *Engine: each must panic with the message that names New, not fail with
// a symptom (a zero Engine's Track said "topic too long", and List
// dereferenced nil).
func TestZeroEngineSaysUseNew(t *testing.T) {
	var snap Snapshot
	var ch Changes
	var page Page
	buf := make([]byte, 64)
	for _, e := range []*Engine{{}, nil} {
		methods := map[string]func(){
			"Config":         func() { e.Config() },
			"Track":          func() { _ = e.Track(1, "room", "k", nil) },
			"TrackRef":       func() { _, _, _ = e.TrackRef(1, "room", "k", nil) },
			"TrackWithRef":   func() { _, _ = e.TrackWithRef(1, "room", "k", nil, 7) },
			"Untrack":        func() { e.Untrack(1, "room") },
			"UntrackAll":     func() { e.UntrackAll(1) },
			"SocketEntries":  func() { e.SocketEntries(1, func(string, string, []byte, uint64) bool { return true }) },
			"Count":          func() { e.Count("room") },
			"Len":            func() { e.Len() },
			"Cap":            func() { e.Cap() },
			"SocketLen":      func() { e.SocketLen(1) },
			"Stats":          func() { e.Stats() },
			"AppendList":     func() { e.AppendList(nil, "room") },
			"List":           func() { _, _ = e.List("room", buf) },
			"AppendDiff":     func() { e.AppendDiff(nil, "room") },
			"Diff":           func() { _, _ = e.Diff("room", buf) },
			"Snapshot":       func() { e.Snapshot(&snap, "room") },
			"ChangesSince":   func() { e.ChangesSince(&ch, "room", Cursor{}) },
			"ChangesBetween": func() { e.ChangesBetween(&ch, "room", Cursor{}, Cursor{}) },
			"AppendChanges":  func() { e.AppendChanges(nil, "room", Cursor{}) },
			"ListPage":       func() { _ = e.ListPage(&page, "room", PageCursor{}, 10) },
			"AppendListPage": func() { _, _, _ = e.AppendListPage(nil, "room", PageCursor{}, 10) },
			"CountKeys":      func() { e.CountKeys("room") },
		}
		typ := reflect.TypeOf(e)
		for i := range typ.NumMethod() {
			if _, ok := methods[typ.Method(i).Name]; !ok {
				t.Errorf("method %s is not checked", typ.Method(i).Name)
			}
		}
		for name, call := range methods {
			msg := func() (msg string) {
				defer func() { msg = fmt.Sprint(recover()) }()
				call()
				return "no panic"
			}()
			if !strings.Contains(msg, "engine.New") {
				t.Errorf("%s of %#v: %s, want a panic that says to use engine.New", name, e, msg)
			}
		}
	}
}
