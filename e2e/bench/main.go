// Command bench is klp's real-kernel benchmark behind `make bench`: it
// prepares the host like the e2e suite (e2e/setup.sh, the test modules,
// an initramfs), boots Debian's 6.1 kernel in QEMU once per vCPU count
// with the memory the thread counts need, and lets the guest half
// (e2e/bench/guest) measure klp's scan and wait against the C floor, a
// bash loop and kpatch's ways. It prints a table per vCPU count and one
// side by side, and writes each run as JSON and Markdown (see
// docs/performance.md). Run it as root from the repository:
//
//	go run ./e2e/bench              the full run (over an hour here)
//	go run ./e2e/bench -smoke       one repetition, few threads, one vCPU
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klp-project/klp/e2e/internal/benchdata"
	"github.com/klp-project/klp/e2e/internal/harness"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	vcpus     []int
	threads   []int
	reps      int
	waitReps  int
	stall     time.Duration
	kpatchMax int
	memory    string
	out       string
	kernel    string
	timeout   time.Duration
	only      string   // comma-separated scans, waits, metrics: measure only those ("" scans and waits)
	trace     bool     // trace each wait around the completion record (guest/trace.go)
	render    []string // reports to summarise again instead of measuring
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	smoke := fs.Bool("smoke", false, "one repetition at 10 and 1,000 threads on one vCPU, a 2 s stall (for make bench-smoke)")
	vcpus := fs.String("vcpus", "1,2", "comma-separated vCPU counts, one boot each")
	threads := fs.String("threads", "1000,10000,30000,100000", "comma-separated numbers of sleeping threads")
	reps := fs.Int("reps", 5, "runs of each scan per thread count")
	waitReps := fs.Int("wait-reps", 3, "stalled transitions per waiter and thread count")
	stall := fs.Duration("stall", 10*time.Second, "how long each transition stays stalled under a waiter")
	kpatchMax := fs.Int("kpatch-max", 1000, "the most threads at which kpatch's fork-per-task scan runs")
	memory := fs.String("memory", "", "guest memory in QEMU's -m syntax (default: what the most threads need)")
	out := fs.String("out", "", "directory for the JSON and Markdown results (default bench/results, or e2e/.work/bench-smoke with -smoke)")
	kernel := fs.String("kernel", "", "kernel release to boot (default: the 6.1 kernel of e2e/setup.sh)")
	timeout := fs.Duration("timeout", 0, "per-boot timeout (default 2h, 5m with -smoke)")
	only := fs.String("only", "", "measure only these, comma-separated: `scans`, waits, metrics (klp metrics beside klp blocking; the full scans include it) (default scans,waits)")
	trace := fs.Bool("trace", false, "print each wait's scheduler events and system calls around the kernel's completion record to the console log (where a wait's latency goes)")
	render := fs.Bool("render", false, "measure nothing: summarise the samples of the JSON reports named as arguments again (after a change of the summary or the tables), rewriting them and their Markdown")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if *render {
		if fs.NArg() == 0 {
			return options{}, errors.New("-render needs the JSON reports to summarise")
		}
		return options{render: fs.Args()}, nil
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if *smoke {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("vcpus", func() { *vcpus = "1" })
		def("threads", func() { *threads = "10,1000" })
		def("reps", func() { *reps = 1 })
		def("wait-reps", func() { *waitReps = 1 })
		def("stall", func() { *stall = 2 * time.Second })
		def("kpatch-max", func() { *kpatchMax = 10 })
		def("out", func() { *out = "e2e/.work/bench-smoke" })
		def("timeout", func() { *timeout = 5 * time.Minute })
	}
	if *only != "" {
		for _, w := range strings.Split(*only, ",") {
			if w != "scans" && w != "waits" && w != "metrics" {
				return options{}, fmt.Errorf("-only %q: want scans, waits or metrics, comma-separated", *only)
			}
		}
	}
	o := options{reps: *reps, waitReps: *waitReps, stall: *stall, kpatchMax: *kpatchMax, memory: *memory, out: *out, kernel: *kernel, timeout: *timeout, only: *only, trace: *trace}
	var err error
	if o.vcpus, err = ints(*vcpus, 1); err != nil {
		return o, fmt.Errorf("-vcpus: %w", err)
	}
	if o.threads, err = ints(*threads, 0); err != nil {
		return o, fmt.Errorf("-threads: %w", err)
	}
	if o.reps < 1 || o.waitReps < 1 {
		return o, errors.New("-reps and -wait-reps must be at least 1")
	}
	if o.stall < 2*time.Second {
		return o, errors.New("-stall must be at least 2s")
	}
	if o.out == "" {
		o.out = "bench/results"
	}
	if o.timeout == 0 {
		o.timeout = 2 * time.Hour
	}
	if o.memory == "" {
		o.memory = memoryFor(o.threads)
	}
	return o, nil
}

