package admin

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/klp-project/klp/internal/audit"
	"github.com/klp-project/klp/internal/lock"
	"github.com/klp-project/klp/internal/poll"
	"github.com/klp-project/klp/internal/store"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/kmod"
	"github.com/klp-project/klp/livepatch"
	"github.com/klp-project/klp/modinfo"
)

// Config is what a [Changer] takes from its caller besides the kernel.
type Config struct {
	// Store is where installed patches live.
	Store store.Store
	// LockPath is the lock that serialises changes ("" = lock.DefaultPath);
	// LockWait how long a second klp waits for it.
	LockPath string
	LockWait time.Duration
	// Audit opens the audit log; called once per change, only by commands
	// that change something (nil: no audit).
	Audit func() audit.Auditor
	// Euid is the caller's effective user id: only root changes the kernel.
	Euid int
	// Inspect reads a module file (nil = modinfo.Open). Tests that load the
	// fake kernel's module files describe them here.
	Inspect func(path string) (*modinfo.Module, error)
	// Kmod configures module loading (tests: the fake kernel's
	// decompressor).
	Kmod kmod.Options
	// Events receives what the user should know while a change runs
	// ("removing module x, left loaded by an atomic replace"). May be nil.
	Events func(string)
	// Progress is called every ProgressInterval (default one second)
	// while a transition runs. May be nil.
	Progress         func(Progress)
	ProgressInterval time.Duration
	// Details receives how a wait went, for -v: whether it slept on the
	// kernel log or polled, and what made it notice the end. May be nil.
	Details func(string)
	// Recheck and Poll tune the waits for a transition (zero: the
	// defaults of livepatch.WaitOptions).
	Recheck time.Duration
	Poll    poll.Options
	// Getpid, Getppid and Getpgrp identify klp itself, so that poke never
	// stops its own process, its ancestors or its process group.
	Getpid, Getppid, Getpgrp func() int
	// Sleep waits (poke's wait for a process to stop); nil = time.Sleep.
	Sleep func(time.Duration)
}

// Changer runs the use cases that change the kernel. It exists only on a
// kernel.Live handle, so a copied tree or a snapshot can never be changed.
type Changer struct {
	*System
	Live   *kernel.Live
	Ctl    livepatch.Control
	Loader *kmod.Loader
	cfg    Config
}

