package clustermode

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	good := Options{Nodes: 3, Duration: time.Second, Samples: 20, Resync: 10, Load: 0.5}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, mod := range []func(*Options){
		func(o *Options) { o.Nodes = 1 },
		func(o *Options) { o.Samples = 3 },
		func(o *Options) { o.Resync = 0 },
		func(o *Options) { o.Duration = 0 },
		func(o *Options) { o.Load = 1.5 },
		func(o *Options) { o.Rate = -1 },
		func(o *Options) { o.Buckets = 8 }, // -cluster-scale only
	} {
		o := good
		mod(&o)
		if _, err := Run(context.Background(), o, nil, io.Discard); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v: %v, want ErrInvalidOptions", o, err)
		}
	}
}
