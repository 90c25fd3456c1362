package stress

import (
	"flag"
	"fmt"
	"runtime"
	"time"
)

// DefaultConfig is the default workload: about 10 s of every operation
// on a registry of 4,096 entries, half full.
func DefaultConfig() Config {
	return Config{
		Target:   "engine",
		Capacity: 4096,
		Topics:   64,
		Dist:     "uniform",
		ZipfS:    1.2,
		Sockets:  2048,
		KeySize:  16,
		MetaSize: 64,
		Mix:      DefaultMix,
		Workers:  runtime.GOMAXPROCS(0),
		Duration: 10 * time.Second,
		Seed:     1,
		Prefill:  0.5,
		BufSize:  256 << 10,
	}
}

// Presets are named workloads; flags set explicitly override them.
var Presets = map[string]func(*Config){
	"default": func(*Config) {},
	"read-heavy": func(c *Config) {
		c.Mix = Mix{OpTrack: 2, OpUpdate: 6, OpUntrack: 2, OpList: 90}
	},
	"churn": func(c *Config) {
		c.Mix = Mix{OpTrack: 45, OpUntrack: 45, OpList: 5, OpChanges: 5}
	},
	"hot-room": func(c *Config) {
		// Every socket joins the hottest room sooner or later: it holds up
		// to 512 members while the rest churn through the other rooms.
		c.Capacity, c.Sockets, c.Topics, c.Dist, c.ZipfS, c.Prefill = 8192, 512, 16, "zipf", 2, 0.25
		c.Mix = Mix{OpTrack: 10, OpUpdate: 30, OpUntrack: 5, OpList: 40, OpChanges: 10, OpCount: 5}
	},
}

// Flags are the workload's command-line flags, shared by the commands
// that run stress workloads so that the same flags mean the same run.
type Flags struct {
	cfg    Config
	preset string
	mix    string
}

// RegisterFlags registers the workload flags on fs, with DefaultConfig's
// values; Config completes them once fs is parsed. The run's length
// (-duration) is the command's: it passes it to Config.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{cfg: DefaultConfig()}
	c := &f.cfg
	fs.StringVar(&f.preset, "preset", "default", "named workload: default, read-heavy, churn, hot-room (flags override it)")
	fs.IntVar(&c.Capacity, "capacity", c.Capacity, "registry capacity (entries)")
	fs.IntVar(&c.Shards, "shards", 0, "engine shards (a power of two; 0 for the engine's default)")
	fs.IntVar(&c.Topics, "topics", c.Topics, "number of topics")
	fs.StringVar(&c.Dist, "dist", c.Dist, "how operations spread over topics: uniform or zipf")
	fs.Float64Var(&c.ZipfS, "zipf-s", c.ZipfS, "zipf exponent (> 1; larger makes the first topics hotter)")
	fs.IntVar(&c.Sockets, "sockets", c.Sockets, "number of sockets, split between workers")
	fs.IntVar(&c.KeySize, "key-size", c.KeySize, "bytes per key")
	fs.IntVar(&c.MetaSize, "meta-size", c.MetaSize, "bytes per meta")
	fs.StringVar(&f.mix, "mix", "", "operation mix in percent, e.g. track=20,update=20,untrack=15,untrackall=5,list=20,diff=5,changes=10,count=5")
	fs.IntVar(&c.Workers, "workers", c.Workers, "concurrent workers")
	fs.Int64Var(&c.Ops, "ops", 0, "total operations to run instead of a duration")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "random seed: the same flags and seed replay the same operations")
	fs.Float64Var(&c.Prefill, "prefill", c.Prefill, "fraction of capacity to track, unmeasured, before the run")
	fs.BoolVar(&c.Verify, "verify", false, "check invariants while running; exit 1 on any violation")
	fs.IntVar(&c.BufSize, "buf", c.BufSize, "bytes of each worker's List/Diff buffer")
	return f
}

// Config returns the workload once fs is parsed: the preset, then the
// flags set explicitly, then duration when durationSet, validated, for
// target (engine or baseline; a command that runs other registries sets
// Target afterwards).
func (f *Flags) Config(fs *flag.FlagSet, target string, durationSet bool, duration time.Duration) (Config, error) {
	c := f.cfg
	c.Target = target
	if target != "engine" && target != "baseline" {
		return c, fmt.Errorf("target %q: want engine or baseline", target)
	}
	if durationSet {
		c.Duration = duration
	}
	apply, ok := Presets[f.preset]
	if !ok {
		return c, fmt.Errorf("unknown preset %q", f.preset)
	}
	// A preset sets some of these; a flag set explicitly wins.
	explicit := c
	apply(&c)
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "capacity":
			c.Capacity = explicit.Capacity
		case "topics":
			c.Topics = explicit.Topics
		case "dist":
			c.Dist = explicit.Dist
		case "zipf-s":
			c.ZipfS = explicit.ZipfS
		case "sockets":
			c.Sockets = explicit.Sockets
		case "prefill":
			c.Prefill = explicit.Prefill
		}
	})
	if f.mix != "" {
		m, err := ParseMix(f.mix)
		if err != nil {
			return c, err
		}
		c.Mix = m
	}
	return c, c.Validate()
}
