package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/livepatch"
)

// ForcePlan is a force about to be made, for the user to confirm.
type ForcePlan struct {
	Patch string
	// Direction is where the forced tasks go: "patched" or "unpatched".
	Direction string
	// Consequence says which modules the force pins until reboot.
	Consequence string
}

// PlanForce checks that the named patch can be forced (klp runs as root,
// the patch is the one in transition) and says what forcing it means.
// Nothing is changed.
func (c *Changer) PlanForce(name string) (*ForcePlan, error) {
	if c.cfg.Euid != 0 {
		return nil, &NotRootError{"force"}
	}
	p, err := c.LP.Patch(name)
	if err != nil {
		return nil, err
	}
	if !p.InTransition() {
		return nil, fmt.Errorf("force %s: %w: there is nothing to force", p.Name, livepatch.ErrNotInTransition)
	}
	plan := &ForcePlan{Patch: p.Name, Direction: "patched"}
	if !p.Enabled {
		plan.Direction = "unpatched"
	}
	v, verr := c.K.Version()
	plan.Consequence = forceConsequence(p, v, verr == nil)
	return plan, nil
}

// forceConsequence says which modules a force pins. Since about 5.19 the
// kernel marks only the patches being removed as forced (the patch itself
// when unpatching, the patches a cumulative patch replaces when patching);
// before, every patch on the list. A forced patch's module is never
// released. No file shows which rule the kernel follows, so the version
// decides (confirmed on 6.1 and 6.12 in docs/kernel-notes.md), and the
// text says so; an unreadable version counts as old, the cautious answer.
func forceConsequence(p livepatch.Patch, v kernel.Version, known bool) string {
	switch {
	case !p.Enabled:
		return fmt.Sprintf("The kernel will then never release module %s: it cannot be unloaded until reboot.", p.Name)
	case known && v.AtLeast(5, 19):
		return fmt.Sprintf("Module %s stays removable after a clean disable, but the patches it replaces (if it is cumulative) can never be unloaded until reboot. (By the kernel's version, %s: no file shows which modules a force pins.)", p.Name, v)
	case known:
		return fmt.Sprintf("On this kernel every loaded patch module, %s included, can then never be unloaded until reboot. (By the kernel's version, %s: no file shows which modules a force pins.)", p.Name, v)
	}
	return fmt.Sprintf("Every loaded patch module, %s included, may then never be unloaded until reboot. (The kernel's version, which alone tells which modules a force pins, is unknown: klp assumes the worst.)", p.Name)
}

// Force writes the patch's force attribute: every task that has not
// switched is marked switched without the stack check. Callers confirm the
// plan with the user first.
func (c *Changer) Force(ctx context.Context, plan *ForcePlan) (*Outcome, error) {
	return c.change(ctx, &Outcome{Action: "force", Patch: plan.Patch}, func(ctx context.Context, o *Outcome) error {
		if err := c.Ctl.Force(o.Patch); err != nil {
			return err
		}
		res, err := c.waitTransition(ctx, o.Patch, livepatch.WaitOptions{Timeout: 10 * time.Second})
		if err != nil {
			return err
		}
		o.Result = "forced, " + map[bool]string{true: "patched", false: "unpatched"}[res.Enabled]
		o.Elapsed = res.Elapsed
		return nil
	})
}

// Signal writes the signal attribute of the patch in transition, which sends
// a fake signal to every task that has not switched (kernels 4.15 to 5.0).
// Later kernels signal by themselves every 15 seconds: the result is then
// "not needed".
func (c *Changer) Signal(ctx context.Context) (*Outcome, error) {
	o := &Outcome{Action: "signal"}
	patches, err := c.LP.Patches()
	if err == nil {
		if tr := livepatch.TransitionOf(patches); tr != nil {
			o.Patch = tr.Patch
		} else {
			err = fmt.Errorf("signal: %w: nothing to signal", errNoTransition)
		}
	}
	if err != nil {
		o.Result, o.Err = ResultFailed, err
		return o, err
	}
	return c.change(ctx, o, func(ctx context.Context, o *Outcome) error {
		err := c.Ctl.Signal(o.Patch)
		if errors.Is(err, livepatch.ErrUnsupportedAttr) {
			o.Result = ResultNotNeeded
			c.event(o, "this kernel has no signal attribute: since Linux 5.1 it signals the blocking tasks every 15 seconds by itself")
			return nil
		}
		if err == nil {
			o.Result = ResultSignalled
		}
		return err
	})
}
