package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/kmod"
	"github.com/klp-project/klp/livepatch"
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

// WaitOptions tune how a change waits for its transition.
type WaitOptions struct {
	Timeout     time.Duration
	OnStall     StallPolicy
	SignalAfter time.Duration
	// RefTimeout bounds the wait for a module's reference count to drop
	// after its patch was disabled (default 15 s, as kpatch).
	RefTimeout time.Duration
}

// wait waits for o.Patch's transition and applies the stall policy.
func (c *Changer) wait(ctx context.Context, o *Outcome, start time.Time, opts WaitOptions, policy StallPolicy) error {
	wopts := livepatch.WaitOptions{
		Timeout:     opts.Timeout,
		SignalAfter: opts.SignalAfter,
		OnSignal: func(err error) {
			if errors.Is(err, livepatch.ErrUnsupportedAttr) {
				c.event(o, "transition still running after %s; this kernel signals the blocking tasks every 15 seconds by itself", opts.SignalAfter)
				return
			}
			if err != nil {
				c.event(o, "signalling the blocking tasks failed: %v", err)
			} else {
				c.event(o, "signalled the blocking tasks (signal attribute)")
			}
		},
	}
	if c.cfg.Progress != nil {
		counter := newTaskCounter(ctx, c.LP)
		defer counter.stop()
		wopts.Progress = func(elapsed time.Duration, target livepatch.PatchState) {
			tr := livepatch.Transition{Patch: o.Patch, Target: target}
			c.cfg.Progress(Progress{Patch: o.Patch, Direction: tr.Direction(), Elapsed: elapsed, TasksLeft: counter.left(target)})
		}
		wopts.ProgressInterval = c.cfg.ProgressInterval
	}
	res, err := c.waitTransition(ctx, o.Patch, wopts)
	if errors.Is(err, livepatch.ErrStalled) {
		o.Stall = c.explain(time.Since(start))
		switch policy {
		case StallWait:
			c.event(o, "%v; waiting on (Ctrl-C leaves the transition running)", err)
			wopts.Timeout = 0
			res, err = c.waitTransition(ctx, o.Patch, wopts)
		case StallRollback:
			return c.rollback(ctx, o, start, opts, err)
		}
	}
	o.Elapsed = time.Since(start)
	switch {
	case err == nil:
		o.Result = resultOf(res)
		return nil
	case errors.Is(err, livepatch.ErrStalled):
		o.Result = ResultLeftInTransition
		return err
	case ctx.Err() != nil:
		o.Result = ResultInterrupted
		return fmt.Errorf("%w: %s", ErrInterrupted, c.stateOf(o.Patch))
	}
	return err
}

// waitTransition is every wait for a transition: the changer's tuning, and
// for -v a word on how it went.
func (c *Changer) waitTransition(ctx context.Context, name string, wopts livepatch.WaitOptions) (livepatch.WaitResult, error) {
	wopts.Recheck, wopts.Poll = c.cfg.Recheck, c.cfg.Poll
	if c.cfg.Details != nil {
		said := false
		wopts.OnLost = func() {
			if !said {
				said = true
				c.cfg.Details(fmt.Sprintf("wait for %s: kernel log records were overwritten before klp read them (a flooded log); reading transition instead", name))
			}
		}
	}
	res, err := c.Ctl.WaitTransition(ctx, name, wopts)
	if c.cfg.Details != nil {
		if res.LogErr != nil {
			c.cfg.Details(fmt.Sprintf("wait for %s: polled the transition attribute (the kernel log could not be watched: %v)", name, res.LogErr))
		}
		tally := fmt.Sprintf("%d read(s) of transition, %d loss(es) of kernel log records", res.Checks, res.Lost)
		if err == nil {
			c.cfg.Details(fmt.Sprintf("wait for %s: the transition ended after %s, noticed by %s (%s)", name, res.Elapsed.Round(time.Millisecond), res.Noticed, tally))
		} else {
			c.cfg.Details(fmt.Sprintf("wait for %s: stopped after %s (%s)", name, res.Elapsed.Round(time.Millisecond), tally))
		}
	}
	return res, err
}

