//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klp-project/klp/e2e/internal/harness"
)

// Environment variables (besides those of e2e/setup.sh):
//
//	KLP_E2E_RUN      comma-separated scenario names to run (default: all)
//	KLP_E2E_TIMEOUT  per-boot timeout as a Go duration (default 15m: a loaded machine runs TCG slowly)
//	KLP_E2E_SERIAL   1 boots the kernels one after the other instead of in
//	                 parallel (one vCPU each)
//	KLP_E2E_ACCEL    kvm tries KVM before TCG (see harness.Boot)

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

func TestKernels(t *testing.T) {
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
	for _, k := range env.Kernels {
		g := harness.Guest{Kernel: k, ModDir: modDirs[k], Foreign: map[string]string{}}
		for other, dir := range modDirs {
			if other != k {
				g.Foreign[other] = dir
			}
		}
		t.Run(k, func(t *testing.T) {
			if os.Getenv("KLP_E2E_SERIAL") != "1" {
				t.Parallel()
			}
			runKernel(t, env, g, bins, filepath.Join(work, k), timeout)
		})
	}
}

func runKernel(t *testing.T, env *harness.Env, g harness.Guest, bins harness.Binaries, work string, timeout time.Duration) {
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
	cmdline := "console=ttyS0 panic=-1 oops=panic quiet"
	if run := os.Getenv("KLP_E2E_RUN"); run != "" {
		cmdline += " klp_e2e_run=" + run
	}
	bootStart := time.Now()
	accel, bootErr := harness.Boot(ctx, harness.BootConfig{
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
			if ch.Pass {
				t.Log(ch.Detail)
				return
			}
			t.Errorf("%s\n--- console excerpt of scenario %s:\n%s", ch.Detail, ch.Scenario, c.Excerpt(ch.Scenario, 80))
		})
	}
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
