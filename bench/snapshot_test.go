package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/snapshot"
	"github.com/klp-project/klp/kernel"
)

// snapshotTree writes a procfs tree of procs processes with threadsPer
// threads each, whose files are as long as a real kernel's (a stat line
// of 52 fields, a command line with arguments), and a patch in transition
// that every 100th task blocks, with its stack.
func snapshotTree(b *testing.B, procs, threadsPer int) *kernel.Handle {
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
	write := func(path, data string) {
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	proc := filepath.Join(dir, "proc")
	n := 0
	for p := 0; p < procs; p++ {
		pid := 1000 + p*(threadsPer+1)
		pdir := filepath.Join(proc, strconv.Itoa(pid))
		for t := 0; t < threadsPer; t++ {
			tid := pid + t
			tdir := filepath.Join(pdir, "task", strconv.Itoa(tid))
			if err := os.MkdirAll(tdir, 0o755); err != nil {
				b.Fatal(err)
			}
			state := "1\n"
			if n%100 == 0 {
				state = "0\n"
				write(filepath.Join(tdir, "stack"), "[<0>] do_sys_poll+0x3dc/0x560\n[<0>] __x64_sys_ppoll+0xbc/0x150\n[<0>] do_syscall_64+0x82/0x170\n[<0>] entry_SYSCALL_64_after_hwframe+0x76/0x7e\n")
			}
			n++
			write(filepath.Join(tdir, "patch_state"), state)
			write(filepath.Join(tdir, "comm"), fmt.Sprintf("worker-%d\n", t%16))
			write(filepath.Join(tdir, "stat"), fmt.Sprintf("%d (worker-%d) S 1 %d %d 0 -1 4194624 %d 0 0 0 %d %d 0 0 20 0 %d 0 %d 2537938944 %d 18446744073709551615 94375435567104 94375435744425 140722133278240 0 0 0 0 4096 17475 0 0 0 -1 %d 0 0 0 0 0 94375435754544 94375435756160 94375467024384 140722133286288 140722133286308 140722133286308 140722133286410 0\n",
				tid, t%16, pid, pid, 1000+t*7, t%97, t%13, threadsPer, 655+t*3, 20000+p, t%2))
		}
		write(filepath.Join(pdir, "cmdline"), fmt.Sprintf("/usr/lib/jvm/java-17/bin/java\x00-Xmx8g\x00-Dservice.id=%d\x00-jar\x00/srv/app/service.jar\x00", p))
	}
	lp := filepath.Join(dir, "sys", "kernel", "livepatch", "p")
	if err := os.MkdirAll(filepath.Join(lp, "vmlinux", "do_sys_poll,1"), 0o755); err != nil {
		b.Fatal(err)
	}
	write(filepath.Join(lp, "enabled"), "1\n")
	write(filepath.Join(lp, "transition"), "1\n")
	h, err := kernel.Open(kernel.Roots{Sys: filepath.Join(dir, "sys"), Proc: proc, Dev: filepath.Join(dir, "dev"), Boot: filepath.Join(dir, "boot")})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// BenchmarkSnapshot captures 100,000 tasks (one big process, and a
// thousand of a hundred threads) and reads the archive back, as klp
// --snapshot does; it reports the archive's size, and the wall and CPU
// time per task.
// The tree is on tmpfs, not procfs: bench/snapshot.sh measures the real
// /proc.
func BenchmarkSnapshot(b *testing.B) {
	for _, shape := range []struct{ procs, threads int }{{1, 100000}, {1000, 100}} {
		tasks := shape.procs * shape.threads
		b.Run(fmt.Sprintf("procs=%d/threads=%d/capture", shape.procs, shape.threads), func(b *testing.B) {
			h := snapshotTree(b, shape.procs, shape.threads)
			var buf bytes.Buffer
			b.ReportAllocs()
			b.ResetTimer()
			cpu := startCPU()
			for i := 0; i < b.N; i++ {
				buf.Reset()
				m, _, err := admin.NewSystem(h).Snapshot(context.Background(), &buf, admin.SnapshotOptions{Root: true})
				if err != nil {
					b.Fatal(err)
				}
				if m.Captured[3].Files != tasks/100 {
					b.Fatalf("captured %+v", m.Captured)
				}
			}
			b.ReportMetric(float64(buf.Len()), "archive-bytes")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tasks), "ns/task")
			b.ReportMetric(float64(cpu.ns())/float64(b.N*tasks), "cpu-ns/task")
		})
		b.Run(fmt.Sprintf("procs=%d/threads=%d/read", shape.procs, shape.threads), func(b *testing.B) {
			h := snapshotTree(b, shape.procs, shape.threads)
			var buf bytes.Buffer
			if _, _, err := admin.NewSystem(h).Snapshot(context.Background(), &buf, admin.SnapshotOptions{Root: true}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := startCPU()
			for i := 0; i < b.N; i++ {
				a, err := snapshot.Read(bytes.NewReader(buf.Bytes()), snapshot.DefaultLimits)
				if err != nil {
					b.Fatal(err)
				}
				sh, err := a.Handle()
				if err != nil {
					b.Fatal(err)
				}
				r, err := admin.NewSystem(sh).Blocking(admin.BlockingOptions{Stacks: true})
				if err != nil || len(r.Tasks) != tasks/100 {
					b.Fatalf("%d blocking tasks, %v", len(r.Tasks), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tasks), "ns/task")
			b.ReportMetric(float64(cpu.ns())/float64(b.N*tasks), "cpu-ns/task")
		})
	}
}

// cpuClock measures the process's CPU time (user and system, every
// thread): on a shared machine the wall clock measures the neighbours too.
type cpuClock struct{ start int64 }

func startCPU() cpuClock { return cpuClock{cpuNow()} }

func (c cpuClock) ns() int64 { return cpuNow() - c.start }

func cpuNow() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
