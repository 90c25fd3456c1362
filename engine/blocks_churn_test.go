package engine

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presencekit/presence/internal/topicstates"
	"github.com/presencekit/presence/jsonwriter"
)

// TestBlockReadsAreStatesUnderChurn runs one writer per topic, each driving
// its topic into big blocks and out again (joins, updates that change an
// entry's length anywhere in it, removals from the middle, emptying and
// refilling), while readers call List, Diff and Snapshot on every topic.
// Each read must be exactly a state its topic went through.
func TestBlockReadsAreStatesUnderChurn(t *testing.T) {
	for _, cfg := range []Config{
		{Capacity: 256, MaxPerSocket: 256, MaxMetaLen: 600, Shards: 1},
		{Capacity: 128, MaxPerSocket: 128, MaxMetaLen: 2 << 10, MaxKeyLen: 200, Shards: 2},
	} {
		t.Run(fmt.Sprint("meta", cfg.MaxMetaLen), func(t *testing.T) {
			churnEngine(t, mustNew(t, cfg))
		})
	}
}

func churnEngine(t *testing.T, e *Engine) {
	type entry struct {
		socket    SocketID
		key, meta string
	}
	ops := 600
	if testing.Short() || raceEnabled {
		ops = 200
	}
	minReads := int64(30)
	if raceEnabled {
		minReads = 10
	}
	cfg := e.Config()
	topics := []string{"a", "b", "c"}
	logs := make([][]topicstates.Op, len(topics))
	reads := make([][]uint64, len(topics))
	var readsMu sync.Mutex
	// Reads of each topic that found entries; the writers start once
	// the readers have, and go on until their topic was read enough.
	readCount := make([]atomic.Int64, len(topics))
	var started sync.WaitGroup
	started.Add(2)
	done := make(chan struct{})
	var writers, readers sync.WaitGroup
	for wi, topic := range topics {
		rng := rand.New(rand.NewPCG(uint64(wi), 17))
		writers.Go(func() {
			var members []entry
			log := make([]topicstates.Op, 0, 4*ops)
			meta := func() string {
				n := rng.IntN(cfg.MaxMetaLen - len(`{"m":""}`) + 1)
				if rng.IntN(3) == 0 {
					n %= 40
				}
				return `{"m":"` + strings.Repeat(string(rune('a'+n%26)), n) + `"}`
			}
			remove := func(k int) {
				if !e.Untrack(members[k].socket, topic) {
					t.Errorf("%s: Untrack found nothing", topic)
				}
				members = slices.Delete(members, k, k+1)
				log = append(log, topicstates.Op{Kind: topicstates.Remove, K: k})
			}
			next := 0
			started.Wait()
			// On a loaded machine the readers may get no processor for a
			// while: the writers wait for them up to a deadline.
			deadline := time.Now().Add(3 * time.Second)
			for o := 0; o < ops || readCount[wi].Load() < minReads && (o%64 != 0 || time.Now().Before(deadline)); o++ {
				switch r := rng.IntN(10); {
				case r < 3 && len(members) < max(1, cfg.Capacity/len(topics)): // a share of the slots each
					next++
					key := fmt.Sprint(topic, next)
					if rng.IntN(4) == 0 {
						key = strings.Repeat("\x01", min(cfg.MaxKeyLen-len(key), 30)) + key
					}
					en := entry{SocketID(wi)<<32 | SocketID(next), key, meta()}
					if err := e.Track(en.socket, topic, en.key, []byte(en.meta)); err == nil {
						members = append(members, en)
						log = append(log, topicstates.Op{Kind: topicstates.Join, Key: en.key, Meta: en.meta})
					} else if err != ErrFull {
						t.Error(err)
						return
					}
				case r < 8 && len(members) > 0:
					k := rng.IntN(len(members))
					members[k].meta = meta()
					if err := e.Track(members[k].socket, topic, members[k].key, []byte(members[k].meta)); err != nil {
						t.Error(err)
						return
					}
					log = append(log, topicstates.Op{Kind: topicstates.Update, K: k, Key: members[k].key, Meta: members[k].meta})
				case r < 9 && len(members) > 0 && (len(members) > 30 || rng.IntN(2) == 0):
					remove(rng.IntN(len(members)))
				case len(members) > 0 && rng.IntN(20) == 0:
					for len(members) > 0 {
						remove(0)
					}
				}
			}
			for len(members) > 0 {
				remove(0)
			}
			logs[wi] = log
		})
	}
	for ri := range 2 {
		readers.Go(func() {
			var buf, w []byte
			var snap Snapshot
			mine := make([][]uint64, len(topics))
			defer func() {
				readsMu.Lock()
				for i := range mine {
					reads[i] = append(reads[i], mine[i]...)
				}
				readsMu.Unlock()
			}()
			started.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				ti := (i + ri) % len(topics)
				var got []byte
				switch i / len(topics) % 3 {
				case 0:
					buf = e.AppendList(buf[:0], topics[ti])
					got = buf[1 : len(buf)-1]
				case 1:
					buf = e.AppendDiff(buf[:0], topics[ti])
					got, _ = bytes.CutPrefix(buf, []byte(`{"joins":[`))
					got, _ = bytes.CutSuffix(got, []byte(`],"leaves":[]}`))
				default:
					e.Snapshot(&snap, topics[ti])
					w = w[:0]
					for j, en := range snap.Entries {
						if j > 0 {
							w = append(w, ',')
						}
						w = append(w, `{"key":`...)
						w = jsonwriter.AppendString(w, string(en.Key))
						w = append(w, `,"meta":`...)
						w = append(w, en.Meta...)
						w = append(w, '}')
					}
					got = w
				}
				if len(got) > 0 {
					readCount[ti].Add(1)
				}
				mine[ti] = topicstates.AddRead(mine[ti], got)
			}
		})
	}
	writers.Wait()
	close(done)
	readers.Wait()
	for ti, log := range logs {
		if err := topicstates.Check(log, reads[ti]); err != nil {
			t.Fatalf("topic %s: %v", topics[ti], err)
		}
	}
	if st := e.Stats(); e.Len() != 0 || st.UnrenderedTopics != 0 {
		t.Fatalf("empty engine: %d entries, %d topics read from their slots", e.Len(), st.UnrenderedTopics)
	}
}