// ErrInterrupted reports a change interrupted by a signal (Ctrl-C, SIGTERM)
// or the deadline of the whole command; the error says where the patch
// stands.
var ErrInterrupted = errors.New("interrupted")

func resultOf(res livepatch.WaitResult) string {
	switch {
	case res.Gone:
		return ResultRemoved
	case res.Enabled:
		return ResultPatched
	}
	return ResultUnpatched
}

// stateOf says in words where a patch stands, for an interrupted wait.
func (c *Changer) stateOf(name string) string {
	p, err := c.LP.Patch(name)
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

// MinRollbackWait is the least a rollback waits for the reversed
// transition: giving up half-way leaves the patch in transition, worse than
// the stall it undoes, and the kernel retries the tasks only once a second.
const MinRollbackWait = 30 * time.Second

// rollback reverses a stalled load: disable (which reverses the patching
// transition), wait as long again (at least [MinRollbackWait]), then
// remove the module.
func (c *Changer) rollback(ctx context.Context, o *Outcome, start time.Time, opts WaitOptions, stall error) error {
	if p, err := c.LP.Patch(o.Patch); err == nil && p.InTransition() && !p.Enabled {
		// An unpatching (someone's disable) is no load to roll back:
		// disabling again is refused by the kernel, and reversing it
		// would patch again what was being removed. Say so, change
		// nothing.
		o.Result = ResultLeftInTransition
		return fmt.Errorf("%w; not rolled back: %s is unpatching, and --on-stall=rollback reverses a load (enable %s to reverse the unpatching, or wait)", stall, o.Patch, o.Patch)
	}
	c.event(o, "%v; rolling back", stall)
	if err := c.Ctl.Disable(o.Patch); err != nil && !errors.Is(err, livepatch.ErrAlreadyInState) {
		o.Result = ResultLeftInTransition
		return fmt.Errorf("%w; rollback failed: %w", stall, err)
	}
	if _, err := c.waitTransition(ctx, o.Patch, livepatch.WaitOptions{Timeout: max(opts.Timeout, MinRollbackWait)}); err != nil {
		o.Result = ResultLeftInTransition
		return fmt.Errorf("%w; rollback did not complete either: %w", stall, err)
	}
	if err := c.removeModule(ctx, o.Patch, opts); err != nil {
		o.Result = ResultUnpatched
		return fmt.Errorf("%w; rolled back, but the module stays loaded: %w", stall, err)
	}
	o.Result = ResultRolledBack
	o.Elapsed = time.Since(start)
	return stall
}

// explain returns the stall report of a transition watched for waited,
// or nil when it cannot be built.
func (c *Changer) explain(waited time.Duration) *BlockingReport {
	r, err := c.Blocking(BlockingOptions{Explain: true, Waited: waited})
	if err != nil || r.Transition == nil {
		return nil
	}
	return r
}

// Wait waits for the transition in progress, or for the named patch's. A
// patch that is not loaded is an error ([livepatch.ErrNotFound]), never
// "removed". With [StallRollback] a stalled transition is reversed: that is
// a change, made as root, under the lock, and audited.
func (c *Changer) Wait(ctx context.Context, name string, opts WaitOptions) (*Outcome, error) {
	o := &Outcome{Action: "wait", Patch: name}
	if opts.OnStall == StallRollback {
		return c.change(ctx, o, func(ctx context.Context, o *Outcome) error { return c.waitFor(ctx, o, opts) })
	}
	start := time.Now()
	return o.finish(start, c.waitFor(ctx, o, opts))
}

func (c *Changer) waitFor(ctx context.Context, o *Outcome, opts WaitOptions) error {
	if o.Patch == "" {
		patches, err := c.LP.Patches()
		if err != nil {
			return err
		}
		tr := livepatch.TransitionOf(patches)
		if tr == nil {
			o.Result = ResultReady
			return nil
		}
		o.Patch = tr.Patch
	} else {
		p, err := c.LP.Patch(o.Patch)
		if err != nil {
			return fmt.Errorf("wait %s: %w", o.Patch, err)
		}
		o.Patch = p.Name
	}
	return c.wait(ctx, o, time.Now(), opts, opts.OnStall)
}

// Disable starts unpatching and waits for it. While the patch is itself
// patching, this reverses the transition.
func (c *Changer) Disable(ctx context.Context, name string, opts WaitOptions) (*Outcome, error) {
	return c.change(ctx, &Outcome{Action: "disable", Patch: name}, func(ctx context.Context, o *Outcome) error {
		start := time.Now()
		p, err := c.LP.Patch(name)
		if err != nil {
			return err
		}
		o.Patch = p.Name
		if err := c.Ctl.Disable(o.Patch); err != nil {
			return err
		}
		c.noteTaint(o, p)
		return c.wait(ctx, o, start, opts, opts.OnStall)
	})
}

// Enable re-enables a patch: only kernels before 5.1 keep a disabled patch
// registered; on any kernel it reverses an unpatching transition.
func (c *Changer) Enable(ctx context.Context, name string, opts WaitOptions) (*Outcome, error) {
	return c.change(ctx, &Outcome{Action: "enable", Patch: name}, func(ctx context.Context, o *Outcome) error {
		start := time.Now()
		p, err := c.LP.Patch(name)
		if errors.Is(err, livepatch.ErrNotFound) {
			return fmt.Errorf("enable %s: %w; since Linux 5.1 a disabled patch is freed at once: load its module again (klp load)", kernel.ModuleName(name), err)
		}
		if err != nil {
			return err
		}
		o.Patch = p.Name
		if err := c.Ctl.Enable(o.Patch); err != nil {
			return err
		}
		return c.wait(ctx, o, start, opts, opts.OnStall)
	})
}

// ErrForced reports a patch module the kernel will never release: a forced
// transition keeps the module's reference for good, because no one can
// prove that no task still runs its code.
var ErrForced = errors.New("patch was forced and its module can never be removed")

// ErrStillReferenced reports a module whose reference count did not drop to
// zero in time.
var ErrStillReferenced = errors.New("module still in use")

// forcedGrace is how long a module may keep its reference after its patch
// directory is gone before klp concludes that the patch was forced. The
// kernel frees the directory and drops the reference in one work item.
const forcedGrace = time.Second

// removeModule waits for the module's reference count to drop, then
// removes it. A disabled patch drops its reference when the kernel frees it
// (asynchronously, after the transition); a forced one never does.
func (c *Changer) removeModule(ctx context.Context, name string, opts WaitOptions) error {
	// --timeout bounds this wait too: the default 15 s (kpatch's) is
	// never longer than the transition's own timeout.
	timeout := opts.RefTimeout
	if timeout <= 0 {
		timeout = 15 * time.Second
		if opts.Timeout > 0 && opts.Timeout < timeout {
			timeout = opts.Timeout
		}
	}
	clock := c.Live.Clock()
	var last int
	var goneSince time.Time
	forced := false
	err := c.pollFor(ctx, timeout, func() (bool, error) {
		ref, err := c.Mod.Refcnt(name)
		if errors.Is(err, kmod.ErrNotLoaded) {
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
		if _, perr := c.LP.Patch(name); errors.Is(perr, livepatch.ErrNotFound) && ref == 1 {
			if goneSince.IsZero() {
				goneSince = clock.Now()
			} else if clock.Now().Sub(goneSince) > forcedGrace {
				if holders, herr := c.Mod.Holders(name); herr == nil && len(holders) == 0 {
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
		// The same test as above: the reference of a module another
		// module uses is that module's, not a forced patch's.
		_, perr := c.LP.Patch(name)
		holders, herr := c.Mod.Holders(name)
		forced = errors.Is(perr, livepatch.ErrNotFound) && herr == nil && len(holders) == 0
	}
	if forced {
		return fmt.Errorf("unload %s: %w (the patch is gone but the kernel keeps its reference; reboot to remove it)", name, ErrForced)
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("unload %s: %w: reference count still %d after %s", name, ErrStillReferenced, last, timeout)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: unload %s: the patch is gone, its module is still loaded (klp unload %s removes it)", ErrInterrupted, name, name)
	}
	if err != nil {
		return fmt.Errorf("unload %s: %w", name, err)
	}
	if err := c.Loader.Unload(name, 0); err != nil && !errors.Is(err, kmod.ErrNotLoaded) {
		return fmt.Errorf("unload %s: %w", name, err)
	}
	return nil
}
