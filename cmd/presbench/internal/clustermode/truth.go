package clustermode

import (
	"fmt"

	"github.com/presencekit/presence/engine"
)

// mismatch is a node's view of a topic that differs from the truth.
type mismatch struct {
	node      int
	topic     string
	got, want int // entries seen, entries the owners hold
}

func (m mismatch) String() string {
	return fmt.Sprintf("node %s, topic %s: %d entries seen, %d held by their owners (or the same number, some differing)", nodeName(m.node), m.topic, m.got, m.want)
}

// nodeName names the i-th node of a scale run.
func nodeName(i int) string { return fmt.Sprintf("n%d", i) }

// viewsAgainstTruth compares every node's view of each topic it is in with
// the truth (with everyone, every node's view of every topic, as full
// replication promises): the union of the entries the topic's owners (topicMembers,
// by index into nodes) hold under their
// local sockets, each with its key, ref and meta. It returns the views
// that differ (all of them counted, the first few kept) and how many
// views it compared. Writers must be stopped for the answer to mean
// anything; while deltas are still in flight it reports differences.
func viewsAgainstTruth(nodes []*engine.Engine, topicMembers [][]int, everyone bool, topicName func(int) string) (bad []mismatch, nbad, checked int) {
	var snap engine.Snapshot
	truth := map[string]string{}
	all := make([]int, len(nodes))
	for i := range all {
		all[i] = i
	}
	for t, members := range topicMembers {
		topic := topicName(t)
		clear(truth)
		for _, nd := range members {
			nodes[nd].Snapshot(&snap, topic)
			for _, en := range snap.Entries {
				if en.Socket < engine.FirstRemoteSocket {
					truth[string(en.Key)] = fmt.Sprintf("%d %s", en.Ref, en.Meta)
				}
			}
		}
		viewers := members
		if everyone {
			viewers = all
		}
		for _, nd := range viewers {
			nodes[nd].Snapshot(&snap, topic)
			checked++
			same := len(snap.Entries) == len(truth)
			for i := 0; same && i < len(snap.Entries); i++ {
				en := snap.Entries[i]
				same = truth[string(en.Key)] == fmt.Sprintf("%d %s", en.Ref, en.Meta)
			}
			if !same {
				nbad++
				if len(bad) < 5 {
					bad = append(bad, mismatch{node: nd, topic: topic, got: len(snap.Entries), want: len(truth)})
				}
			}
		}
	}
	return bad, nbad, checked
}
