package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klp-project/klp/internal/sysfile"
)

// BootOptions tune [Manager.LoadAll].
type BootOptions struct {
	// Wait applies to each module; its Timeout is the per-module deadline.
	Wait WaitOptions
	// Total bounds the whole run (0: no bound), so that a stalling patch
	// cannot hold the boot for minutes per module.
	Total time.Duration
	// RetryCrashed loads a module even though the machine went down while
	// it was being loaded last time.
	RetryCrashed bool
}

// BootReport says what LoadAll did.
type BootReport struct {
	Release  string     `json:"release"`
	Disabled string     `json:"disabled,omitempty"` // why nothing was loaded
	Outcomes []*Outcome `json:"outcomes"`
	Failed   []Failure  `json:"failed"`
	Skipped  []Failure  `json:"skipped"`
}

// Failure names a module that was not loaded and why.
type Failure struct {
	Name  string `json:"name"`
	Path  string `json:"path"`
	Error string `json:"error"`
	// Elapsed is how long a failed load took (0 for a skipped one).
	Elapsed time.Duration `json:"-"`
}

// ErrSomeFailed reports a LoadAll in which some modules failed or were
// skipped; the others were loaded.
var ErrSomeFailed = errors.New("some patches were not loaded")

// markerFile is written before each load at boot and removed after it.
// Finding it at the next boot means the machine went down while that module
// was loading, perhaps because of it. Its name then moves to crashedFile,
// and the module is skipped at every boot until an administrator loads it
// with --retry-crashed (or uninstalls it), so that a bad patch cannot crash
// every boot, nor every other one.
const (
	markerFile  = ".loading"
	crashedFile = ".crashed"
)

// LoadAll loads every patch installed for the running kernel, as the boot
// service does. It goes on past a failing module and reports each one.
// "klp.enable=0" on the kernel command line turns it off.
func (m *Manager) LoadAll(ctx context.Context, store Store, opts BootOptions) (*BootReport, error) {
	rel, err := m.Release()
	if err != nil {
		return nil, err
	}
	r := &BootReport{Release: rel, Outcomes: []*Outcome{}, Failed: []Failure{}, Skipped: []Failure{}}
	if cmdline, err := sysfile.ReadString(m.LP.ProcPath("cmdline")); err == nil {
		for _, f := range strings.Fields(cmdline) {
			if f == "klp.enable=0" {
				r.Disabled = "klp.enable=0 is on the kernel command line"
				return r, nil
			}
		}
	}
	installed, err := store.List(rel)
	if err != nil {
		return r, err
	}
	if opts.Total > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Total)
		defer cancel()
	}
	marker := filepath.Join(store.Dir, rel, markerFile)
	quarantine := filepath.Join(store.Dir, rel, crashedFile)
	crashed, err := readCrashed(marker, quarantine)
	if err != nil {
		return r, err
	}
	seen := map[string]bool{}
	for _, in := range installed {
		if seen[in.Name] {
			continue // klp's copy wins over kpatch's
		}
		seen[in.Name] = true
		if crashed[in.Name] && !opts.RetryCrashed {
			r.Skipped = append(r.Skipped, Failure{Name: in.Name, Path: in.Path,
				Error: "the machine went down while this patch was loading last time; load it by hand, or use --retry-crashed"})
			continue
		}
		if ctx.Err() != nil {
			r.Skipped = append(r.Skipped, Failure{Name: in.Name, Path: in.Path, Error: "total deadline passed"})
			continue
		}
		if err := writeMarker(marker, in.Name); err != nil {
			return r, err
		}
		start := time.Now()
		out, err := m.Load(ctx, in.Path, "", opts.Wait)
		// Removed only once the load returned: a crash leaves it.
		_ = os.Remove(marker)
		if out != nil && out.Result != "" {
			r.Outcomes = append(r.Outcomes, out)
		}
		if err != nil {
			r.Failed = append(r.Failed, Failure{Name: in.Name, Path: in.Path, Error: err.Error(), Elapsed: time.Since(start)})
		}
	}
	if opts.RetryCrashed {
		_ = os.Remove(quarantine)
	}
	if len(r.Failed) > 0 || len(r.Skipped) > 0 {
		return r, fmt.Errorf("%w: %d failed, %d skipped", ErrSomeFailed, len(r.Failed), len(r.Skipped))
	}
	return r, nil
}

func writeMarker(path, name string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write boot marker: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write boot marker: %w", err)
	}
	_, err = f.WriteString(name + "\n")
	if err == nil {
		// The marker must survive the crash it is there to detect.
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write boot marker: %w", err)
	}
	return nil
}

// readCrashed moves a marker left by a crash into the quarantine list and
// returns the list.
func readCrashed(marker, quarantine string) (map[string]bool, error) {
	crashed := map[string]bool{}
	if b, err := os.ReadFile(quarantine); err == nil {
		for _, n := range strings.Fields(string(b)) {
			crashed[n] = true
		}
	}
	b, err := os.ReadFile(marker)
	if err != nil {
		return crashed, nil
	}
	name := strings.TrimSpace(string(b))
	if name != "" && !crashed[name] {
		crashed[name] = true
		f, err := os.OpenFile(quarantine, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return crashed, fmt.Errorf("record crashed patch: %w", err)
		}
		_, err = f.WriteString(name + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return crashed, fmt.Errorf("record crashed patch: %w", err)
		}
	}
	return crashed, os.Remove(marker)
}
