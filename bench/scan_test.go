package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/klp-project/klp/internal/fakefs"
	"github.com/klp-project/klp/livepatch"
)

// tree builds a procfs tree of processes with threadsPer threads each, in
// /dev/shm when it exists so that the disk does not dominate.
func tree(b testing.TB, procs, threadsPer int) livepatch.FS {
	b.Helper()
	base := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "klp-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	var tasks []fakefs.Task
	for p := 0; p < procs; p++ {
		pid := 1000 + p*(threadsPer+1)
		for t := 0; t < threadsPer; t++ {
			// Every 100th task still blocks a patching transition.
			state := 1
			if (p*threadsPer+t)%100 == 0 {
				state = 0
			}
			tasks = append(tasks, fakefs.Task{PID: pid, TID: pid + t, PatchState: state})
		}
	}
	proc := filepath.Join(dir, "proc")
	if err := fakefs.WriteTasks(proc, tasks); err != nil {
		b.Fatal(err)
	}
	sys := filepath.Join(dir, "sys", "kernel", "livepatch", "p")
	if err := os.MkdirAll(sys, 0o755); err != nil {
		b.Fatal(err)
	}
	for name, v := range map[string]string{"enabled": "1\n", "transition": "1\n"} {
		if err := os.WriteFile(filepath.Join(sys, name), []byte(v), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	fs, err := livepatch.NewFS(filepath.Join(dir, "sys"), proc)
	if err != nil {
		b.Fatal(err)
	}
	return fs
}

// blockers returns the TIDs tree marks blocking: every 100th task.
func blockers(procs, threadsPer int) []int {
	var out []int
	for p := 0; p < procs; p++ {
		pid := 1000 + p*(threadsPer+1)
		for t := 0; t < threadsPer; t++ {
			if (p*threadsPer+t)%100 == 0 {
				out = append(out, pid+t)
			}
		}
	}
	return out
}

// TestScanTasks checks, under make unit, what the benchmark measures: the
// scan finds exactly the blocking tasks of the generated trees, in every
// shape and with one or several workers (the chunks of a big process
// included: one process of 2,500 threads is three chunks), and reads
// every task once.
func TestScanTasks(t *testing.T) {
	for _, shape := range []struct{ procs, threads int }{{500, 1}, {50, 10}, {1, 2500}} {
		fs := tree(t, shape.procs, shape.threads)
		want := blockers(shape.procs, shape.threads)
		for _, workers := range []int{1, 2, 3} {
			var mu sync.Mutex
			var got []int
			stats, err := fs.ScanTasks(livepatch.ScanOptions{Workers: workers}, func(ts livepatch.TaskState) {
				if ts.State == livepatch.StateUnpatched {
					mu.Lock()
					got = append(got, ts.TID)
					mu.Unlock()
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			sort.Ints(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("procs=%d threads=%d workers=%d: blocking TIDs: unexpected diff (-want +got):\n%s", shape.procs, shape.threads, workers, diff)
			}
			if stats.Tasks != shape.procs*shape.threads || len(stats.Unreadable) != 0 {
				t.Errorf("procs=%d threads=%d workers=%d: stats %+v, want %d tasks read", shape.procs, shape.threads, workers, stats, shape.procs*shape.threads)
			}
		}
	}
}

// BenchmarkScanTasks finds the blocking tasks among 10,000, in shapes
// from many small processes to one process with every thread.
func BenchmarkScanTasks(b *testing.B) {
	for _, shape := range []struct{ procs, threads int }{{10000, 1}, {1000, 10}, {1, 10000}} {
		for _, workers := range []int{1, 2} {
			b.Run(fmt.Sprintf("procs=%d/threads=%d/workers=%d", shape.procs, shape.threads, workers), func(b *testing.B) {
				fs := tree(b, shape.procs, shape.threads)
				want := shape.procs * shape.threads / 100
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					var n atomic.Int64
					_, err := fs.ScanTasks(livepatch.ScanOptions{Workers: workers}, func(t livepatch.TaskState) {
						if t.State == livepatch.StateUnpatched {
							n.Add(1)
						}
					})
					if err != nil {
						b.Fatal(err)
					}
					if int(n.Load()) != want {
						b.Fatalf("found %d blocking tasks, want %d", n.Load(), want)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*shape.procs*shape.threads), "ns/task")
			})
		}
	}
}
