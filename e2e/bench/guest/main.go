// Command klp-bench is the guest half of klp's real-kernel benchmark
// (e2e/bench). The initramfs's init script starts it as root when the
// kernel command line says klp_e2e_mode=bench.
//
// For each number of sleeping threads it holds a livepatch transition
// open (the kthread of klp_e2e_target parked in the function that
// klp_e2e_target_patch replaces), then measures, interleaved and repeated:
//
//   - the scans that list the blocking tasks: klp blocking, klp blocking
//     --json, klp metrics (the collector that klp exporter serves), the
//     minimal C scanner (bench/c/cscan.c), a bash loop over
//     /proc/*/task/* and kpatch's fork-per-task approach;
//   - the waiters, each over a transition stalled for a while and then
//     released: klp wait (its output on a pipe and on a terminal) and a
//     1 s poll loop as kpatch's: the time from the kernel's completion (its
//     log record) to their return, and their CPU per second of waiting.
//
// Every measure also records the command's peak memory. Results go to the
// serial console as the records of e2e/internal/benchdata.
//
// Settings come from the kernel command line (environment variables of
// init): klp_bench_threads (comma-separated counts), klp_bench_reps (runs
// per scan), klp_bench_wait_reps (stalls per waiter), klp_bench_stall (a
// Go duration), klp_bench_kpatch_max (the most threads at which the
// fork-per-task scan runs), klp_bench_only (a comma-separated set of
// scans, waits and metrics: measure only those; metrics is klp metrics
// beside klp blocking, without the other scans), klp_bench_trace (1: trace
// each wait around the completion record, trace.go).
package main

import (
	_ "embed"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/klp-project/klp/e2e/internal/benchdata"
	"github.com/klp-project/klp/e2e/internal/harness"
	"golang.org/x/sys/unix"
)

const moduleDir = harness.GuestModuleDir

// Programs in the initramfs (packed by e2e/bench).
const (
	klpBin   = "/bin/klp"
	cscanBin = "/bin/cscan"
	spawnBin = "/bin/spawn"
	// kmsgwaitBin is the floor of a wait (bench/c/kmsgwait.c).
	kmsgwaitBin = "/bin/kmsgwait"
	bashBin     = "/bin/bash"
	// measureBin runs a command and reports its times and peak memory
	// (bench/c/measure.c).
	measureBin = "/bin/measure"
)

// threadStackKiB is the stack size of the sleeping threads: small, so that
// memory goes to the tasks themselves.
const threadStackKiB = 16

// thpEnabled is the guest's transparent huge page setting.
const thpEnabled = "/sys/kernel/mm/transparent_hugepage/enabled"

var (
	//go:embed scan.bash
	scanScript string
	//go:embed kpatch.bash
	kpatchScript string
	//go:embed poll.bash
	pollScript string
)

type config struct {
	threads   []int
	reps      int
	waitReps  int
	stall     time.Duration
	kpatchMax int
	// only is the set of measures to run: scans, waits, metrics (klp
	// metrics and klp blocking alone); empty: scans and waits.
	only map[string]bool
	// trace prints each wait's scheduler events and system calls around
	// the completion record (trace.go).
	trace bool
}

// runs reports whether the measure named what runs.
func (c config) runs(what string) bool {
	if len(c.only) == 0 {
		return what != "metrics"
	}
	return c.only[what]
}

