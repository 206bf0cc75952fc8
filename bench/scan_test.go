package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/klp-project/klp/internal/fakefs"
	"github.com/klp-project/klp/livepatch"
)

// tree builds a procfs tree of processes with threadsPer threads each, in
// /dev/shm when it exists so that the disk does not dominate.
func tree(b *testing.B, procs, threadsPer int) livepatch.FS {
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