// NewChanger returns the write side for the running kernel l.
func NewChanger(l *kernel.Live, cfg Config) *Changer {
	if cfg.LockPath == "" {
		cfg.LockPath = lock.DefaultPath
	}
	if cfg.Inspect == nil {
		cfg.Inspect = modinfo.Open
	}
	if cfg.Sleep == nil {
		cfg.Sleep = time.Sleep
	}
	if cfg.Getpid == nil {
		cfg.Getpid, cfg.Getppid, cfg.Getpgrp = os.Getpid, os.Getppid, syscall.Getpgrp
	}
	return &Changer{System: NewSystem(l.Handle), Live: l, Ctl: livepatch.NewControl(l), Loader: kmod.NewLoader(l, cfg.Kmod), cfg: cfg}
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

// Outcome reports what a change did. The same shape serves one patch and
// the --all commands, whose Outcomes hold one per patch.
type Outcome struct {
	Action string
	// Patch is the patch (module) name; "" for --all, and for a load that
	// failed before the module's name was known.
	Patch string
	// File is the module file of a load.
	File string
	// Result is one of the Result constants.
	Result  string
	Elapsed time.Duration
	// Err is the error the change ended with (nil on success); the use
	// case also returns it.
	Err error
	// Stall explains the blocking tasks when the transition stalled.
	Stall *BlockingReport
	// KernelLog holds the kernel log lines of a load.
	KernelLog []string
	Notes     []string
	// Preflight are the cheap checks a load ran; the load was refused
	// when one failed (Result "refused").
	Preflight []PreflightCheck
	// All is true for load --all and unload --all, whose per-patch
	// outcomes are in Outcomes.
	All bool
	// Release is the kernel release of load --all.
	Release  string
	Outcomes []*Outcome
}

// Results of a change.
const (
	ResultPatched          = "patched"
	ResultUnpatched        = "unpatched"
	ResultRemoved          = "removed"
	ResultAlreadyLoaded    = "already loaded"
	ResultLeftInTransition = "left in transition"
	ResultRolledBack       = "rolled back"
	ResultInterrupted      = "interrupted"
	ResultRefused          = "refused"
	ResultFailed           = "failed"
	ResultSkipped          = "skipped"
	ResultReady            = "ready"
	ResultSignalled        = "signalled"
	ResultNotNeeded        = "not needed"
	ResultLoaded           = "loaded"     // load --all: every patch loaded
	ResultIncomplete       = "incomplete" // --all: some failed or were skipped
	ResultDisabled         = "disabled"   // load --all with klp.enable=0
	ResultNone             = "none"       // load --all: nothing installed
)

func (c *Changer) event(o *Outcome, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	o.Notes = append(o.Notes, msg)
	if c.cfg.Events != nil {
		c.cfg.Events(msg)
	}
}

// NotRootError reports a change asked for by a user who is not root, before
// anything was touched: the kernel would refuse the module syscalls and
// attribute writes one by one. It is [kernel.ErrPermission].
type NotRootError struct{ Action string }

func (e *NotRootError) Error() string {
	return e.Action + " changes live patches and needs root (CAP_SYS_MODULE); nothing was changed"
}

// Is makes errors.Is(err, kernel.ErrPermission) hold.
func (e *NotRootError) Is(target error) bool { return target == kernel.ErrPermission }

// finish records how a use case begun at start ended: its error, its
// time unless the use case measured it, and failed unless it said more.
func (o *Outcome) finish(start time.Time, err error) (*Outcome, error) {
	o.Err = err
	if o.Elapsed == 0 {
		o.Elapsed = time.Since(start)
	}
	if err != nil && o.Result == "" {
		o.Result = ResultFailed
	}
	return o, err
}

// change runs one change: the root check and the lock before anything is
// touched, then fn, then one audit record per patch. The outcome is never
// nil, so that a refusal is reported like any other result.
func (c *Changer) change(ctx context.Context, o *Outcome, fn func(ctx context.Context, o *Outcome) error) (*Outcome, error) {
	start := time.Now()
	finish := func(err error) (*Outcome, error) { return o.finish(start, err) }
	if c.cfg.Euid != 0 {
		o.Result = ResultRefused
		return finish(&NotRootError{o.Action})
	}
	l, err := lock.Acquire(ctx, c.cfg.LockPath, c.cfg.LockWait)
	if ctx.Err() != nil {
		o.Result = ResultRefused
		return finish(fmt.Errorf("%s: %w while waiting for klp's lock; nothing was changed", o.Action, ErrInterrupted))
	}
	if err != nil {
		o.Result = ResultRefused
		return finish(fmt.Errorf("%s: %w; nothing was changed", o.Action, err))
	}
	defer l.Release()
	out, err := finish(fn(ctx, o))
	c.audit(out)
	return out, err
}

// audit records a change, one record per patch.
func (c *Changer) audit(o *Outcome) {
	if c.cfg.Audit == nil {
		return
	}
	a := c.cfg.Audit()
	if a == nil {
		return
	}
	// The release says which kernel was changed: a record read on another
	// machine, or after an upgrade, must not be ambiguous.
	rel := o.Release
	if rel == "" {
		rel, _ = c.Release()
	}
	if len(o.Outcomes) == 0 {
		a.Record(audit.Record{Action: o.Action, Patch: o.Patch, File: o.File, Release: rel, Result: o.Result, Elapsed: o.Elapsed, Err: o.Err})
		return
	}
	for _, s := range o.Outcomes {
		a.Record(audit.Record{Action: s.Action, Patch: s.Patch, File: s.File, Release: rel, Result: s.Result, Elapsed: s.Elapsed, Err: s.Err})
	}
}
