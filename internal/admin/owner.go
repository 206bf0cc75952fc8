package admin

import (
	"github.com/klp-project/klp/kmod"
	"github.com/klp-project/klp/livepatch"
)

// OwnerBasis says how klp determined which of the patches that change a
// function is the one whose code runs.
type OwnerBasis string

// The ways the owner of a function is determined, from the kernel's word to
// klp's inference.
const (
	// OwnerOnlyPatch: one active patch changes the function.
	OwnerOnlyPatch OwnerBasis = "only_patch"
	// OwnerStackOrder: the kernel says so: the highest stack_order
	// (Linux 6.14 to the kernels before replace sets).
	OwnerStackOrder OwnerBasis = "stack_order"
	// OwnerLoadOrder is inferred: the patch whose module was loaded last,
	// by its place in /proc/modules, which lists modules newest first.
	// The kernel puts a new patch's functions first on each function's
	// stack, and a patch module enables its patch as it loads, so the
	// newest module's code runs (shown on 6.1 and 6.12 in
	// docs/kernel-notes.md). Used where stack_order does not exist.
	OwnerLoadOrder OwnerBasis = "load_order"
	// OwnerNoneActive: no patch that changes the function is enabled or in
	// transition (kernels before 5.1 keep disabled patches): the original
	// code runs, and the owner is "".
	OwnerNoneActive OwnerBasis = "none_active"
)

// loadOrder ranks the loaded modules by load order, the newest highest,
// from /proc/modules (newest first); nil when it cannot be read.
func loadOrder(mod *kmod.FS) map[string]int {
	mods, err := mod.Modules()
	if err != nil {
		return nil
	}
	rank := make(map[string]int, len(mods))
	for i, m := range mods {
		rank[m.Name] = len(mods) - i
	}
	return rank
}

// topmost returns which of patches, all changing one function, runs it, and
// how that was determined; "" when it cannot be told. Only a patch that is
// enabled or in transition has its functions on the kernel's stacks (a
// patch disabled before 5.1 stays listed without them). load ranks the
// modules by load order ([loadOrder]); nil when unknown.
func topmost(patches []livepatch.Patch, load map[string]int) (string, OwnerBasis) {
	var active []livepatch.Patch
	for _, p := range patches {
		if p.Enabled || p.InTransition() {
			active = append(active, p)
		}
	}
	switch len(active) {
	case 0:
		if len(patches) > 0 {
			return "", OwnerNoneActive
		}
		return "", ""
	case 1:
		return active[0].Name, OwnerOnlyPatch
	}
	if best, ok := highest(active, func(p livepatch.Patch) (int, bool) {
		if p.StackOrder == nil {
			return 0, false
		}
		return *p.StackOrder, true
	}); ok {
		return best, OwnerStackOrder
	}
	if load == nil {
		return "", ""
	}
	if best, ok := highest(active, func(p livepatch.Patch) (int, bool) {
		r, ok := load[p.Name]
		return r, ok
	}); ok {
		return best, OwnerLoadOrder
	}
	return "", ""
}

// highest returns the patch with the highest key, if every patch has one.
func highest(patches []livepatch.Patch, key func(livepatch.Patch) (int, bool)) (string, bool) {
	best, bestKey := "", 0
	for _, p := range patches {
		k, ok := key(p)
		if !ok {
			return "", false
		}
		if best == "" || k > bestKey {
			best, bestKey = p.Name, k
		}
	}
	return best, true
}
