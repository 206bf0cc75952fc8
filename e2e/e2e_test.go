//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klp-project/klp/docs/schema"
	"github.com/klp-project/klp/e2e/internal/harness"
)

// Environment variables (besides those of e2e/setup.sh):
//
//	KLP_E2E_RUN      comma-separated scenario names to run (default: all)
//	KLP_E2E_TIMEOUT  per-boot timeout as a Go duration (default 15m: a loaded machine runs TCG slowly)
//	KLP_E2E_SERIAL   1 boots the kernels one after the other instead of in
//	                 parallel (one vCPU each), and runs TestKernels after
//	                 TestDebian instead of beside its Ansible group
//	KLP_E2E_ACCEL    kvm tries KVM before TCG (see harness.Boot)
//	KLP_E2E_MITIGATIONS 1 boots the guests with the kernel's mitigations of
//	                 speculative execution (default: mitigations=off, see
//	                 harness.Mitigations)

// logWriter sends each line written to it to t.Log.
type logWriter struct {
	t   *testing.T
	buf bytes.Buffer
	mu  sync.Mutex
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line)
			return len(p), nil
		}
		w.t.Log(strings.TrimRight(line, "\n"))
	}
}

// TestMain raises go test's -parallel default (GOMAXPROCS: 2 here) unless
// it was given: a guest takes one slot per test that drives it, and
// TestKernels holds one while it waits for TestDebian's scenarios, which
// left one of the two Debian guests waiting for a slot. What bounds the
// guests running at once is the tests' own structure (at most four).
func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		if err := flag.Set("test.parallel", "8"); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}

// serial says whether KLP_E2E_SERIAL asks for one guest at a time.
func serial() bool { return os.Getenv("KLP_E2E_SERIAL") == "1" }

// The busybox guests of TestKernels boot while TestDebian's Ansible group
// runs: that group leaves a core idle much of the time (the roll-out's
// first batch is one host, the controller waits on Prometheus), and the
// two tests in turn took half an hour. They wait for TestDebian's own
// scenarios, which keep both cores busy with boots and dpkg.
var debianGate = struct {
	planned atomic.Bool   // TestDebian runs in parallel with TestKernels
	once    sync.Once     // closes done once
	done    chan struct{} // closed when its scenarios are over
}{done: make(chan struct{})}

// debianScenariosOver lets TestKernels go on.
func debianScenariosOver() { debianGate.once.Do(func() { close(debianGate.done) }) }

func TestKernels(t *testing.T) {
	if !serial() {
		t.Parallel()
	}
	ctx := context.Background()
	repo, err := harness.RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	env, err := harness.Setup(ctx, repo, &logWriter{t: t})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("setup done in %v; kernels %v; cache %s", time.Since(start).Round(time.Millisecond), env.Kernels, env.Cache)
	// The checks' output runs to thousands of lines, printed when each
	// guest ends; a CI that shows only the end of the log would hide the
	// one that failed. The summary comes last, once every guest is done.
	var fails failures
	t.Cleanup(func() { fails.report(t) })

	work := filepath.Join(repo, "e2e", ".work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	bins, err := harness.BuildBinaries(ctx, repo, work)
	if err != nil {
		t.Fatal(err)
	}
	timeout := 15 * time.Minute
	if v := os.Getenv("KLP_E2E_TIMEOUT"); v != "" {
		if timeout, err = time.ParseDuration(v); err != nil {
			t.Fatalf("KLP_E2E_TIMEOUT: %v", err)
		}
	}
	// Every guest gets the other kernels' build of one module (a vermagic
	// its kernel refuses), so all builds come first, in parallel.
	start = time.Now()
	modDirs := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var buildErrs []error
	for _, k := range env.Kernels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir, err := env.Modules(ctx, k, &logWriter{t: t})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				buildErrs = append(buildErrs, err)
			}
			modDirs[k] = dir
		}()
	}
	wg.Wait()
	for _, err := range buildErrs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("modules ready in %v", time.Since(start).Round(time.Millisecond))
	// Every top-level test has passed its call to t.Parallel by now, so
	// planned is set if TestDebian runs at all.
	if debianGate.planned.Load() {
		start := time.Now()
		<-debianGate.done
		t.Logf("timing: waited %v for TestDebian's scenarios", time.Since(start).Round(time.Second))
	}
	for _, k := range env.Kernels {
		g := harness.Guest{Kernel: k, ModDir: modDirs[k], Foreign: map[string]string{}}
		for other, dir := range modDirs {
			if other != k {
				g.Foreign[other] = dir
			}
		}
		t.Run(k, func(t *testing.T) {
			if !serial() {
				t.Parallel()
			}
			fails.watch(t, "")
			runKernel(t, env, g, bins, filepath.Join(work, k), timeout, &fails)
		})
	}
}

