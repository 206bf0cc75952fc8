// Package store keeps the patch modules installed for boot: klp's own
// /var/lib/klp/<kernel-release>/ (which install and uninstall change) and
// kpatch's /var/lib/kpatch/<kernel-release>/ (only read, so that kpatch
// users can switch without reinstalling), and the markers that protect a
// boot from a patch that crashed the previous one.
package store

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klp-project/klp/internal/sysfile"
	"github.com/klp-project/klp/kernel"
)

// Default store locations. klp keeps the patches to load at boot in
// /var/lib/klp/<kernel-release>/ and reads kpatch's store as well, so that
// kpatch users can switch without reinstalling.
const (
	DefaultStore       = "/var/lib/klp"
	DefaultKpatchStore = "/var/lib/kpatch"
)

// ErrNotInstalled reports a patch that is not in the store.
var ErrNotInstalled = errors.New("patch not installed")

// Store is the set of installed patch modules, per kernel release.
type Store struct {
	// Dir is klp's own store, which install and uninstall change.
	Dir string
	// Kpatch is kpatch's store, only read.
	Kpatch string
}

// Installed is one installed patch module file.
type Installed struct {
	Name    string // module name (file name with "-" as "_", no extension)
	Release string // kernel release it is installed for
	Path    string
	Source  string // "klp" or "kpatch"
}

// moduleName returns the module name a file name stands for, or "" when the
// file is not a module or its name cannot be a module name.
func moduleName(file string) string {
	if kernel.ModuleExt(file) == "" {
		return ""
	}
	name := kernel.FileModuleName(file)
	if kernel.ValidateModuleName(name) != nil {
		return ""
	}
	return name
}

// ValidateRelease checks that a kernel release can name a directory of the
// store: a release read from a tree or given with -k becomes a path.
func ValidateRelease(release string) error {
	if release == "" || release == "." || release == ".." || strings.ContainsAny(release, "/\\\x00 \t\n") || len(release) > 255 {
		return fmt.Errorf("invalid kernel release %q", release)
	}
	return nil
}

// List returns the installed patches, for one release or (release "")
// for every release, klp's before kpatch's, each sorted by release and name.
func (s Store) List(release string) ([]Installed, error) {
	var all []Installed
	for _, src := range []struct{ dir, name string }{{s.Dir, "klp"}, {s.Kpatch, "kpatch"}} {
		if src.dir == "" {
			continue
		}
		if release != "" {
			if err := ValidateRelease(release); err != nil {
				return nil, fmt.Errorf("list installed patches: %w", err)
			}
		}
		releases := []string{release}
		if release == "" {
			entries, err := os.ReadDir(src.dir)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("list installed patches: %w", err)
			}
			releases = releases[:0]
			for _, e := range entries {
				if e.IsDir() && ValidateRelease(e.Name()) == nil {
					releases = append(releases, e.Name())
				}
			}
		}
		for _, rel := range releases {
			entries, err := os.ReadDir(filepath.Join(src.dir, rel))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("list installed patches: %w", err)
			}
			for _, e := range entries {
				if name := moduleName(e.Name()); name != "" && e.Type().IsRegular() {
					all = append(all, Installed{Name: name, Release: rel, Path: filepath.Join(src.dir, rel, e.Name()), Source: src.name})
				}
			}
		}
	}
	sort.SliceStable(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if a.Source != b.Source {
			return a.Source == "klp"
		}
		if a.Release != b.Release {
			return a.Release < b.Release
		}
		return a.Name < b.Name
	})
	return all, nil
}

// Find returns the installed file of the named patch for release; klp's
// store wins over kpatch's.
func (s Store) Find(name, release string) (Installed, error) {
	name = kernel.FileModuleName(name)
	list, err := s.List(release)
	if err != nil {
		return Installed{}, err
	}
	for _, in := range list {
		if in.Name == name {
			return in, nil
		}
	}
	return Installed{}, fmt.Errorf("%w: %s for kernel %s (looked in %s and %s)", ErrNotInstalled, name, release, filepath.Join(s.Dir, release), filepath.Join(s.Kpatch, release))
}

// Install copies a module file into klp's store for release, under its
// module name. The copy goes to a temporary file first and is renamed, so
// that a crash never leaves half a module for the boot to load.
//
// name is the module's own name, read from the file, so it is checked like
// anything read from a file before it becomes part of a path: a crafted
// module must not write outside the store.
func (s Store) Install(src, name, release string) (Installed, error) {
	if err := ValidateRelease(release); err != nil {
		return Installed{}, fmt.Errorf("install %s: %w", name, err)
	}
	if err := kernel.ValidateModuleName(name); err != nil {
		return Installed{}, fmt.Errorf("install: the module's own name: %w", err)
	}
	name = kernel.ModuleName(name)
	ext := kernel.ModuleExt(src)
	if ext == "" {
		return Installed{}, fmt.Errorf("install %s: %s is not a .ko, .ko.xz, .ko.zst or .ko.gz file", name, src)
	}
	if prev, err := s.Find(name, release); err == nil && prev.Source == "klp" {
		return prev, fmt.Errorf("install %s: already installed for %s as %s (uninstall it first)", name, release, prev.Path)
	}
	dir := filepath.Join(s.Dir, release)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Installed{}, fmt.Errorf("install %s: %w", name, err)
	}
	dst := filepath.Join(dir, name+ext)
	in, err := sysfile.OpenFollow(src)
	if err != nil {
		return Installed{}, fmt.Errorf("install %s: %w", name, err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(dir, ".install-*")
	if err != nil {
		return Installed{}, fmt.Errorf("install %s: %w", name, err)
	}
	_, err = io.Copy(tmp, in)
	err = finish(tmp, err)
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return Installed{}, fmt.Errorf("install %s: %w", name, err)
	}
	return Installed{Name: name, Release: release, Path: dst, Source: "klp"}, nil
}

// Uninstall removes the named patch from klp's store for release, and the
// release's directory when it becomes empty. kpatch's store is left alone.
func (s Store) Uninstall(name, release string) (Installed, error) {
	if err := kernel.ValidateModuleName(name); err != nil {
		return Installed{}, fmt.Errorf("uninstall: %w", err)
	}
	in, err := s.Find(name, release)
	if err != nil {
		return in, err
	}
	if in.Source != "klp" {
		return in, fmt.Errorf("uninstall %s: installed by kpatch (%s); klp only reads kpatch's store: remove it with 'kpatch uninstall %s'", name, in.Path, name)
	}
	if err := os.Remove(in.Path); err != nil {
		return in, fmt.Errorf("uninstall %s: %w", name, err)
	}
	_ = os.Remove(filepath.Dir(in.Path)) // only succeeds when empty
	return in, nil
}

// finish ends a write to f: it syncs f when the write succeeded (a file of
// the store, or a boot marker, must outlive a crash), closes it either way,
// and returns the first error of the write (werr), the sync and the close.
func finish(f *os.File, werr error) error {
	if werr == nil {
		werr = f.Sync()
	}
	return cmp.Or(werr, f.Close())
}
