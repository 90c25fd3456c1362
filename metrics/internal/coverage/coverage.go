// Package coverage checks, in tests, that a collector exports every field
// of the stats struct it reads, so that a counter added to Stats and left
// out of the collector fails a test instead of going unnoticed.
package coverage

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Check fills every numeric field of an S (nested structs and arrays
// included) with a distinct value, collects from newCollector reading that
// S, and fails t unless each value is reported by exactly one metric and
// every metric reports one of them.
func Check[S any](t *testing.T, newCollector func(func() S) prometheus.Collector) {
	t.Helper()
	var s S
	fields := map[string]float64{}
	next := 1000.0
	fill(t, reflect.ValueOf(&s).Elem(), reflect.TypeOf(s).String(), &next, fields)
	values := gathered(t, newCollector(func() S { return s }))
	for path, want := range fields {
		switch got := values[want]; len(got) {
		case 0:
			t.Errorf("%s is not exported by any metric", path)
		case 1:
		default:
			t.Errorf("%s is exported by %d metrics: %v", path, len(got), got)
		}
	}
	if n := len(values); n != len(fields) {
		t.Errorf("%d distinct values exported for %d fields: a metric reads no field or reads one twice", n, len(fields))
	}
}

// fill sets every numeric field of v to a distinct value from next, and
// records the values by field path; a slice gets two elements, and a
// string (a label value) a distinct value of its own.
func fill(t *testing.T, v reflect.Value, path string, next *float64, out map[string]float64) {
	t.Helper()
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if !v.Type().Field(i).IsExported() {
				continue
			}
			fill(t, v.Field(i), path+"."+v.Type().Field(i).Name, next, out)
		}
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			fill(t, v.Index(i), fmt.Sprintf("%s[%d]", path, i), next, out)
		}
	case reflect.Slice: // two elements, so that each is seen apart
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := 0; i < v.Len(); i++ {
			fill(t, v.Index(i), fmt.Sprintf("%s[%d]", path, i), next, out)
		}
	case reflect.String: // a label value: distinct, and not a sample
		*next++
		v.SetString(fmt.Sprint("s", *next))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		*next++
		v.SetInt(int64(*next))
		out[path] = *next
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		*next++
		v.SetUint(uint64(*next))
		out[path] = *next
	case reflect.Float32, reflect.Float64:
		*next++
		v.SetFloat(*next)
		out[path] = *next
	default:
		t.Fatalf("%s: a %s field that the coverage check cannot fill", path, v.Kind())
	}
}

// gathered returns the metrics that report each sample value.
func gathered(t *testing.T, c prometheus.Collector) map[float64][]string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[float64][]string{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var v float64
			switch {
			case m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				v = m.GetGauge().GetValue()
			default:
				t.Fatalf("%s: neither a counter nor a gauge", f.GetName())
			}
			values[v] = append(values[v], f.GetName()+fmt.Sprint(m.GetLabel()))
		}
	}
	return values
}
