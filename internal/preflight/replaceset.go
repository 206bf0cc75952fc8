package preflight

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/klp-project/klp/livepatch"
)

// replaceSets reports whether the kernel has replace sets: a loaded patch
// shows replace_set. (A kernel with no patch loaded shows nothing, and then
// nothing can clash or be replaced either.)
func replaceSets(patches []livepatch.Patch) bool {
	for _, p := range patches {
		if p.ReplaceSet != nil {
			return true
		}
	}
	return false
}

// setName is "set N", or "an unknown set" for a patch without the
// attribute.
func setName(set *uint32) string {
	if set == nil {
		return "an unknown set"
	}
	return "set " + strconv.FormatUint(uint64(*set), 10)
}

// replaceSet is the replace check on a kernel with replace sets (a
// proposal: docs/kernel-notes.md). A patch atomically replaces the loaded
// patches of its own set: their functions it does not patch go back to
// the original code. Patches of different sets coexist, but the kernel
// refuses a patch that changes a function a patch of another set changes,
// or declares a klp_state id one of them declares.
func replaceSet(f *facts, patches []livepatch.Patch) Check {
	t := f.module.Targets
	ours := map[string]bool{}
	for _, fn := range t.Functions {
		ours[funcKey(fn.Object, fn.SysfsName())] = true
	}
	undetermined := len(t.Functions) == 0 && t.Undetermined != ""
	ourStates := map[uint64]bool{}
	for _, st := range t.States {
		ourStates[st.ID] = true
	}
	var same, others, clashes, reverting, unknownStates []string
	for _, p := range patches {
		if p.Name == f.module.Name {
			continue
		}
		label := p.Name + " (" + setName(p.ReplaceSet) + ")"
		if t.ReplaceSet != nil && p.ReplaceSet != nil && *p.ReplaceSet == *t.ReplaceSet {
			same = append(same, p.Name)
			for _, k := range patchKeys(p) {
				if !ours[k] {
					reverting = append(reverting, k+" (from "+p.Name+")")
				}
			}
			continue
		}
		others = append(others, label)
		for _, k := range patchKeys(p) {
			if ours[k] {
				clashes = append(clashes, k+" is changed by "+label)
			}
		}
		if len(ourStates) == 0 {
			continue
		}
		st, known := f.loadedStates[p.Name]
		switch {
		case !known || st.err != nil:
			why := "its module file is unknown"
			if known {
				why = st.err.Error()
			}
			unknownStates = append(unknownStates, label+": "+why)
		default:
			for _, s := range st.v {
				if ourStates[s.ID] {
					clashes = append(clashes, fmt.Sprintf("klp_state id %d is used by %s", s.ID, label))
				}
			}
		}
	}
	sort.Strings(reverting)

	if t.ReplaceSet == nil {
		why := "the file has no static struct klp_patch"
		if t.KlpBuild() {
			why = "a klp-build patch sets it in its init code"
		}
		c := Check{Status: Warn,
			Reason: "this kernel has replace sets, and klp cannot tell this patch's (" + why + ")",
			Fix:    "find out the patch's replace set: the kernel refuses it if another set's patch changes one of its functions, and it replaces the patches of its own set"}
		if len(clashes) > 0 {
			c.Reason += fmt.Sprintf("; unless it is their set, %s", plural(len(clashes), "clash", "clashes"))
			c.Details = clashes
		}
		return c
	}
	set := setName(t.ReplaceSet)
	if len(clashes) > 0 {
		return Check{Status: Fail,
			Reason: fmt.Sprintf("replace %s: the kernel refuses the load: patches of different replace sets may not change the same function or use the same klp_state id, and %s", set,
				joinMax(clashes, 2)),
			Fix:     "load the patch built for the replace set of the patches it clashes with, or unload them first",
			Details: clashes}
	}
	var c Check
	switch {
	case len(same) == 0:
		c = Check{Status: Pass, Reason: fmt.Sprintf("replace %s: no loaded patch is in it, so it replaces nothing", set)}
	case undetermined:
		c = Check{Status: Warn,
			Reason: fmt.Sprintf("replace %s: it replaces %s, and klp cannot tell which of their functions it still patches", set, joinMax(same, 5)),
			Fix:    "make sure this patch contains every fix of the patches of its set"}
	case len(reverting) > 0:
		c = Check{Status: Warn,
			Reason: fmt.Sprintf("replace %s: it replaces %s, and %s they patch will go back to the original code", set, joinMax(same, 5),
				plural(len(reverting), "function", "functions")),
			Fix:     "make sure this patch is meant to drop those fixes (a downgrade does); otherwise load the complete patch of the set",
			Details: reverting}
	default:
		c = Check{Status: Pass, Reason: fmt.Sprintf("replace %s: it replaces %s and patches every function they patch", set, joinMax(same, 5))}
	}
	if len(others) > 0 {
		c.Reason += "; it coexists with " + joinMax(others, 5) + ", which change none of its functions"
	}
	if len(unknownStates) > 0 && c.Status == Pass {
		c.Status = Warn
		c.Fix = "install the loaded patches (klp install) so that klp can read their klp_state ids, or check them in their sources"
	}
	if len(unknownStates) > 0 {
		c.Reason += "; the kernel refuses the load if another set's patch uses one of its klp_state ids, and klp cannot read those of " +
			plural(len(unknownStates), "patch", "patches")
		c.Details = append(c.Details, unknownStates...)
	}
	return c
}

// patchKeys are the functions a loaded patch changes, by [funcKey].
func patchKeys(p livepatch.Patch) []string {
	var keys []string
	for _, o := range p.Objects {
		for _, fn := range o.Functions {
			keys = append(keys, funcKey(o.Name, fn.DirName()))
		}
	}
	return keys
}
