package kernel

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/klp-project/klp/internal/poll"
	"github.com/klp-project/klp/internal/sysfile"
	"golang.org/x/sys/unix"
)

// AttrWriter writes a sysfs or procfs attribute. The kernel refuses a bad
// value in write(2) with an errno (EINVAL, EBUSY, EACCES...).
//
// Contract, shared by the real writer and every test double (see
// docs/fakekernel.md):
//   - path is the attribute's full path, below the handle's sysfs or procfs
//     root;
//   - value is written as is, in one write(2), like `echo -n value > path`;
//   - the file is never created: a missing attribute fails with an error
//     satisfying errors.Is(err, fs.ErrNotExist);
//   - the errno stays reachable: the error is an [*os.PathError] (Op "open"
//     or "write ...") around it, so errors.Is(err, unix.EINVAL) works and the
//     caller adds its own context and sentinel.
type AttrWriter interface {
	WriteAttr(path, value string) error
}

// ModuleSyscalls are the module syscalls. Implementations return the raw
// errno (a [unix.Errno], possibly wrapped) so that package kmod can translate
// it into a sentinel.
type ModuleSyscalls interface {
	// FinitModule is finit_module(2): load the module in the open file fd.
	// flags are MODULE_INIT_* bits ([unix.MODULE_INIT_IGNORE_MODVERSIONS],
	// [unix.MODULE_INIT_IGNORE_VERMAGIC], [unix.MODULE_INIT_COMPRESSED_FILE]).
	FinitModule(fd int, params string, flags int) error
	// InitModule is init_module(2): load the (uncompressed) module image.
	InitModule(image []byte, params string) error
	// DeleteModule is delete_module(2). flags are O_NONBLOCK and
	// optionally O_TRUNC (forced unload, CONFIG_MODULE_FORCE_UNLOAD only).
	DeleteModule(name string, flags int) error
}

// Signaller sends a signal to a process, as kill(2) does.
type Signaller interface {
	Kill(pid int, sig syscall.Signal) error
}

// Seams are the actions of a [Live] handle. [OpenLive] uses the real ones;
// a test double passes its own to [Simulate].
type Seams struct {
	Attr    AttrWriter
	Modules ModuleSyscalls
	Signals Signaller
	// Log is the kernel log, watched while klp waits for a transition.
	Log LogWatcher
	// Clock is the time klp waits in for this kernel's transitions and
	// references (nil = the system's): a test double's own, on which its
	// retry work runs.
	Clock poll.Clock
}

// Live is the running kernel: a [Handle] for reading, plus the actions that
// change it (attribute writes, module syscalls, signals). Only [OpenLive]
// and [Simulate] make one, so that what klp reads is what it acts on: a
// copied tree or a snapshot can be read, never acted on, and a test double's
// tree is acted on only through the test double.
type Live struct {
	*Handle
	seams Seams
}

// OpenLive returns the running kernel. Empty roots are the defaults; Sys and
// Proc must be the kernel's own sysfs and procfs mounts (their file system
// types are checked), else the error wraps [ErrNotLive] and names the root: a
// copied tree is for reading only ([Open]).
func OpenLive(r Roots) (*Live, error) {
	h, err := Open(r)
	if err != nil {
		return nil, err
	}
	for _, root := range []struct {
		dir, kind string
		magic     int64
	}{{h.roots.Sys, "sysfs", unix.SYSFS_MAGIC}, {h.roots.Proc, "procfs", unix.PROC_SUPER_MAGIC}} {
		if !isFS(root.dir, root.magic) {
			return nil, fmt.Errorf("%w: %s is not a %s mount (a copied tree is read only)", ErrNotLive, root.dir, root.kind)
		}
	}
	return &Live{Handle: h, seams: Seams{Attr: fileAttrWriter{}, Modules: unixModules{}, Signals: unixSignals{}, Log: &keptKmsg{dev: DevKmsg{Path: h.DevPath("kmsg")}}}}, nil
}

