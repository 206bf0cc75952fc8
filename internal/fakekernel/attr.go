package fakekernel

import (
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// WriteAttr implements kmod.AttrWriter the way the kernel's sysfs and
// procfs store functions react, which a file in a temporary directory
// cannot do by itself:
//
//   - /sys/kernel/livepatch/<p>/enabled follows enabled_store
//     (docs/fakekernel.md): kstrtobool, EINVAL for the current value, reverse when <p> is
//     in transition, EBUSY when another patch is, EINVAL for re-enabling
//     on 5.1+ (pre-5.1: re-enable, with the stacking rules);
//   - force follows force_store, signal follows signal_store;
//   - transition, replace, stack_order and <obj>/patched are read-only:
//     EACCES, as kernfs answers a write to a file without a store op;
//   - /sys/module/<m>/parameters/<x>: set if writable, else EACCES;
//   - /proc/sys/kernel/ftrace_enabled: 0 gives EBUSY while a patch is
//     applied (5.5+); /proc/sys/kernel/modules_disabled: only 1 is
//     accepted;
//   - a missing path gives ENOENT; any other existing file is written
//     as is.
//
// Errors are *os.PathError values wrapping the errno, like those of a real
// write(2) (Op "open" for ENOENT/EACCES, "write" for the store's errors).
func (k *Kernel) WriteAttr(path, value string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	defer k.sync()
	path = filepath.Clean(path)
	if _, err := os.Lstat(path); err != nil {
		return &os.PathError{Op: "open", Path: path, Err: unix.ENOENT}
	}
	werr := func(err error) error {
		if err == nil {
			return nil
		}
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	if rel, ok := k.under(k.sys, path); ok {
		parts := strings.Split(rel, string(filepath.Separator))
		switch {
		case len(parts) >= 4 && parts[0] == "kernel" && parts[1] == "livepatch":
			p := k.sysfsPatch(parts[2])
			if p == nil {
				return &os.PathError{Op: "open", Path: path, Err: unix.ENOENT}
			}
			if len(parts) == 4 {
				switch parts[3] {
				case "enabled":
					return werr(k.enabledStore(p, value))
				case "force":
					return werr(k.forceStore(p, value))
				case "signal":
					return werr(k.signalStore(p, value))
				}
			}
			return &os.PathError{Op: "open", Path: path, Err: unix.EACCES}
		case len(parts) == 4 && parts[0] == "module" && parts[2] == "parameters":
			m := k.findModExact(parts[1])
			if m == nil {
				return &os.PathError{Op: "open", Path: path, Err: unix.ENOENT}
			}
			for i := range m.params {
				if m.params[i].Name == parts[3] {
					if !m.params[i].Writable {
						return &os.PathError{Op: "open", Path: path, Err: unix.EACCES}
					}
					v, err := setParam(m.params[i].Value, strings.TrimSuffix(value, "\n"))
					if err != nil {
						return werr(err)
					}
					m.params[i].Value = v
					return nil
				}
			}
			return &os.PathError{Op: "open", Path: path, Err: unix.ENOENT}
		case len(parts) >= 2 && parts[0] == "module":
			return &os.PathError{Op: "open", Path: path, Err: unix.EACCES}
		}
	}
	if rel, ok := k.under(k.proc, path); ok {
		switch rel {
		case filepath.Join("sys", "kernel", "ftrace_enabled"):
			n, err := kstrtoint(value)
			if err != nil {
				return werr(err)
			}
			if n == 0 && k.f.FtracePermanent && k.anyPatched() {
				return werr(unix.EBUSY)
			}
			k.ftraceEnabled = n != 0
			return nil
		case filepath.Join("sys", "kernel", "modules_disabled"):
			n, err := kstrtoint(value)
			if err != nil || n != 1 {
				return werr(unix.EINVAL)
			}
			k.modulesDisabled = true
			return nil
		case filepath.Join("sys", "kernel", "unsupported"):
			if !k.f.SUSESupport {
				break
			}
			n, err := kstrtoint(value)
			if err != nil {
				return werr(err)
			}
			k.unsupported = n
			return nil
		case filepath.Join("sys", "kernel", "tainted"):
			n, err := kstrtoint(value)
			if err != nil {
				return werr(unix.EINVAL)
			}
			k.tainted |= uint64(n)
			return nil
		}
	}
	// Anything else: a plain write.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (k *Kernel) under(root, path string) (string, bool) {
	rel, err := filepath.Rel(root, path)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return "", false
	}
	return rel, true
}

func (k *Kernel) sysfsPatch(name string) *patch {
	for _, p := range k.patches {
		if p.sysfs && p.name == name {
			return p
		}
	}
	return nil
}

func (k *Kernel) anyPatched() bool {
	for _, p := range k.onList() {
		for _, o := range p.objs {
			if o.patched {
				return true
			}
		}
	}
	return false
}

// enabledStore is enabled_store.
func (k *Kernel) enabledStore(p *patch, value string) error {
	enabled, err := kstrtobool(value)
	if err != nil {
		return err
	}
	if p.enabled == enabled {
		return unix.EINVAL // already in requested state
	}
	switch {
	case p == k.trans:
		k.reverse()
		return nil
	case !enabled:
		return k.disablePatch(p)
	case k.f.Pre51:
		return k.enablePatch(p)
	default:
		return unix.EINVAL // do not allow to re-enable a disabled patch
	}
}

// forceStore is force_store.
func (k *Kernel) forceStore(p *patch, value string) error {
	v, err := kstrtobool(value)
	if err != nil {
		return err
	}
	if !v {
		return nil
	}
	if p != k.trans {
		return unix.EINVAL
	}
	k.force()
	return nil
}

// signalStore is the 4.15–5.0 signal_store.
func (k *Kernel) signalStore(p *patch, value string) error {
	v, err := kstrtobool(value)
	if err != nil {
		return err
	}
	if !v {
		return nil
	}
	if p != k.trans {
		return unix.EINVAL
	}
	k.sendSignals(true)
	return nil
}
