// Package lifecycle runs the live patch life cycle on the upstream
// interface: load a patch module, wait for its transition, explain a
// stall, disable, re-enable, unload. It joins the three views of a patch:
// the module file (package modinfo), the loaded module (package kmod) and
// the live patch state (package livepatch).
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/klp-project/klp/internal/sysfile"
	"github.com/klp-project/klp/kmod"
	"github.com/klp-project/klp/livepatch"
	"github.com/klp-project/klp/modinfo"
)

var (
	// ErrNotLivepatch reports a module file without livepatch=Y in its
	// .modinfo: loading it would not patch anything.
	ErrNotLivepatch = errors.New("not a livepatch module")
	// ErrWrongKernel reports a module built for another kernel release
	// (its vermagic names another release).
	ErrWrongKernel = errors.New("module built for another kernel")
	// ErrForced reports a patch module the kernel will never release: a
	// forced transition keeps the module's reference for good, because
	// no one can prove that no task still runs its code.
	ErrForced = errors.New("patch was forced and its module can never be removed")
	// ErrStillReferenced reports a module whose reference count did not
	// drop to zero in time.
	ErrStillReferenced = errors.New("module still in use")
)

// StallPolicy says what to do when a transition does not complete within
// the timeout.
type StallPolicy string

const (
	// StallRollback reverses the transition: a stalled load is disabled
	// and its module removed, as kpatch does.
	StallRollback StallPolicy = "rollback"
	// StallLeave leaves the transition running in the kernel and returns
	// [livepatch.ErrStalled].
	StallLeave StallPolicy = "leave"
	// StallWait reports the stall and keeps waiting, without a limit.
	StallWait StallPolicy = "wait"
)

// ParseStallPolicy checks a --on-stall value.
func ParseStallPolicy(s string) (StallPolicy, error) {
	switch p := StallPolicy(s); p {
	case StallRollback, StallLeave, StallWait:
		return p, nil
	}
	return "", fmt.Errorf("invalid stall policy %q: want wait, rollback or leave", s)
}

// Manager runs life-cycle actions. Its fields are the injected views of
// the kernel; tests point them at internal/fakekernel.
type Manager struct {
	LP  livepatch.FS
	Mod *kmod.FS
	// Events receives what the user should know while an action runs
	// ("removing module x, left loaded by an atomic replace"). May be nil.
	Events func(string)
	// Progress is called every ProgressInterval (default one second) while
	// a transition runs. May be nil.
	Progress         func(Progress)
	ProgressInterval time.Duration
	// Inspect reads a module file (nil = [modinfo.Open]). Tests that load
	// fake modules into internal/fakekernel describe them here.
	Inspect func(path string) (*modinfo.Module, error)
}

// Progress describes a running transition.
type Progress struct {
	Patch     string
	Direction string // "patching" or "unpatching"
	Elapsed   time.Duration
	// TasksLeft is the number of tasks not yet switched, or -1 when they
	// could not be counted.
	TasksLeft int
}

// WaitOptions tune how an action waits for its transition.
type WaitOptions struct {
	Timeout     time.Duration
	OnStall     StallPolicy
	SignalAfter time.Duration
	// RefTimeout bounds the wait for a module's reference count to drop
	// after its patch was disabled (default 15 s, as kpatch).
	RefTimeout time.Duration
}

// Outcome reports what an action did.
type Outcome struct {
	Action string `json:"action"`
	Patch  string `json:"patch"`
	File   string `json:"file,omitempty"`
	// Result is one of: "patched", "unpatched", "removed",
	// "already loaded", "left in transition", "rolled back",
	// "interrupted".
	Result  string        `json:"result"`
	Elapsed time.Duration `json:"-"`
	// Stall explains the blocking tasks when the transition stalled.
	Stall *livepatch.StallReport `json:"-"`
	// KernelLog holds the kernel log lines of a load.
	KernelLog []string `json:"kernel_log"`
	Notes     []string `json:"notes"`
}

func (m *Manager) event(o *Outcome, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	o.Notes = append(o.Notes, msg)
	if m.Events != nil {
		m.Events(msg)
	}
}

