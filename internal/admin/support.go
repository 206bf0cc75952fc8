package admin

import (
	"errors"

	"github.com/klp-project/klp/livepatch"
)

// TaintPlan says that disabling patches would taint the kernel: on a kernel
// with SUSE's support facility, disabling a live patch sets the NO_SUPPORT
// taint ([livepatch.FS.DisableTaints]). The commands that disable ask for
// confirmation first.
type TaintPlan struct {
	// Evidence is the file that shows the support facility.
	Evidence string
	// Patches are the patches whose disable would taint.
	Patches []string
}

// PlanDisableTaint tells whether disabling the named patches (none: every
// loaded patch, as unload --all does) would set SUSE's NO_SUPPORT taint;
// nil when it would not: the kernel has no support facility (not a SUSE
// kernel), or no named patch would be disabled (a module an atomic replace
// left loaded, a patch already unpatching, or one still patching, whose
// disable reverses the transition instead). A patch whose state cannot be
// read counts as one that would be disabled. Nothing is changed.
func (c *Changer) PlanDisableTaint(names ...string) *TaintPlan {
	evidence, taints := c.LP.DisableTaints()
	if !taints {
		return nil
	}
	plan := &TaintPlan{Evidence: evidence}
	if len(names) == 0 {
		patches, err := c.LP.Patches()
		if err != nil {
			// Unknown: unload --all may well disable something.
			return &TaintPlan{Evidence: evidence, Patches: []string{"every loaded patch"}}
		}
		for _, p := range patches {
			if disableTaints(p) {
				plan.Patches = append(plan.Patches, p.Name)
			}
		}
	}
	for _, name := range names {
		p, err := c.LP.Patch(name)
		switch {
		case errors.Is(err, livepatch.ErrNotFound):
		case err != nil:
			plan.Patches = append(plan.Patches, name)
		case disableTaints(p):
			plan.Patches = append(plan.Patches, p.Name)
		}
	}
	if len(plan.Patches) == 0 {
		return nil
	}
	return plan
}

// disableTaints reports whether writing 0 to p's enabled starts an
// unpatching transition (SUSE's kernels taint then), rather than reversing
// p's patching transition or finding p already disabled.
func disableTaints(p livepatch.Patch) bool {
	return p.Enabled && !p.InTransition()
}

// noteTaint adds to o what a disable of p did to a SUSE kernel's support
// status: the kernel sets the NO_SUPPORT taint as it accepts the write, so
// /proc/sys/kernel/tainted shows it at once.
func (c *Changer) noteTaint(o *Outcome, p livepatch.Patch) {
	if _, taints := c.LP.DisableTaints(); !taints || !disableTaints(p) {
		return
	}
	n, err := c.K.ReadInt(c.K.ProcPath("sys", "kernel", "tainted"))
	if err == nil && uint64(n)&livepatch.TaintNoSupport != 0 {
		c.event(o, "the kernel's NO_SUPPORT taint (N) is set: SUSE may decline support for this boot")
	}
}