func runKernel(t *testing.T, env *harness.Env, g harness.Guest, bins harness.Binaries, work string, timeout time.Duration, fails *failures) {
	ctx := context.Background()
	kver := g.Kernel
	start := time.Now()
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	initrd, err := env.Initramfs(ctx, work, g, bins)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("initramfs ready in %v", time.Since(start).Round(time.Millisecond))

	logPath := filepath.Join(work, "console.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cw := bufio.NewWriter(logf)
	defer cw.Flush()
	var lines []string
	// no_timer_check: on a loaded host TCG runs so slowly that the
	// kernel's early check of the IO-APIC timer fails and 6.1 panics
	// ("IO-APIC + timer doesn't work!") before init.
	cmdline := "console=ttyS0 panic=-1 oops=panic quiet " + harness.Mitigations() + "no_timer_check"
	if run := os.Getenv("KLP_E2E_RUN"); run != "" {
		cmdline += " klp_e2e_run=" + run
	}
	outbox := filepath.Join(work, "outbox.img")
	if err := harness.NewOutbox(outbox); err != nil {
		t.Fatal(err)
	}
	bootStart := time.Now()
	accel, bootErr := harness.Boot(ctx, harness.BootConfig{
		Outbox:  outbox,
		Kernel:  env.KernelImage(kver),
		Initrd:  initrd,
		Append:  cmdline,
		Timeout: timeout,
		Console: cw,
		OnLine:  func(l string) { lines = append(lines, l) },
		Log:     &logWriter{t: t},
	})
	t.Logf("guest ran %v with -accel %s; console log in %s", time.Since(bootStart).Round(time.Millisecond), accel, logPath)

	c := harness.ParseConsole(lines, kver)
	for _, n := range c.Notes {
		t.Logf("note: %s", n)
	}
	seen := map[string]int{}
	for _, ch := range c.Checks {
		name := ch.Name
		// Subtest names must be unique for -run to address them.
		if seen[name]++; seen[name] > 1 {
			name = fmt.Sprintf("%s#%d", name, seen[name])
		}
		t.Run(name, func(t *testing.T) {
			fails.watch(t, ch.Detail)
			if ch.Pass {
				t.Log(ch.Detail)
				return
			}
			t.Errorf("%s\n--- console excerpt of scenario %s:\n%s", ch.Detail, ch.Scenario, c.Excerpt(ch.Scenario, 80))
		})
	}
	files, err := harness.ReadOutbox(outbox)
	if err != nil {
		t.Error(err)
	}
	checkSnapshot(t, c, files, g, bins, work)
	if bootErr != nil || !c.Done {
		t.Fatalf("guest did not finish (no KLPTEST-DONE): %v\n--- console tail:\n%s", bootErr, harness.Tail(lines, 60))
	}
	if len(c.Checks) == 0 {
		t.Fatalf("guest reported no checks\n--- console tail:\n%s", harness.Tail(lines, 60))
	}
	if err := c.CheckCounts(); err != nil {
		t.Fatalf("%v\n--- console tail:\n%s", err, harness.Tail(lines, 60))
	}
}

// failures collects the names of the failed tests of TestKernels, with
// the first line of each check's detail, for one summary at its end.
type failures struct {
	mu    sync.Mutex
	lines []string
}

// watch notes t, with the start of detail, if t fails.
func (f *failures) watch(t *testing.T, detail string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		line := t.Name()
		if d, _, _ := strings.Cut(detail, "\n"); d != "" {
			if len(d) > 300 {
				d = d[:300] + "..."
			}
			line += ": " + d
		}
		f.mu.Lock()
		f.lines = append(f.lines, line)
		f.mu.Unlock()
	})
}