// configFrom reads the settings from the environment, with the defaults
// of a full run.
func configFrom(getenv func(string) string) (config, error) {
	c := config{threads: []int{1000, 10000, 30000, 100000}, reps: 5, waitReps: 3, stall: 10 * time.Second, kpatchMax: 1000}
	if v := getenv("klp_bench_threads"); v != "" {
		c.threads = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return c, fmt.Errorf("klp_bench_threads: bad count %q", s)
			}
			c.threads = append(c.threads, n)
		}
	}
	for _, iv := range []struct {
		name string
		p    *int
	}{{"klp_bench_reps", &c.reps}, {"klp_bench_wait_reps", &c.waitReps}, {"klp_bench_kpatch_max", &c.kpatchMax}} {
		if v := getenv(iv.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return c, fmt.Errorf("%s: bad number %q", iv.name, v)
			}
			*iv.p = n
		}
	}
	if v := getenv("klp_bench_only"); v != "" {
		c.only = map[string]bool{}
		for _, w := range strings.Split(v, ",") {
			switch w {
			case "scans", "waits", "metrics":
				c.only[w] = true
			default:
				return c, fmt.Errorf("klp_bench_only: %q is none of scans, waits and metrics", w)
			}
		}
	}
	switch v := getenv("klp_bench_trace"); v {
	case "", "0":
	case "1":
		c.trace = true
	default:
		return c, fmt.Errorf("klp_bench_trace: %q is neither 0 nor 1", v)
	}
	if v := getenv("klp_bench_stall"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 2*time.Second {
			return c, fmt.Errorf("klp_bench_stall: %q is not a duration of 2s or more", v)
		}
		c.stall = d
	}
	return c, nil
}

func main() {
	cfg, err := configFrom(os.Getenv)
	if err != nil {
		note("%v", err)
		fmt.Println(benchdata.DoneLine)
		return
	}
	b := &bench{cfg: cfg}
	if err := b.setup(); err != nil {
		note("setup: %v", err)
		fmt.Println(benchdata.DoneLine)
		return
	}
	record("env", b.env)
	for _, n := range cfg.threads {
		if err := b.measure(n); err != nil {
			note("%s threads: %v", benchdata.Thousands(n), err)
		}
	}
	fmt.Println(benchdata.DoneLine)
}

// record prints one console record.
func record(kind string, v any) {
	line, err := benchdata.FormatRecord(kind, v)
	if err != nil {
		line, _ = benchdata.FormatRecord("note", err.Error())
	}
	fmt.Println(line)
}

func note(format string, args ...any) { record("note", fmt.Sprintf(format, args...)) }

// flush prints samples, then leaves the serial line half a second to drain:
// the console's interrupts would otherwise steal CPU from the next
// measure.
func flush(samples []benchdata.Sample) {
	for _, s := range samples {
		record("sample", s)
	}
	time.Sleep(500 * time.Millisecond)
}

type bench struct {
	cfg     config
	env     benchdata.GuestEnv
	kthread int // TID of the kthread that holds the transition
	// cgroup is the waiters' cgroup, open (nil when cgroup v2 cannot be
	// mounted: then the CPU of a wait is counted in clock ticks only).
	cgroup *os.File
}