// ints parses a comma-separated list of integers of at least least.
func ints(s string, least int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < least {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// memoryFor returns the guest memory that the thread counts need. A
// sleeping thread with a 16 KiB stack takes 23 to 27 KiB in the guest
// (its kernel stack, task and user stack pages); 48 KiB per thread and a
// gibibyte for the rest leave room. threads-max, which the kernel sizes
// from memory at boot, is raised by the guest. QEMU only takes from the
// host what the guest touches.
func memoryFor(threads []int) string {
	most := 0
	for _, n := range threads {
		most = max(most, n)
	}
	need := int64(most+1000) * 48 << 10
	gib := (need+(1<<30)-1)>>30 + 1
	return fmt.Sprintf("%dG", max(gib, 2))
}

func run(args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if o.render != nil {
		return renderAgain(o.render)
	}
	ctx := context.Background()
	repo, err := harness.RepoRoot(".")
	if err != nil {
		return err
	}
	began := time.Now()
	env, err := harness.Setup(ctx, repo, os.Stderr)
	if err != nil {
		return err
	}
	kver := o.kernel
	for _, k := range env.Kernels {
		if kver == "" && strings.HasPrefix(k, "6.1.") {
			kver = k
		}
	}
	if kver == "" {
		return fmt.Errorf("no 6.1 kernel among %v (give -kernel)", env.Kernels)
	}
	bash, err := staticBash(ctx)
	if err != nil {
		return err
	}
	modDir, err := env.Modules(ctx, kver, os.Stderr)
	if err != nil {
		return err
	}
	work := filepath.Join(repo, "e2e", ".work", "bench")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	files, bins, err := build(ctx, repo, work, bash)
	if err != nil {
		return err
	}
	initrd, err := env.Initramfs(ctx, work, harness.Guest{Kernel: kver, ModDir: modDir, Files: files}, bins)
	if err != nil {
		return err
	}
	out := o.out
	if !filepath.IsAbs(out) {
		out = filepath.Join(repo, out)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: prepared in %s; kernel %s, guest memory %s, threads %v\n", time.Since(began).Round(time.Second), kver, o.memory, o.threads)

	date := time.Now().Format("2006-01-02")
	var reports []*benchdata.Report
	var failures []string
	for _, v := range o.vcpus {
		r, err := boot(ctx, env, o, kver, initrd, v, work, repo, date)
		if err != nil {
			failures = append(failures, fmt.Sprintf("%d vCPU: %v", v, err))
			if r == nil {
				continue
			}
		}
		reports = append(reports, r)
		base := filepath.Join(out, fmt.Sprintf("%s-%dvcpu", date, v))
		if err := writeReport(base, r); err != nil {
			return err
		}
		fmt.Println(r.Markdown())
		fmt.Fprintf(os.Stderr, "bench: wrote %s.json and %s.md\n", base, base)
		for _, f := range r.Figures {
			for _, e := range f.Errors {
				failures = append(failures, fmt.Sprintf("%d vCPU, %s, %d threads: %s", v, f.Command, f.Threads, e))
			}
		}
	}
	if len(reports) > 1 {
		s := benchdata.Summary(reports)
		fmt.Println(s)
		if err := os.WriteFile(filepath.Join(out, date+"-summary.md"), []byte(s), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "bench: done in %s\n", time.Since(began).Round(time.Second))
	if len(failures) > 0 {
		return fmt.Errorf("%d failure(s):\n  %s", len(failures), strings.Join(failures, "\n  "))
	}
	return nil
}

// staticBash returns Debian's statically linked bash, installing
// bash-static when it is missing: the guest has no shared libraries.
func staticBash(ctx context.Context) (string, error) {
	const path = "/bin/bash-static"
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=600", "bash-static")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("install bash-static: %w\n%s", err, out)
	}
	return path, nil
}

// build makes the guest's programs: klp (and the e2e runner, which the
// initramfs always holds), the benchmark's guest half, and the C programs
// of bench/c, static.
func build(ctx context.Context, repo, work, bash string) ([]harness.File, harness.Binaries, error) {
	bins, err := harness.BuildBinaries(ctx, repo, work)
	if err != nil {
		return nil, bins, err
	}
	guest := filepath.Join(work, "klp-bench")
	cmds := [][]string{
		{"go", "build", "-trimpath", "-o", guest, "./e2e/bench/guest"},
		{"gcc", "-O2", "-static", "-o", filepath.Join(work, "cscan"), "bench/c/cscan.c"},
		{"gcc", "-O2", "-static", "-pthread", "-o", filepath.Join(work, "spawn"), "bench/c/spawn.c"},
		{"gcc", "-O2", "-static", "-o", filepath.Join(work, "measure"), "bench/c/measure.c"},
		{"gcc", "-O2", "-static", "-o", filepath.Join(work, "kmsgwait"), "bench/c/kmsgwait.c"},
	}
	for _, c := range cmds {
		cmd := exec.CommandContext(ctx, c[0], c[1:]...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, bins, fmt.Errorf("%s: %w\n%s", strings.Join(c, " "), err, out)
		}
	}
	return []harness.File{
		{From: guest, Path: "bin/klp-bench", Mode: 0o755},
		{From: filepath.Join(work, "cscan"), Path: "bin/cscan", Mode: 0o755},
		{From: filepath.Join(work, "spawn"), Path: "bin/spawn", Mode: 0o755},
		{From: filepath.Join(work, "measure"), Path: "bin/measure", Mode: 0o755},
		{From: filepath.Join(work, "kmsgwait"), Path: "bin/kmsgwait", Mode: 0o755},
		{From: bash, Path: "bin/bash", Mode: 0o755},
	}, bins, nil
}

// boot runs the guest on vcpus vCPUs and summarises what it reported.
// The report is returned even when the guest failed part-way.
func boot(ctx context.Context, env *harness.Env, o options, kver, initrd string, vcpus int, work, repo, date string) (*benchdata.Report, error) {
	threads := make([]string, len(o.threads))
	for i, n := range o.threads {
		threads[i] = strconv.Itoa(n)
	}
	cmdline := strings.Join([]string{
		"console=ttyS0 panic=-1 oops=panic quiet klp_e2e_mode=bench",
		"klp_bench_threads=" + strings.Join(threads, ","),
		"klp_bench_reps=" + strconv.Itoa(o.reps),
		"klp_bench_wait_reps=" + strconv.Itoa(o.waitReps),
		"klp_bench_stall=" + o.stall.String(),
		"klp_bench_kpatch_max=" + strconv.Itoa(o.kpatchMax),
	}, " ")
	if o.only != "" {
		cmdline += " klp_bench_only=" + o.only
	}
	if o.trace {
		cmdline += " klp_bench_trace=1"
	}
	logPath := filepath.Join(work, fmt.Sprintf("console-%dvcpu.log", vcpus))
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cw := bufio.NewWriter(logf)
	defer cw.Flush()

	host := hostEnv(repo)
	host.VCPUs, host.Memory = vcpus, o.memory
	host.LoadBefore = loadavg()
	mon := startMonitor()
	var mu sync.Mutex
	var lines []string
	start := time.Now()
	fmt.Fprintf(os.Stderr, "bench: booting %s on %d vCPU(s), console in %s\n", kver, vcpus, logPath)
	accel, bootErr := harness.Boot(ctx, harness.BootConfig{
		Kernel:  env.KernelImage(kver),
		Initrd:  initrd,
		Append:  cmdline,
		Timeout: o.timeout,
		Console: cw,
		Memory:  o.memory,
		CPUs:    vcpus,
		OnLine: func(l string) {
			mu.Lock()
			lines = append(lines, l)
			mu.Unlock()
			// Progress for whoever watches: the guest's notes.
			if i := strings.Index(l, benchdata.LinePrefix+" note "); i >= 0 {
				fmt.Fprintf(os.Stderr, "bench: %dvcpu: %s\n", vcpus, l[i+len(benchdata.LinePrefix)+6:])
			}
		},
		Log: os.Stderr,
	})
	host.Duration = time.Since(start).Seconds()
	host.LoadSamples, host.OtherQEMU = mon.stop()
	host.LoadAfter = loadavg()
	host.Accel = accel
	mu.Lock()
	g, perr := benchdata.ParseConsole(strings.NewReader(strings.Join(lines, "\n")))
	mu.Unlock()
	if g == nil {
		return nil, perr
	}
	r := benchdata.NewReport(g, host, date)
	switch {
	case bootErr != nil:
		return r, fmt.Errorf("guest: %w (console in %s)", bootErr, logPath)
	case perr != nil:
		return r, perr
	case !g.Done:
		return r, fmt.Errorf("the guest did not finish (console in %s)", logPath)
	case g.Env == nil:
		return r, fmt.Errorf("the guest reported nothing: %s (console in %s)", strings.Join(g.Notes, "; "), logPath)
	}
	return r, nil
}

// renderAgain summarises reports again from their samples and rewrites
// them; with more than one it also writes their summary side by side.
func renderAgain(paths []string) error {
	var reports []*benchdata.Report
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var old benchdata.Report
		if err := json.Unmarshal(data, &old); err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		env := old.Guest
		r := benchdata.NewReport(&benchdata.Guest{Env: &env, Samples: old.Samples, Notes: old.Notes, Done: true}, old.Host, old.Date)
		if err := writeReport(strings.TrimSuffix(p, ".json"), r); err != nil {
			return err
		}
		fmt.Println(r.Markdown())
		reports = append(reports, r)
	}
	if len(reports) > 1 {
		s := benchdata.Summary(reports)
		fmt.Println(s)
		return os.WriteFile(filepath.Join(filepath.Dir(paths[0]), reports[0].Date+"-summary.md"), []byte(s), 0o644)
	}
	return nil
}

func writeReport(base string, r *benchdata.Report) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".json", append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(base+".md", []byte(r.Markdown()), 0o644)
}

// hostEnv describes this machine.
func hostEnv(repo string) benchdata.HostEnv {
	h := benchdata.HostEnv{CPUs: runtime.NumCPU()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("qemu-system-x86_64", "--version").Output(); err == nil {
		h.QEMU, _, _ = strings.Cut(string(out), "\n")
		h.QEMU = strings.TrimPrefix(h.QEMU, "QEMU emulator version ")
	}
	cmd := exec.Command("git", "describe", "--always", "--dirty")
	cmd.Dir = repo
	if out, err := cmd.Output(); err == nil {
		h.Commit = strings.TrimSpace(string(out))
	}
	return h
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// monitor samples the host's load and the other QEMU guests (those of
// other users of the machine) every 30 s while the guest runs.
type monitor struct {
	quit chan struct{}
	done chan struct{}
	load []float64
	qemu int
}

func startMonitor() *monitor {
	m := &monitor{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(30 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-m.quit:
				return
			case <-tick.C:
			}
			if f := strings.Fields(loadavg()); len(f) > 0 {
				if v, err := strconv.ParseFloat(f[0], 64); err == nil {
					m.load = append(m.load, v)
				}
			}
			// Ours is one of them.
			m.qemu = max(m.qemu, countQEMU()-1)
		}
	}()
	return m
}

func (m *monitor) stop() ([]float64, int) {
	close(m.quit)
	<-m.done
	if m.load == nil {
		m.load = []float64{}
	}
	return m.load, max(m.qemu, 0)
}

// countQEMU counts the QEMU processes on the host.
func countQEMU() int {
	n := 0
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "comm"))
		if err == nil && strings.HasPrefix(string(b), "qemu-system") {
			n++
		}
	}
	return n
}
