package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/sysfile"
	"github.com/klp-project/klp/kernel"
)

// The boot markers. markerFile is written before each load at boot and
// removed after it. Finding it at the next boot means the machine went down
// while that module was loading, perhaps because of it. Its name then moves
// to crashedFile, and the module is skipped at every boot until an
// administrator loads it with --retry-crashed (or uninstalls it), so that a
// bad patch cannot crash every boot, nor every other one.
const (
	markerFile  = ".loading"
	crashedFile = ".crashed"
)

// MarkLoading records, durably, that the patch name is being loaded at boot
// for release.
func (s Store) MarkLoading(release, name string) error {
	if err := ValidateRelease(release); err != nil {
		return fmt.Errorf("write boot marker: %w", err)
	}
	path := filepath.Join(s.Dir, release, markerFile)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write boot marker: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|noFollow, 0o644)
	if err != nil {
		return fmt.Errorf("write boot marker: %w", err)
	}
	// The marker must survive the crash it is there to detect.
	_, err = f.WriteString(name + "\n")
	if err = finish(f, err); err != nil {
		return fmt.Errorf("write boot marker: %w", err)
	}
	return nil
}

// DoneLoading removes the marker once a load returned: a crash leaves it.
func (s Store) DoneLoading(release string) {
	if ValidateRelease(release) == nil {
		_ = os.Remove(filepath.Join(s.Dir, release, markerFile))
	}
}

// Crashed returns the patches of release that were loading when the machine
// went down at an earlier boot: a marker left by a crash joins the
// quarantine list, which it returns.
func (s Store) Crashed(release string) (map[string]bool, error) {
	crashed := map[string]bool{}
	if err := ValidateRelease(release); err != nil {
		return crashed, fmt.Errorf("read boot markers: %w", err)
	}
	marker := filepath.Join(s.Dir, release, markerFile)
	quarantine := filepath.Join(s.Dir, release, crashedFile)
	if b, err := sysfile.ReadBytes(quarantine, sysfile.MaxAttrSize); err == nil {
		for _, n := range strings.Fields(string(b)) {
			if kernel.ValidateModuleName(n) == nil {
				crashed[n] = true
			}
		}
	}
	b, err := sysfile.ReadBytes(marker, sysfile.MaxAttrSize)
	if err != nil {
		return crashed, nil
	}
	name := strings.TrimSpace(string(b))
	if kernel.ValidateModuleName(name) == nil && !crashed[name] {
		crashed[name] = true
		f, err := os.OpenFile(quarantine, os.O_WRONLY|os.O_CREATE|os.O_APPEND|noFollow, 0o644)
		if err != nil {
			return crashed, fmt.Errorf("record crashed patch: %w", err)
		}
		_, err = f.WriteString(name + "\n")
		if err = finish(f, err); err != nil {
			return crashed, fmt.Errorf("record crashed patch: %w", err)
		}
	}
	return crashed, os.Remove(marker)
}

// ClearCrashed empties the quarantine list of release (--retry-crashed).
func (s Store) ClearCrashed(release string) {
	if ValidateRelease(release) == nil {
		_ = os.Remove(filepath.Join(s.Dir, release, crashedFile))
	}
}

// noFollow keeps the store's own files from being reached through a
// symbolic link planted in the store.
const noFollow = unix.O_NOFOLLOW