// Release returns the running kernel's release, from
// <procfs>/sys/kernel/osrelease (so a snapshot tree answers for itself).
func (m *Manager) Release() (string, error) {
	rel, err := sysfile.ReadString(m.LP.ProcPath("sys", "kernel", "osrelease"))
	if err != nil {
		return "", fmt.Errorf("read kernel release: %w", err)
	}
	return rel, nil
}

// CheckModule reads a module file and refuses what cannot be a patch for
// this kernel: a file that is not a livepatch module, or one built for
// another kernel release (the kernel would refuse it with ENOEXEC, and say
// why only in its log).
func (m *Manager) CheckModule(path string) (*modinfo.Module, error) {
	inspect := m.Inspect
	if inspect == nil {
		inspect = modinfo.Open
	}
	mod, err := inspect(path)
	if err != nil {
		return nil, err
	}
	if mod.Name == "" {
		return nil, fmt.Errorf("%s: cannot tell the module's name", path)
	}
	if !mod.Livepatch {
		return mod, fmt.Errorf("%s: %w (its .modinfo has no livepatch=Y)", path, ErrNotLivepatch)
	}
	rel, err := m.Release()
	if err != nil {
		return mod, err
	}
	if built := strings.Fields(mod.Vermagic); len(built) > 0 && built[0] != rel {
		return mod, fmt.Errorf("%s: %w: built for %s, running %s", path, ErrWrongKernel, built[0], rel)
	}
	return mod, nil
}

// Load loads a patch module file and waits for its transition.
//
// A patch that is already loaded and enabled is reported ("already
// loaded"), not an error, so that loading every installed patch at boot is
// idempotent. A module of the same name that an atomic replace left loaded
// but disabled is removed first, because the kernel would refuse the load
// with EEXIST. On kernels before 5.1, a loaded but disabled patch is
// enabled again.
func (m *Manager) Load(ctx context.Context, path, params string, opts WaitOptions) (*Outcome, error) {
	start := time.Now()
	o := &Outcome{Action: "load", File: path}
	mod, err := m.CheckModule(path)
	if err != nil {
		return o, err
	}
	o.Patch = mod.Name
	patches, err := m.LP.Patches()
	if err != nil {
		return o, err
	}
	if tr := livepatch.TransitionOf(patches); tr != nil && tr.Patch != mod.Name {
		return o, fmt.Errorf("load %s: %w: %s is %s; wait for it (klp wait %s) or reverse it first", mod.Name, livepatch.ErrTransitionInProgress, tr.Patch, tr.Direction(), tr.Patch)
	}
	for _, p := range patches {
		if p.Name != mod.Name {
			continue
		}
		switch {
		case p.Enabled && !p.InTransition():
			o.Result = "already loaded"
			m.event(o, "patch %s is already loaded and enabled", p.Name)
			o.Elapsed = time.Since(start)
			return o, nil
		case p.Enabled:
			m.event(o, "patch %s is already loaded and patching; waiting for it", p.Name)
			return m.wait(ctx, o, start, opts, StallLeave)
		default:
			// Only kernels before 5.1 keep a disabled patch registered.
			m.event(o, "patch %s is loaded but disabled; enabling it again", p.Name)
			if err := m.LP.Enable(p.Name); err != nil {
				return o, err
			}
			return m.wait(ctx, o, start, opts, opts.OnStall)
		}
	}
	if loaded, err := m.Mod.Module(mod.Name); err == nil {
		if loaded.Refcnt != 0 {
			return o, fmt.Errorf("load %s: module %s is loaded without a live patch and holds %d reference(s); remove it first", mod.Name, mod.Name, loaded.Refcnt)
		}
		m.event(o, "removing module %s, left loaded after it was disabled or replaced", mod.Name)
		if err := m.Mod.Unload(mod.Name, 0); err != nil {
			return o, fmt.Errorf("load %s: remove the stale module first: %w", mod.Name, err)
		}
	}
	res, err := m.Mod.Load(path, params)
	var lerr *kmod.LoadError
	switch {
	case res != nil:
		o.KernelLog = kmod.Messages(res.Log)
	case errors.As(err, &lerr):
		o.KernelLog = kmod.Messages(lerr.Log)
	}
	if err != nil {
		return o, fmt.Errorf("load %s: %w", mod.Name, err)
	}
	return m.wait(ctx, o, start, opts, opts.OnStall)
}

