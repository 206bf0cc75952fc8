package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil)
	want := options{
		vcpus: []int{1, 2}, threads: []int{1000, 10000, 30000, 100000}, reps: 5, waitReps: 3,
		stall: 10 * time.Second, kpatchMax: 1000, memory: "6G", out: "bench/results", timeout: 2 * time.Hour,
	}
	if err != nil || !cmp.Equal(want, o, cmp.AllowUnexported(options{})) {
		t.Errorf("defaults: got %+v, %v; want %+v", o, err, want)
	}
	o, err = parseFlags([]string{"-smoke", "-threads", "5"})
	want = options{
		vcpus: []int{1}, threads: []int{5}, reps: 1, waitReps: 1, stall: 2 * time.Second,
		kpatchMax: 10, memory: "2G", out: "e2e/.work/bench-smoke", timeout: 5 * time.Minute,
	}
	if err != nil || !cmp.Equal(want, o, cmp.AllowUnexported(options{})) {
		t.Errorf("smoke: got %+v, %v; want %+v", o, err, want)
	}
	for _, bad := range [][]string{{"-vcpus", "0"}, {"-threads", "1,x"}, {"-reps", "0"}, {"-stall", "1s"}, {"-nonsense"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestMemoryFor(t *testing.T) {
	for _, c := range []struct {
		threads []int
		want    string
	}{
		{[]int{10}, "2G"},
		{[]int{1000, 30000}, "3G"},
		{[]int{100000, 1000}, "6G"},
	} {
		if got := memoryFor(c.threads); got != c.want {
			t.Errorf("memoryFor(%v) = %s, want %s", c.threads, got, c.want)
		}
	}
}
