package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/klp-project/klp/internal/poll"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/livepatch"
)

// pollFor polls cond on the kernel's clock until it holds, fails, or
// timeout passes (context.DeadlineExceeded).
func (c *Changer) pollFor(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	return poll.Until(ctx, cond, poll.Options{Timeout: timeout, Clock: c.Live.Clock()})
}

// Unload disables a patch, waits for its transition and for the module's
// reference to drop, and removes the module. A module that an atomic
// replace left loaded (no live patch any more) is simply removed. The name
// may be spelt with '-' or '_'; it is checked before anything changes.
func (c *Changer) Unload(ctx context.Context, name string, opts WaitOptions) (*Outcome, error) {
	o := &Outcome{Action: "unload", Patch: name}
	clean, err := kernel.CleanModuleName(name)
	if err != nil {
		o.Result = ResultRefused
		o.Err = fmt.Errorf("unload: %w", err)
		return o, o.Err
	}
	o.Patch = clean
	return c.change(ctx, o, func(ctx context.Context, o *Outcome) error {
		return c.unload(ctx, o, opts)
	})
}

func (c *Changer) unload(ctx context.Context, o *Outcome, opts WaitOptions) error {
	start := time.Now()
	name := o.Patch
	p, err := c.LP.Patch(name)
	switch {
	case errors.Is(err, livepatch.ErrNotFound):
		if _, merr := c.Mod.Module(name); merr != nil {
			return fmt.Errorf("unload %s: %w: no such patch or module", name, livepatch.ErrNotFound)
		}
	case err != nil:
		return err
	case p.InTransition() && !p.Enabled:
		c.event(o, "patch %s is already unpatching; waiting for it", name)
		if err := c.wait(ctx, o, start, opts, StallLeave); err != nil {
			return err
		}
	case p.Enabled:
		if err := c.Ctl.Disable(name); err != nil {
			return err
		}
		c.noteTaint(o, p)
		if err := c.wait(ctx, o, start, opts, StallLeave); err != nil {
			return err
		}
	default:
		// Disabled but still registered: a kernel before 5.1.
	}
	if err := c.removeModule(ctx, name, opts); err != nil {
		return err
	}
	o.Result = ResultRemoved
	o.Elapsed = time.Since(start)
	return nil
}

// UnloadAll unloads every live patch module, newest first. Kernels before
// 5.1 let only the most recently enabled patch be disabled, so it retries in
// passes until a pass makes no progress. opts.Timeout bounds the whole run:
// each module's waits get what is left of it, and the modules not reached
// in time are reported as not unloaded.
func (c *Changer) UnloadAll(ctx context.Context, opts WaitOptions) (*Outcome, error) {
	return c.change(ctx, &Outcome{Action: "unload", All: true}, func(ctx context.Context, o *Outcome) error {
		// The deadline is on the kernel's clock, as the waits it bounds.
		clock := c.Live.Clock()
		var deadline time.Time
		if opts.Timeout > 0 {
			deadline = clock.Now().Add(opts.Timeout)
		}
		for {
			names, err := c.LivepatchModules()
			if err != nil {
				return err
			}
			if len(names) == 0 {
				if o.Result == "" {
					o.Result = ResultRemoved
				}
				return nil
			}
			progress := false
			var lastErr error
			// Newest first: the stacking order of old kernels, and the
			// natural order for replace patches.
			for _, name := range names {
				sub := &Outcome{Action: "unload", Patch: name}
				start := time.Now()
				subOpts := opts
				if !deadline.IsZero() {
					subOpts.Timeout = deadline.Sub(clock.Now())
					if subOpts.Timeout <= 0 {
						sub.Result, sub.Err = ResultFailed, fmt.Errorf("unload %s: %w: --timeout %s passed before its turn", name, livepatch.ErrStalled, opts.Timeout)
						o.Outcomes = append(o.Outcomes, sub)
						lastErr = sub.Err
						continue
					}
					if subOpts.RefTimeout <= 0 || subOpts.RefTimeout > subOpts.Timeout {
						subOpts.RefTimeout = subOpts.Timeout
					}
				}
				err := c.unload(ctx, sub, subOpts)
				sub.Err = err
				if sub.Elapsed == 0 {
					sub.Elapsed = time.Since(start)
				}
				if err != nil && sub.Result == "" {
					sub.Result = ResultFailed
				}
				o.Outcomes = append(o.Outcomes, sub)
				if err == nil {
					progress = true
					continue
				}
				if ctx.Err() != nil {
					o.Result = ResultIncomplete
					return err
				}
				lastErr = err
			}
			if !progress {
				o.Result = ResultIncomplete
				return lastErr
			}
		}
	})
}
