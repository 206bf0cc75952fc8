package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klp-project/klp/e2e/internal/benchdata"
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
	o, err = parseFlags([]string{"-only", "waits", "-vcpus", "1"})
	if err != nil || o.only != "waits" || len(o.vcpus) != 1 {
		t.Errorf("-only waits: got %+v, %v", o, err)
	}
	o, err = parseFlags([]string{"-render", "a.json", "b.json"})
	if err != nil || !cmp.Equal([]string{"a.json", "b.json"}, o.render) {
		t.Errorf("render: got %+v, %v", o, err)
	}
	for _, bad := range [][]string{{"-render"}, {"extra"}, {"-vcpus", "0"}, {"-threads", "1,x"}, {"-reps", "0"}, {"-stall", "1s"}, {"-nonsense"}, {"-only", "scan"}} {
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

func TestRenderAgain(t *testing.T) {
	dir := t.TempDir()
	r := benchdata.NewReport(&benchdata.Guest{
		Env:     &benchdata.GuestEnv{CPUs: 1},
		Samples: []benchdata.Sample{{Threads: 10, Command: benchdata.CmdCScan, Kind: benchdata.KindScan, Wall: 0.5}},
		Done:    true,
	}, benchdata.HostEnv{VCPUs: 1}, "2026-11-24")
	var paths []string
	for _, name := range []string{"a", "b"} {
		base := filepath.Join(dir, name)
		if err := writeReport(base, r); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, base+".json")
	}
	if err := renderAgain(paths); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "a.md"))
	if err != nil || !strings.Contains(string(md), "| C scanner | 500 ms |") {
		t.Errorf("a.md: %v\n%s", err, md)
	}
	if _, err := os.Stat(filepath.Join(dir, "2026-11-24-summary.md")); err != nil {
		t.Error(err)
	}
	if err := renderAgain([]string{filepath.Join(dir, "missing.json")}); err == nil {
		t.Error("a missing report: no error")
	}
}