func (f *failures) report(t *testing.T) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.lines) > 0 {
		t.Logf("%d failed, in short (their output is above):\n%s", len(f.lines), strings.Join(f.lines, "\n"))
	}
}

// The files the klp-snapshot scenario sends (e2e/guest/snapshot.go).
const (
	snapshotArchive = "klp-snapshot.tar.zst"
	snapshotLive    = "klp-snapshot-live.json"
)

// checkSnapshot reads the archive that klp snapshot took in the guest with
// this machine's klp (another machine, another kernel, no live patching)
// and checks that klp --snapshot prints there exactly what klp printed live
// in the guest at that moment: every read command, plain, verbose and JSON,
// and preflight of every module of the suite (the same .ko files, here).
func checkSnapshot(t *testing.T, c *harness.Console, files map[string][]byte, g harness.Guest, bins harness.Binaries, work string) {
	ran := false
	for _, ch := range c.Checks {
		ran = ran || ch.Scenario == "klp-snapshot"
	}
	if !ran {
		return
	}
	t.Run("klp-snapshot/host", func(t *testing.T) {
		for _, n := range []string{snapshotArchive, snapshotLive} {
			if files[n] == nil {
				t.Fatalf("%s: the guest did not send it", n)
			}
		}
		dir := filepath.Join(work, "snapshot")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, snapshotArchive)
		if err := os.WriteFile(file, files[snapshotArchive], 0o600); err != nil {
			t.Fatal(err)
		}
		kgr := filepath.Join(dir, "kgr")
		os.Remove(kgr)
		if err := os.Symlink(bins.Klp, kgr); err != nil {
			t.Fatal(err)
		}
		var live []harness.Command
		if err := json.Unmarshal(files[snapshotLive], &live); err != nil {
			t.Fatal(err)
		}
		// The module files are here under other names.
		toHost := map[string]string{harness.GuestModuleDir: g.ModDir}
		for rel, d := range g.Foreign {
			toHost[harness.GuestForeignDir+"/"+rel] = d
		}
		fromHost := func(s string) string {
			for guest, host := range toHost {
				s = strings.ReplaceAll(s, host, guest)
			}
			return s
		}
		same := 0
		for _, want := range live {
			args := []string{"--snapshot", file}
			for _, a := range want.Args {
				for guest, host := range toHost {
					if rest, ok := strings.CutPrefix(a, guest+"/"); ok {
						a = filepath.Join(host, rest)
					}
				}
				args = append(args, a)
			}
			prog := bins.Klp
			if want.Prog == "kgr" {
				prog = kgr
			}
			cmd := exec.Command(prog, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			code := 0
			if err := cmd.Run(); err != nil {
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Fatalf("%s: %v", prog, err)
				}
				code = ee.ExitCode()
			}
			got := harness.Command{Prog: want.Prog, Args: want.Args, Code: code, Stdout: fromHost(stdout.String()), Stderr: fromHost(stderr.String())}
			if got.Code != want.Code || !harness.SameOutput(want.Stdout, got.Stdout) || got.Stderr != want.Stderr {
				t.Errorf("%s --snapshot %s: exit %d here, %d live\n--- stdout here:\n%s--- live:\n%s--- stderr here:\n%s--- live:\n%s",
					want.Prog, strings.Join(want.Args, " "), got.Code, want.Code, got.Stdout, want.Stdout, got.Stderr, want.Stderr)
				continue
			}
			same++
		}
		t.Logf("%d of %d commands print here, from the %d-byte archive, what they printed live in the guest", same, len(live), len(files[snapshotArchive]))
		out, err := exec.Command(bins.Klp, "--json", "snapshot", "--show", file).Output()
		if err != nil {
			t.Fatalf("klp snapshot --show: %v", err)
		}
		if err := schema.Validate(schema.Snapshot, out); err != nil {
			t.Error(err)
		}
	})
}