// setup raises the limits on tasks, mounts devpts for the terminal
// waiter and parks the kthread.
func (b *bench) setup() error {
	if err := os.MkdirAll("/dev/pts", 0o755); err != nil {
		return err
	}
	if err := unix.Mount("devpts", "/dev/pts", "devpts", 0, ""); err != nil && err != unix.EBUSY {
		return fmt.Errorf("mount devpts: %w", err)
	}
	if cg, err := mountCgroup(); err != nil {
		note("CPU per second of waiting in clock ticks only: %v", err)
	} else {
		b.cgroup = cg
	}
	// The defaults stop far below 100,000 threads: threads-max is sized at
	// boot to memory / (8 * THREAD_SIZE), 128 KiB per thread; pid_max is
	// 32768; and each thread's stack is two mappings (stack and guard
	// page) of the 65530 that max_map_count allows a process.
	for _, s := range []struct{ path, v string }{
		{"/proc/sys/kernel/pid_max", "4194304"},
		{"/proc/sys/kernel/threads-max", "4194304"},
		{"/proc/sys/vm/max_map_count", "4194304"},
	} {
		if err := writeFile(s.path, s.v); err != nil {
			return err
		}
	}
	// Debian's kernels give anonymous memory transparent huge pages
	// always. A Go program's heap then starts on a 2 MiB page or not,
	// depending on the guest's free memory at that moment, so that the
	// peak memory of every klp command moved between two values 2 MiB
	// apart from run to run (9.2 and 11.2 MiB for klp wait, which reads
	// no task), more than the 1.2 that "flat in the number of threads"
	// allows. On madvise only programs that ask get them: none here.
	if err := writeFile(thpEnabled, "madvise"); err != nil {
		note("transparent huge pages left as they are: %v", err)
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	b.env = benchdata.GuestEnv{
		Kernel:         unix.ByteSliceToString(uts.Release[:]),
		CPUs:           runtime.NumCPU(),
		Reps:           b.cfg.reps,
		WaitReps:       b.cfg.waitReps,
		Stall:          b.cfg.stall.Seconds(),
		ThreadStackKiB: threadStackKiB,
	}
	b.env.ThreadsMax, _ = readInt("/proc/sys/kernel/threads-max")
	b.env.PIDMax, _ = readInt("/proc/sys/kernel/pid_max")
	b.env.MaxMapCount, _ = readInt("/proc/sys/vm/max_map_count")
	b.env.Clocksource, _ = readTrim("/sys/devices/system/clocksource/clocksource0/current_clocksource")
	b.env.THP, _ = readTrim(thpEnabled)
	if mem, err := readTrim("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(mem, "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				b.env.MemTotalKiB, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	if res := runMeasured([]string{klpBin, "--version"}, time.Minute); res.err == nil {
		b.env.Klp = strings.TrimSpace(res.stdout)
	}
	if res := runMeasured([]string{bashBin, "--version"}, time.Minute); res.err == nil {
		b.env.Bash, _, _ = strings.Cut(res.stdout, "\n")
	}
	if err := insmod(targetModule); err != nil {
		return err
	}
	if err := block(); err != nil {
		return err
	}
	var err error
	b.kthread, err = kthreadTID()
	return err
}

// measure runs every measure at n sleeping threads.
func (b *bench) measure(n int) error {
	if need := n + 1000; need > b.env.ThreadsMax {
		return fmt.Errorf("skipped: threads-max is %d, %d needed (give the guest more memory)", b.env.ThreadsMax, need)
	}
	start := time.Now()
	avail := memAvailable()
	sp, err := startSpawn(n)
	if err != nil {
		return err
	}
	defer sp.stop()
	took := time.Since(start).Round(time.Millisecond)
	used := avail - memAvailable()
	tasks := countTasks()
	perThread := ""
	if n > 0 {
		perThread = fmt.Sprintf(", %d KiB per thread", used/int64(n))
	}
	note("%s threads: started in %s; %d tasks; they took %d MiB of memory%s", benchdata.Thousands(n), took, tasks, used>>10, perThread)
	if b.cfg.runs("scans") || b.cfg.runs("metrics") {
		if err := b.scans(n, tasks); err != nil {
			return err
		}
	}
	if b.cfg.runs("waits") {
		err = b.waits(n, tasks)
	}
	note("%s threads: measured in %s", benchdata.Thousands(n), time.Since(start).Round(time.Second))
	return err
}

// memAvailable returns MemAvailable of /proc/meminfo, in KiB.
func memAvailable() int64 {
	mem, _ := readTrim("/proc/meminfo")
	for _, l := range strings.Split(mem, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemAvailable:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

// spawned is the process holding the sleeping threads.
type spawned struct{ cmd *os.Process }

// startSpawn starts bench/c/spawn with n threads and waits for it to say
// ready.
func startSpawn(n int) (*spawned, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	p, err := os.StartProcess(spawnBin, []string{spawnBin, strconv.Itoa(n), "1", strconv.Itoa(threadStackKiB)}, &os.ProcAttr{
		Files: []*os.File{nil, w, os.Stderr},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	w.Close()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spawnBin, err)
	}
	sp := &spawned{cmd: p}
	ready := make(chan string, 1)
	go func() {
		buf := make([]byte, 64)
		k, _ := r.Read(buf)
		ready <- strings.TrimSpace(string(buf[:k]))
	}()
	select {
	case line := <-ready:
		if line == "ready" {
			return sp, nil
		}
		sp.stop()
		return nil, fmt.Errorf("start %d threads: spawn said %q", n, line)
	case <-time.After(15 * time.Minute):
		sp.stop()
		return nil, fmt.Errorf("start %d threads: not ready after 15 minutes", n)
	}
}

func (s *spawned) stop() {
	_ = s.cmd.Kill()
	_, _ = s.cmd.Wait()
}
