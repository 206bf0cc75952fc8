package livepatch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/kernel"
)

// Control changes the live patching state of the running kernel: it is an
// [FS] on a [kernel.Live] handle, so it exists only for the kernel klp runs
// on (or a test double of it), never for a copied tree or a snapshot.
type Control struct {
	FS
	live *kernel.Live
}

// NewControl returns the control of the kernel l stands for.
func NewControl(l *kernel.Live) Control {
	return Control{FS: New(l.Handle), live: l}
}

// Live returns the handle the control acts through.
func (c Control) Live() *kernel.Live { return c.live }

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
	// ErrUnsupportedAttr reports a write to an attribute this kernel lacks
	// (signal after 5.0, force before 4.15).
	ErrUnsupportedAttr = errors.New("attribute not supported by this kernel")
)

// Disable starts unpatching: it writes 0 to enabled. While the patch is
// itself in transition (patching), that reverses the transition.
// Errors: [ErrNotFound], [ErrAlreadyInState], [ErrTransitionInProgress]
// (another patch is in transition), [ErrPermission].
func (c Control) Disable(name string) error {
	return c.setEnabled(name, false)
}

// Enable writes 1 to enabled. While the patch is unpatching, that reverses
// the transition. Re-enabling a disabled patch is possible only on kernels
// before 5.1, where a disabled patch stays registered; later kernels refuse
// with EINVAL, reported as [ErrReenableUnsupported].
func (c Control) Enable(name string) error {
	return c.setEnabled(name, true)
}

func (c Control) setEnabled(name string, on bool) error {
	p, err := c.Patch(name)
	if err != nil {
		return err
	}
	name = p.Name
	verb, value := "disable", "0"
	if on {
		verb, value = "enable", "1"
	}
	err = c.live.WriteAttr(filepath.Join(c.SysPath(livepatchDir, name), "enabled"), value)
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
func (c Control) Force(name string) error {
	return c.writeTransitionAttr(name, "force")
}

// Signal writes 1 to signal, which sends a fake signal to the tasks that
// have not switched. Only kernels 4.15 to 5.0 have the attribute; later
// ones signal every 15 seconds by themselves ([ErrUnsupportedAttr]).
func (c Control) Signal(name string) error {
	return c.writeTransitionAttr(name, "signal")
}

func (c Control) writeTransitionAttr(name, attr string) error {
	dir, err := c.PatchPath(name)
	if err != nil {
		return err
	}
	name = filepath.Base(dir)
	if !c.k.Exists(dir) {
		return fmt.Errorf("%s %s: %w", attr, name, ErrNotFound)
	}
	if !c.k.Exists(filepath.Join(dir, attr)) {
		return fmt.Errorf("%s %s: %w", attr, name, ErrUnsupportedAttr)
	}
	err = c.live.WriteAttr(filepath.Join(dir, attr), "1")
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