// Simulate returns a Live handle whose actions all go to the given seams:
// for test doubles of the kernel (internal/fakekernel), whose tree h reads
// and whose seams react as the kernel would. A nil seam refuses its actions
// with [ErrNotLive]: nothing here ever defaults to the host's syscalls.
func Simulate(h *Handle, s Seams) *Live {
	return &Live{Handle: h, seams: s}
}

// WriteAttr writes value to the attribute at path, which must lie below the
// handle's sysfs or procfs root (see [AttrWriter] for the contract). The
// real writer also refuses a path that is a symbolic link or not on sysfs or
// procfs, checked on the open file.
func (l *Live) WriteAttr(path, value string) error {
	if !l.under(path) {
		return &os.PathError{Op: "write", Path: path, Err: fmt.Errorf("%w: not below %s or %s", ErrInvalidName, l.roots.Sys, l.roots.Proc)}
	}
	if l.seams.Attr == nil {
		return &os.PathError{Op: "write", Path: path, Err: ErrNotLive}
	}
	return l.seams.Attr.WriteAttr(path, value)
}

// under reports whether path lies strictly below the sysfs or procfs root.
func (l *Live) under(path string) bool { return below(path, l.roots.Sys, l.roots.Proc) }

// Clock returns the clock waits on this kernel run on: the system's for
// the running kernel, the test double's own for a simulated one.
func (l *Live) Clock() poll.Clock {
	if l.seams.Clock == nil {
		return poll.System
	}
	return l.seams.Clock
}

// FinitModule makes the finit_module(2) syscall.
func (l *Live) FinitModule(fd int, params string, flags int) error {
	if l.seams.Modules == nil {
		return ErrNotLive
	}
	return l.seams.Modules.FinitModule(fd, params, flags)
}

// InitModule makes the init_module(2) syscall.
func (l *Live) InitModule(image []byte, params string) error {
	if l.seams.Modules == nil {
		return ErrNotLive
	}
	return l.seams.Modules.InitModule(image, params)
}

// DeleteModule makes the delete_module(2) syscall for a valid module name.
func (l *Live) DeleteModule(name string, flags int) error {
	if err := ValidateModuleName(name); err != nil {
		return err
	}
	if l.seams.Modules == nil {
		return ErrNotLive
	}
	return l.seams.Modules.DeleteModule(name, flags)
}

// ErrBadSignalTarget reports a signal refused because its target is not
// one process: kill(2) reads 0 and negative numbers as process groups or
// every process, and PID 1 is never a target of klp's.
var ErrBadSignalTarget = errors.New("not a process klp may signal")

// Kill sends sig to the process pid. Only a single process other than init
// can be the target: 0, negative PIDs (process groups, or every process) and
// PID 1 are refused with [ErrBadSignalTarget], whatever the caller read.
func (l *Live) Kill(pid int, sig syscall.Signal) error {
	if pid <= 1 {
		return fmt.Errorf("signal %d: %w", pid, ErrBadSignalTarget)
	}
	if l.seams.Signals == nil {
		return ErrNotLive
	}
	return l.seams.Signals.Kill(pid, sig)
}

// fileAttrWriter is the real [AttrWriter]: one write(2), never through a
// symbolic link, and only to a file on sysfs or procfs.
type fileAttrWriter struct{}

func (fileAttrWriter) WriteAttr(path, value string) error {
	return sysfile.WriteString(path, value, unix.SYSFS_MAGIC, unix.PROC_SUPER_MAGIC)
}

// unixModules makes the real module syscalls through golang.org/x/sys/unix.
// They need CAP_SYS_MODULE.
type unixModules struct{}

func (unixModules) FinitModule(fd int, params string, flags int) error {
	return unix.FinitModule(fd, params, flags)
}

func (unixModules) InitModule(image []byte, params string) error {
	return unix.InitModule(image, params)
}

func (unixModules) DeleteModule(name string, flags int) error {
	return unix.DeleteModule(name, flags)
}

// unixSignals sends real signals.
type unixSignals struct{}

func (unixSignals) Kill(pid int, sig syscall.Signal) error { return unix.Kill(pid, sig) }
