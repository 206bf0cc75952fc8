package livepatch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/klp-project/klp/internal/sysfile"
	"golang.org/x/sys/unix"
)

// AttrWriter is the seam through which attribute writes reach the kernel.
// The kernel refuses a bad value in write(2) with an errno, which a file in
// a test tree cannot do, so tests substitute a fake kernel. WriteAttr writes
// value in one write(2) without creating the file, and returns errors that
// keep the errno reachable (errors.Is(err, unix.EINVAL)).
type AttrWriter interface {
	WriteAttr(path, value string) error
}

type fileWriter struct{}

func (fileWriter) WriteAttr(path, value string) error { return sysfile.WriteString(path, value) }

// WithWriter returns a copy of fs whose attribute writes go through w.
func (fs FS) WithWriter(w AttrWriter) FS {
	fs.writer = w
	return fs
}

func (fs FS) write(path, value string) error {
	w := fs.writer
	if w == nil {
		w = fileWriter{}
	}
	return w.WriteAttr(path, value)
}

var (
	// ErrTransitionInProgress reports that another patch is in transition;
	// the kernel runs one at a time (EBUSY).
	ErrTransitionInProgress = errors.New("another patch is in transition")
	// ErrAlreadyInState reports a write of the value the patch already has
	// (EINVAL "already in requested state").
	ErrAlreadyInState = errors.New("patch already in the requested state")
	// ErrNotInTransition reports force or signal on a patch that is not the
	// one in transition (EINVAL).
	ErrNotInTransition = errors.New("patch is not in transition")
	// ErrReenableUnsupported reports an attempt to enable a disabled patch
	// on a kernel (5.1 and later) that frees a patch once it is disabled.
	ErrReenableUnsupported = errors.New("this kernel cannot re-enable a disabled patch")
	// ErrPermission reports a write refused for lack of privilege.
	ErrPermission = errors.New("permission denied (root is required)")
	// ErrUnsupportedAttr reports a write to an attribute this kernel lacks
	// (signal after 5.0, force before 4.15).
	ErrUnsupportedAttr = errors.New("attribute not supported by this kernel")
)

// Disable starts unpatching: it writes 0 to enabled. While the patch is
// itself in transition (patching), that reverses the transition.
// Errors: [ErrNotFound], [ErrAlreadyInState], [ErrTransitionInProgress]
// (another patch is in transition), [ErrPermission].
func (fs FS) Disable(name string) error {
	return fs.setEnabled(name, false)
}

// Enable writes 1 to enabled. While the patch is unpatching, that reverses
// the transition. Re-enabling a disabled patch is possible only on kernels
// before 5.1, where a disabled patch stays registered; later kernels refuse
// with EINVAL, reported as [ErrReenableUnsupported].
func (fs FS) Enable(name string) error {
	return fs.setEnabled(name, true)
}

func (fs FS) setEnabled(name string, on bool) error {
	p, err := fs.Patch(name)
	if err != nil {
		return err
	}
	verb, value := "disable", "0"
	if on {
		verb, value = "enable", "1"
	}
	err = fs.write(filepath.Join(fs.SysPath(livepatchDir, name), "enabled"), value)
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("%s %s: %w (EBUSY)", verb, name, ErrTransitionInProgress)
	case errors.Is(err, unix.EINVAL) && p.Enabled == on && !p.InTransition():
		return fmt.Errorf("%s %s: %w", verb, name, ErrAlreadyInState)
	case errors.Is(err, unix.EINVAL) && on && !p.Enabled:
		return fmt.Errorf("%s %s: %w", verb, name, ErrReenableUnsupported)
	case errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EPERM):
		return fmt.Errorf("%s %s: %w", verb, name, ErrPermission)
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s %s: %w", verb, name, ErrNotFound)
	}
	return fmt.Errorf("%s %s: %w", verb, name, err)
}

// Force writes 1 to force: every remaining task is marked switched without
// a stack check. This breaks the consistency model, and the kernel never
// lets the module go afterwards (it keeps its reference), so callers must
// make the user confirm. Errors: [ErrNotInTransition], [ErrUnsupportedAttr]
// (before 4.15), [ErrPermission].
func (fs FS) Force(name string) error {
	return fs.writeTransitionAttr(name, "force")
}

// Signal writes 1 to signal, which sends a fake signal to the tasks that
// have not switched. Only kernels 4.15 to 5.0 have the attribute; later
// ones signal every 15 seconds by themselves ([ErrUnsupportedAttr]).
func (fs FS) Signal(name string) error {
	return fs.writeTransitionAttr(name, "signal")
}

func (fs FS) writeTransitionAttr(name, attr string) error {
	dir, err := fs.PatchPath(name)
	if err != nil {
		return err
	}
	if !sysfile.Exists(dir) {
		return fmt.Errorf("%s %s: %w", attr, name, ErrNotFound)
	}
	if !sysfile.Exists(filepath.Join(dir, attr)) {
		return fmt.Errorf("%s %s: %w", attr, name, ErrUnsupportedAttr)
	}
	err = fs.write(filepath.Join(dir, attr), "1")
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("%s %s: %w", attr, name, ErrNotInTransition)
	case errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EPERM):
		return fmt.Errorf("%s %s: %w", attr, name, ErrPermission)
	}
	return fmt.Errorf("%s %s: %w", attr, name, err)
}
