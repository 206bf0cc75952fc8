package kmod

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/klp-project/klp/internal/poll"
)

// Refcnt reads /sys/module/<name>/refcnt, the module's reference count.
// An enabled (or transitioning) livepatch holds one reference on itself,
// so it reads 1 until a disable or replace completes; a patch whose
// transition was forced keeps that reference forever. delete_module
// succeeds only at 0.
//
// A module that is not loaded gives [ErrNotLoaded]. Built-in modules have
// a /sys/module directory but no refcnt (nor does anything when the kernel
// lacks CONFIG_MODULE_UNLOAD); they are reported as not loaded too.
func (fs *FS) Refcnt(name string) (int, error) {
	name, err := cleanName(name)
	if err != nil {
		return 0, err
	}
	path := fs.modulePath(name, "refcnt")
	s, err := fs.k.ReadString(path)
	if err != nil {
		if isNotExist(err) {
			return 0, fmt.Errorf("%w: %s: %w", ErrNotLoaded, name, err)
		}
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %q: %w", ErrParse, path, s, err)
	}
	return n, nil
}

// Taint reads /sys/module/<name>/taint: the module's taint letters, e.g.
// "OEK" for an out-of-tree (O), unsigned (E) livepatch (K) module, or ""
// when the module is untainted. Loaded-but-disabled livepatch modules have
// no /sys/kernel/livepatch directory on 5.1+, so the K letter is how to
// find them.
func (fs *FS) Taint(name string) (string, error) {
	return fs.moduleAttr(name, "taint")
}

// InitState reads /sys/module/<name>/initstate: "live", "coming" or
// "going" (the lower-case form of [State]).
func (fs *FS) InitState(name string) (string, error) {
	return fs.moduleAttr(name, "initstate")
}

func (fs *FS) moduleAttr(name, attr string) (string, error) {
	name, err := cleanName(name)
	if err != nil {
		return "", err
	}
	path := fs.modulePath(name, attr)
	s, err := fs.k.ReadString(path)
	if err != nil {
		if isNotExist(err) {
			return "", fmt.Errorf("%w: %s: %w", ErrNotLoaded, name, err)
		}
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return s, nil
}

// Holders lists /sys/module/<name>/holders: the modules that use this one
// (the same set as /proc/modules' fourth column), sorted.
func (fs *FS) Holders(name string) ([]string, error) {
	name, err := cleanName(name)
	if err != nil {
		return nil, err
	}
	path := fs.modulePath(name, "holders")
	ents, err := fs.k.ReadDir(path)
	if err != nil {
		if isNotExist(err) {
			return nil, fmt.Errorf("%w: %s: %w", ErrNotLoaded, name, err)
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out, nil
}

// Parameters reads /sys/module/<name>/parameters: every readable
// parameter's current value. Parameters declared with mode 0 have no file;
// write-only or unreadable ones are skipped. A module without parameters
// gives an empty map.
func (fs *FS) Parameters(name string) (map[string]string, error) {
	name, err := cleanName(name)
	if err != nil {
		return nil, err
	}
	dir := fs.modulePath(name, "parameters")
	ents, err := fs.k.ReadDir(dir)
	out := map[string]string{}
	if err != nil {
		if isNotExist(err) {
			if fs.k.IsDir(fs.modulePath(name)) {
				return out, nil
			}
			return nil, fmt.Errorf("%w: %s: %w", ErrNotLoaded, name, err)
		}
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	for _, e := range ents {
		v, err := fs.k.ReadString(fs.modulePath(name, "parameters", e.Name()))
		if err != nil {
			continue // EACCES for write-only or root-only parameters
		}
		out[e.Name()] = v
	}
	return out, nil
}

// SetParameter writes value to /sys/module/<name>/parameters/<param>, as
// `echo value > ...` does, through the handle's attribute writer. Only parameters
// declared writable (mode 0644/0200) can be set at run time; the kernel
// answers EACCES (open) for others and EINVAL for a value the parameter
// type rejects. The errno stays reachable through errors.Is.
func (l *Loader) SetParameter(name, param, value string) error {
	name, err := cleanName(name)
	if err != nil {
		return err
	}
	if param == "" || strings.ContainsAny(param, "/\x00") || param == "." || param == ".." {
		return fmt.Errorf("set parameter %s: invalid parameter name %q", name, param)
	}
	path := l.modulePath(name, "parameters", param)
	if err := l.live.WriteAttr(path, value); err != nil {
		if isNotExist(err) {
			if !l.k.IsDir(l.modulePath(name)) {
				return fmt.Errorf("%w: set parameter %s.%s: %w", ErrNotLoaded, name, param, err)
			}
		}
		return fmt.Errorf("set parameter %s.%s=%q: %w", name, param, value, err)
	}
	return nil
}

// Compression reads /sys/module/compression: the one compression format
// ("xz", "zstd", "gzip") the kernel can decompress itself, i.e. accepts
// with MODULE_INIT_COMPRESSED_FILE (CONFIG_MODULE_DECOMPRESS, 5.17+). It
// returns "" when the file is absent.
func (fs *FS) Compression() (string, error) {
	path := fs.sysPath("module", "compression")
	s, err := fs.k.ReadString(path)
	if err != nil {
		if isNotExist(err) {
			return "", nil
		}
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return s, nil
}

// WaitRefcnt polls /sys/module/<name>/refcnt until it reads want, with the
// back-off of internal/poll (1 ms doubling to a 10 ms cap), or until ctx
// is done. It is what the kernel selftests' unload_mod does before rmmod:
// after a livepatch's disable transition completes, the kernel frees the
// patch asynchronously and only then drops the module's self-reference.
//
// If the module goes away while waiting, WaitRefcnt returns an error
// wrapping [ErrNotLoaded]; callers waiting for an unload should treat that
// as success.
func (fs *FS) WaitRefcnt(ctx context.Context, name string, want int) error {
	var last int
	err := poll.Until(ctx, func() (bool, error) {
		n, err := fs.Refcnt(name)
		if err != nil {
			return false, err
		}
		last = n
		return n == want, nil
	}, poll.Options{})
	if cerr := ctx.Err(); err != nil && cerr != nil && errors.Is(err, cerr) {
		return fmt.Errorf("wait for %s refcnt %d (now %d): %w", name, want, last, err)
	}
	return err
}

// Srcversion reads /sys/module/<name>/srcversion: the checksum of the
// module's source, which tells two builds of one module apart. A module
// built without MODULE_VERSION (and a kernel without
// CONFIG_MODULE_SRCVERSION_ALL) has none.
func (fs *FS) Srcversion(name string) (string, error) {
	return fs.moduleAttr(name, "srcversion")
}