// wait waits for o.Patch's transition and applies the stall policy.
func (m *Manager) wait(ctx context.Context, o *Outcome, start time.Time, opts WaitOptions, policy StallPolicy) (*Outcome, error) {
	wopts := livepatch.WaitOptions{
		Timeout:     opts.Timeout,
		SignalAfter: opts.SignalAfter,
		OnSignal: func(err error) {
			if errors.Is(err, livepatch.ErrUnsupportedAttr) {
				m.event(o, "transition still running after %s; this kernel signals the blocking tasks every 15 seconds by itself", opts.SignalAfter)
				return
			}
			if err != nil {
				m.event(o, "signalling the blocking tasks failed: %v", err)
			} else {
				m.event(o, "signalled the blocking tasks (signal attribute)")
			}
		},
	}
	if m.Progress != nil {
		wopts.Progress = func(elapsed time.Duration) { m.Progress(m.progress(o.Patch, elapsed)) }
		wopts.ProgressInterval = m.ProgressInterval
	}
	res, err := m.LP.WaitTransition(ctx, o.Patch, wopts)
	if errors.Is(err, livepatch.ErrStalled) {
		o.Stall = m.explain()
		switch policy {
		case StallWait:
			m.event(o, "%v; waiting on (Ctrl-C leaves the transition running)", err)
			wopts.Timeout = 0
			res, err = m.LP.WaitTransition(ctx, o.Patch, wopts)
		case StallRollback:
			return m.rollback(ctx, o, start, opts, err)
		}
	}
	o.Elapsed = time.Since(start)
	switch {
	case err == nil:
		o.Result = resultOf(res)
		return o, nil
	case errors.Is(err, livepatch.ErrStalled):
		o.Result = "left in transition"
		return o, err
	case ctx.Err() != nil:
		o.Result = "interrupted"
		return o, fmt.Errorf("%w: %s", ctx.Err(), m.stateOf(o.Patch))
	}
	return o, err
}

func resultOf(res livepatch.WaitResult) string {
	switch {
	case res.Gone:
		return "removed"
	case res.Enabled:
		return "patched"
	}
	return "unpatched"
}

// stateOf says in words where a patch stands, for an interrupted wait.
func (m *Manager) stateOf(name string) string {
	p, err := m.LP.Patch(name)
	switch {
	case errors.Is(err, livepatch.ErrNotFound):
		return fmt.Sprintf("patch %s is no longer loaded", name)
	case err != nil:
		return fmt.Sprintf("the state of patch %s cannot be read: %v", name, err)
	case p.InTransition() && p.Enabled:
		return fmt.Sprintf("patch %s is still patching; 'klp wait %s' waits for it, 'klp disable %s' reverses it", name, name, name)
	case p.InTransition():
		return fmt.Sprintf("patch %s is still unpatching; 'klp wait %s' waits for it, 'klp enable %s' reverses it", name, name, name)
	case p.Enabled:
		return fmt.Sprintf("patch %s is enabled", name)
	}
	return fmt.Sprintf("patch %s is disabled", name)
}

// rollback reverses a stalled load: disable (which reverses the patching
// transition), wait as long again, then remove the module.
func (m *Manager) rollback(ctx context.Context, o *Outcome, start time.Time, opts WaitOptions, stall error) (*Outcome, error) {
	m.event(o, "%v; rolling back", stall)
	if err := m.LP.Disable(o.Patch); err != nil && !errors.Is(err, livepatch.ErrAlreadyInState) {
		o.Result = "left in transition"
		return o, fmt.Errorf("%w; rollback failed: %w", stall, err)
	}
	if _, err := m.LP.WaitTransition(ctx, o.Patch, livepatch.WaitOptions{Timeout: opts.Timeout}); err != nil {
		o.Result = "left in transition"
		return o, fmt.Errorf("%w; rollback did not complete either: %w", stall, err)
	}
	if err := m.removeModule(ctx, o.Patch, opts); err != nil {
		o.Result = "unpatched"
		return o, fmt.Errorf("%w; rolled back, but the module stays loaded: %w", stall, err)
	}
	o.Result = "rolled back"
	o.Elapsed = time.Since(start)
	return o, stall
}

