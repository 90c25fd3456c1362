package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"
)

func TestClusterModeMeasures(t *testing.T) {
	if testing.Short() || clusterRace {
		t.Skip("starts NATS servers, loads them and waits for heartbeats: too slow under -race (the cluster package's own tests run there)")
	}
	var out bytes.Buffer
	o := clusterOptions{nodes: 3, duration: 300 * time.Millisecond, samples: 20, resync: 500, load: 0.5}
	if err := runCluster(context.Background(), &o, true, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var r clusterReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	switch {
	case r.MaxUpdatesPerSec <= 0, r.BytesPerDelta <= 0, r.VisP50ms <= 0, r.VisMaxMs < r.VisP99ms:
		t.Fatalf("implausible report: %+v", r)
	case r.ResyncEntries < 500, r.ListAllocs != 0, r.RemoteFull != 0, r.HeartbeatsPerSec <= 0:
		t.Fatalf("report: %+v", r)
	}
}
