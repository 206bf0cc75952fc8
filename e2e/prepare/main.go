// Command prepare fills the e2e suite's cache ahead of the suite (make
// e2e-prepare): it installs what the host lacks and downloads the kernels
// (e2e/setup.sh), builds the test modules for each kernel and the Debian
// guest image, as the suite itself would on its first run. make test starts
// it in the background while the stages before the e2e stage run, so that
// on a machine without the cache the downloads and mmdebstrap overlap them;
// with the cache filled it has nothing to do. Each part takes the cache's
// own lock, so it can run beside the suite.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/klp-project/klp/e2e/internal/harness"
)

func main() {
	// Stopped (make test stops it when a stage before the e2e stage
	// fails), it stops its builds: their commands get the context.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e-prepare:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	start := time.Now()
	repo, err := harness.RepoRoot(".")
	if err != nil {
		return err
	}
	env, err := harness.Setup(ctx, repo, os.Stderr)
	if err != nil {
		return err
	}
	// The image and each kernel's modules are independent.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	do := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.Now()
			err := fn()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				return
			}
			fmt.Fprintf(os.Stderr, "e2e-prepare: %s ready in %v\n", name, time.Since(t).Round(100*time.Millisecond))
		}()
	}
	for _, k := range env.Kernels {
		do("modules for "+k, func() error { _, err := env.Modules(ctx, k, os.Stderr); return err })
	}
	do("Debian guest image", func() error { _, err := env.DebianImage(ctx, os.Stderr); return err })
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "e2e-prepare: the cache is ready (%v)\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}