func (m *Manager) progress(name string, elapsed time.Duration) Progress {
	pr := Progress{Patch: name, Elapsed: elapsed, TasksLeft: -1}
	patches, err := m.LP.Patches()
	if err != nil {
		return pr
	}
	b, err := m.LP.BlockingTasks(patches)
	if err != nil || b.Transition == nil {
		return pr
	}
	pr.Direction = b.Transition.Direction()
	if len(b.Stats.Unreadable) == 0 {
		pr.TasksLeft = len(b.Tasks)
	}
	return pr
}

// explain returns the stall report, or nil when it cannot be built.
func (m *Manager) explain() *livepatch.StallReport {
	patches, err := m.LP.Patches()
	if err != nil {
		return nil
	}
	r, err := m.LP.ExplainStall(patches)
	if err != nil {
		return nil
	}
	return r
}

// Disable starts unpatching and waits for it. While the patch is itself
// patching, this reverses the transition.
func (m *Manager) Disable(ctx context.Context, name string, opts WaitOptions) (*Outcome, error) {
	start := time.Now()
	o := &Outcome{Action: "disable", Patch: name}
	if err := m.LP.Disable(name); err != nil {
		return o, err
	}
	return m.wait(ctx, o, start, opts, opts.OnStall)
}

// Enable re-enables a patch: only kernels before 5.1 keep a disabled patch
// registered; on any kernel it reverses an unpatching transition.
func (m *Manager) Enable(ctx context.Context, name string, opts WaitOptions) (*Outcome, error) {
	start := time.Now()
	o := &Outcome{Action: "enable", Patch: name}
	if err := m.LP.Enable(name); err != nil {
		if errors.Is(err, livepatch.ErrNotFound) {
			return o, fmt.Errorf("%w; since Linux 5.1 a disabled patch is freed at once: load its module again (klp load)", err)
		}
		return o, err
	}
	return m.wait(ctx, o, start, opts, opts.OnStall)
}

// Wait waits for a running transition.
func (m *Manager) Wait(ctx context.Context, name string, opts WaitOptions) (*Outcome, error) {
	o := &Outcome{Action: "wait", Patch: name}
	if name == "" {
		patches, err := m.LP.Patches()
		if err != nil {
			return o, err
		}
		tr := livepatch.TransitionOf(patches)
		if tr == nil {
			o.Result = "ready"
			return o, nil
		}
		o.Patch = tr.Patch
	}
	return m.wait(ctx, o, time.Now(), opts, opts.OnStall)
}

// Unload disables a patch, waits for its transition and for the module's
// reference to drop, and removes the module. A module that an atomic
// replace left loaded (no live patch any more) is simply removed.
func (m *Manager) Unload(ctx context.Context, name string, opts WaitOptions) (*Outcome, error) {
	start := time.Now()
	o := &Outcome{Action: "unload", Patch: name}
	p, err := m.LP.Patch(name)
	switch {
	case errors.Is(err, livepatch.ErrNotFound):
		if _, merr := m.Mod.Module(name); merr != nil {
			return o, fmt.Errorf("unload %s: no such patch or module", name)
		}
	case err != nil:
		return o, err
	case p.InTransition() && !p.Enabled:
		m.event(o, "patch %s is already unpatching; waiting for it", name)
		if _, err := m.wait(ctx, o, start, opts, StallLeave); err != nil {
			return o, err
		}
	case p.Enabled:
		if err := m.LP.Disable(name); err != nil {
			return o, err
		}
		if _, err := m.wait(ctx, o, start, opts, StallLeave); err != nil {
			return o, err
		}
	default:
		// Disabled but still registered: a kernel before 5.1.
	}
	if err := m.removeModule(ctx, name, opts); err != nil {
		return o, err
	}
	o.Result = "removed"
	o.Elapsed = time.Since(start)
	return o, nil
}

// forcedGrace is how long a module may keep its reference after its patch
// directory is gone before klp concludes that the patch was forced. The
// kernel frees the directory and drops the reference in one work item.
const forcedGrace = time.Second

// removeModule waits for the module's reference count to drop, then
// removes it. A disabled patch drops its reference when the kernel frees it
// (asynchronously, after the transition); a forced one never does.
func (m *Manager) removeModule(ctx context.Context, name string, opts WaitOptions) error {
	timeout := opts.RefTimeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last int
	var goneSince time.Time
	forced := false
	err := waitFor(wctx, func() (bool, error) {
		ref, err := m.Mod.Refcnt(name)
		if errors.Is(err, kmod.ErrNotLoaded) || errors.Is(err, os.ErrNotExist) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		last = ref
		if ref == 0 {
			return true, nil
		}
		// The kernel drops the reference right after it frees the
		// patch directory. A module whose patch has been gone for a
		// second and that still holds exactly its own reference (no
		// other module uses it) was forced: waiting longer is useless.
		if _, perr := m.LP.Patch(name); errors.Is(perr, livepatch.ErrNotFound) && ref == 1 {
			if goneSince.IsZero() {
				goneSince = time.Now()
			} else if time.Since(goneSince) > forcedGrace {
				if holders, herr := m.Mod.Holders(name); herr == nil && len(holders) == 0 {
					forced = true
					return true, nil
				}
			}
		} else {
			goneSince = time.Time{}
		}
		return false, nil
	})
	if !forced && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil && last == 1 {
		_, perr := m.LP.Patch(name)
		forced = errors.Is(perr, livepatch.ErrNotFound)
	}
	if forced {
		return fmt.Errorf("unload %s: %w (the patch is gone but the kernel keeps its reference; reboot to remove it)", name, ErrForced)
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("unload %s: %w: reference count still %d after %s", name, ErrStillReferenced, last, timeout)
	}
	if err != nil {
		return fmt.Errorf("unload %s: %w", name, err)
	}
	if err := m.Mod.Unload(name, 0); err != nil && !errors.Is(err, kmod.ErrNotLoaded) {
		return fmt.Errorf("unload %s: %w", name, err)
	}
	return nil
}

// LivepatchModules lists the loaded modules that are live patches, newest
// first (the order of /proc/modules): those the kernel tainted with K
// (TAINT_LIVEPATCH), which includes the ones that no longer have a patch
// directory (replaced, disabled, or forced and pinned), and any patch
// directory whose module /proc/modules does not show.
func (m *Manager) LivepatchModules() ([]string, error) {
	var names []string
	seen := map[string]bool{}
	mods, err := m.Mod.Modules()
	if err != nil {
		return nil, err
	}
	for _, mod := range mods {
		if strings.Contains(mod.Taints, "K") {
			seen[mod.Name] = true
			names = append(names, mod.Name)
		}
	}
	patches, err := m.LP.Patches()
	if err != nil && !errors.Is(err, livepatch.ErrNotSupported) {
		return nil, err
	}
	for _, p := range patches {
		if !seen[p.Name] {
			names = append(names, p.Name)
		}
	}
	return names, nil
}

// UnloadAll unloads every live patch module. Kernels before 5.1 let only
// the most recently enabled patch be disabled, so it retries in passes
// until a pass makes no progress.
func (m *Manager) UnloadAll(ctx context.Context, opts WaitOptions) ([]*Outcome, error) {
	var outcomes []*Outcome
	for {
		names, err := m.LivepatchModules()
		if err != nil {
			return outcomes, err
		}
		if len(names) == 0 {
			return outcomes, nil
		}
		progress := false
		var lastErr error
		// Newest first: the stacking order of old kernels, and the
		// natural order for replace patches.
		for _, name := range names {
			o, err := m.Unload(ctx, name, opts)
			outcomes = append(outcomes, o)
			if err == nil {
				progress = true
				continue
			}
			if ctx.Err() != nil {
				return outcomes, err
			}
			lastErr = err
		}
		if !progress {
			return outcomes, lastErr
		}
	}
}
