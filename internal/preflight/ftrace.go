package preflight

import (
	"fmt"
	"strings"

	"github.com/klp-project/klp/ftrace"

	"github.com/klp-project/klp/modinfo"
)

// targetNames is the set of functions the module replaces.
func targetNames(m *modinfo.Module) map[string]bool {
	names := map[string]bool{}
	for _, fn := range m.Targets.Functions {
		names[fn.Function] = true
	}
	return names
}

// replacesFunctions reports whether the patch names functions it replaces;
// when it does not, it returns the check that says so.
func replacesFunctions(t *modinfo.Targets) (Check, bool) {
	switch {
	case t == nil:
		return Check{Status: Skip, Reason: "not a livepatch module", Fix: "give the live patch module"}, false
	case len(t.Functions) > 0:
		return Check{}, true
	case t.Undetermined != "":
		return Check{Status: Warn, Reason: "the functions the patch replaces cannot be determined from the file, so none was checked",
			Fix: "check the patch's source", Details: []string{"undetermined: " + t.Undetermined}}, false
	}
	return Check{Status: Pass, Reason: "the patch replaces no functions"}, false
}

// traceableNeeds: available_filter_functions, when the patch replaces
// functions.
func traceableNeeds(m *modinfo.Module) need {
	if _, ok := replacesFunctions(m.Targets); !ok {
		return 0
	}
	return needFilterFunctions | needObjects
}

// tracefsMountFix says how to make tracefs readable.
const tracefsMountFix = "run as root with tracefs mounted (mount -t tracefs nodev /sys/kernel/tracing)"

// traceable: livepatch redirects a function through its ftrace call site,
// so a function ftrace cannot attach to (notrace, inlined everywhere, or
// without an fentry call) makes klp_patch_func fail with EINVAL ("failed to
// find location for function"). available_filter_functions lists the
// functions that have a call site.
func traceable(f *facts) Check {
	t := f.module.Targets
	if c, ok := replacesFunctions(t); !ok {
		return c
	}
	path, ff, err := f.filterFunctions.path, f.filterFunctions.v, f.filterFunctions.err
	if err != nil {
		return Check{Status: Skip, Reason: why(path, err), Fix: readFixFor(err, tracefsMountFix)}
	}
	if len(ff.set) == 0 && ff.empty {
		return Check{Status: Skip, Reason: path + " is empty", Fix: "check the tracefs mount"}
	}
	var failed, pending, details []string
	funcs := distinctFunctions(t)
	for _, k := range funcs {
		label := k.label()
		loaded, lerr := objectLoaded(f, k.object, nil)
		switch {
		case lerr != nil || !loaded:
			pending = append(pending, label)
			details = append(details, label+": module not loaded; checked by the kernel when it loads")
		case ff.set[k]:
			details = append(details, label+": traceable")
		default:
			failed = append(failed, label)
			details = append(details, label+": not in available_filter_functions; the kernel logs \"failed to find location for function '"+k.name+"'\"")
		}
	}
	switch {
	case len(failed) > 0:
		return Check{Status: Fail,
			Reason:  fmt.Sprintf("%s cannot be traced (notrace, inlined, or not instrumented), so the kernel refuses the patch (EINVAL): %s", plural(len(failed), "function", "functions"), joinMax(failed, 3)),
			Fix:     "patch the functions that call it instead (a function ftrace cannot hook cannot be live patched)",
			Details: details}
	case len(pending) > 0:
		return Check{Status: Warn,
			Reason:  fmt.Sprintf("%s in modules that are not loaded cannot be checked: %s", plural(len(pending), "function", "functions"), joinMax(pending, 3)),
			Fix:     "load the target modules first to check them now",
			Details: details}
	}
	reason := fmt.Sprintf("all %d replaced functions can be traced", len(funcs))
	if len(funcs) == 1 {
		reason = "the replaced function can be traced"
	}
	return Check{Status: Pass, Reason: reason, Details: details}
}

// kprobesNeeds: the kprobes list, enabled_functions, the loaded patches and
// the release, when the patch replaces functions.
func kprobesNeeds(m *modinfo.Module) need {
	if _, ok := replacesFunctions(m.Targets); !ok {
		return 0
	}
	return needKprobes | needEnabledFunctions | needPatches | needRelease | needBPF
}

// kprobes looks for other ftrace users that would stop the patch. A
// function can have one IPMODIFY ftrace user; livepatch is one, so the
// kernel refuses the patch (EBUSY, "failed to register ftrace handler")
// when another IPMODIFY user is there already, except another live patch,
// whose ftrace ops the new patch shares. Since 5.4 ("kprobes: Allow kprobes
// coexist with livepatch") only a kprobe with a post_handler sets IPMODIFY;
// before, every kprobe placed on the ftrace call site did. kprobes/list
// does not show post handlers, but tracefs's enabled_functions shows the
// IPMODIFY flag ("I") itself, so that decides when it can be read.
func kprobes(f *facts) Check {
	t := f.module.Targets
	if c, ok := replacesFunctions(t); !ok {
		return c
	}
	list, enabled := f.kprobes, f.enabledFunctions
	if list.err != nil && enabled.err != nil {
		return Check{Status: Skip,
			Reason: why(list.path, list.err) + "; " + why(enabled.path, enabled.err),
			Fix:    "run as root with debugfs mounted (mount -t debugfs none /sys/kernel/debug)"}
	}
	h := hooks{enabled: enabled, oldKprobes: versionBefore(f.release.v, 5, 4), failing: map[string]bool{}}
	if f.failFunctions.err == nil {
		for _, fn := range f.failFunctions.v {
			h.failing[fn] = true
		}
	}
	patched := patchedElsewhere(f)
	for _, k := range distinctFunctions(t) {
		h.function(k.label(), k, patched[k], list.v)
	}
	failed, warned := dedup(h.failed), dedup(h.warned)
	switch {
	case len(failed) > 0:
		return Check{Status: Fail,
			Reason:  fmt.Sprintf("%s already %s an ftrace user that modifies the instruction pointer, so the kernel refuses the patch (EBUSY): %s", plural(len(failed), "function", "functions"), map[bool]string{true: "has", false: "have"}[len(failed) == 1], joinMax(failed, 3)),
			Fix:     "remove the conflicting probe (see " + list.path + " and " + enabled.path + ") before loading the patch",
			Details: h.details}
	case len(warned) > 0:
		return Check{Status: Warn,
			Reason:  fmt.Sprintf("kprobes on %s: %s", plural(len(warned), "replaced function", "replaced functions"), joinMax(warned, 3)),
			Fix:     "check that the probes' owners expect the function to be replaced",
			Details: h.details}
	}
	c := Check{Status: Pass, Reason: "no kprobe or other IPMODIFY ftrace user on the replaced functions", Details: h.details}
	switch {
	case list.err != nil:
		c.Reason = "no other IPMODIFY ftrace user on the replaced functions (kprobes not listed: " + why(list.path, list.err) + ")"
	case enabled.err != nil:
		c.Reason = "no kprobe on the replaced functions (other ftrace users not checked: " + why(enabled.path, enabled.err) + ")"
	}
	return c
}

// patchedElsewhere returns the functions other loaded live patches hook,
// with the patches that do; nothing when the patches cannot be read.
func patchedElsewhere(f *facts) map[objFunc][]string {
	patched := map[objFunc][]string{}
	if f.patches.err != nil {
		return patched
	}
	for _, p := range f.patches.v {
		if p.Name == f.module.Name {
			continue
		}
		for _, o := range p.Objects {
			for _, fn := range o.Functions {
				k := objFunc{o.Name, fn.Name}
				patched[k] = append(patched[k], p.Name)
			}
		}
	}
	return patched
}

// hooks collects what [kprobes] finds on the replaced functions: labels
// of the functions that make the load fail or deserve a warning, and one
// detail line per finding.
type hooks struct {
	enabled    reading[map[objFunc]string] // enabled_functions
	oldKprobes bool                        // the kernel is older than 5.4
	failing    map[string]bool             // fail_function injects errors into these

	failed, warned, details []string
}

// function judges the ftrace users of one replaced function: its IPMODIFY
// flag, and the kprobes on it.
func (h *hooks) function(label string, k objFunc, patchedBy []string, probes []ftrace.Kprobe) {
	flags := h.enabled.v[k]
	ipmodify := h.enabled.err == nil && strings.Contains(flags, "I")
	// The IPMODIFY user is a conflict unless it is a live patch.
	conflict := ipmodify && len(patchedBy) == 0
	if ipmodify {
		if len(patchedBy) > 0 {
			h.details = append(h.details, label+": already hooked by live patch "+strings.Join(patchedBy, ", ")+" (shared, no conflict)")
		} else {
			h.failed = append(h.failed, label)
			who := "another ftrace user"
			if h.failing[k.name] {
				who = "fail_function's error injection (fail_function/" + k.name + ")"
			}
			h.details = append(h.details, label+": "+who+" modifies its instruction pointer (IPMODIFY, flags \""+flags+"\" in enabled_functions): the kernel refuses the patch (EBUSY)")
		}
	}
	for _, p := range probes {
		if p.Function == k.name && p.Object == k.object {
			h.probe(label, p, conflict)
		}
	}
}

// probe judges one kprobe on a replaced function; conflict says that the
// function has an IPMODIFY user that is not a live patch.
func (h *hooks) probe(label string, p ftrace.Kprobe, conflict bool) {
	desc := fmt.Sprintf("%s: %s at %s+%s %s", label, p.Kind(), p.Function, p.Offset, p.Flags)
	haveFlags := h.enabled.err == nil
	switch {
	case p.Has("GONE"):
	case !p.Has("FTRACE"):
		h.warned = append(h.warned, label)
		h.details = append(h.details, desc+": inside the function, not on its ftrace call site; it stops firing once the function is redirected")
	case p.Has("DISABLED"):
		h.warned = append(h.warned, label)
		h.details = append(h.details, desc+": disabled now; enabling it later fails (EBUSY) if it has a post_handler")
	case h.oldKprobes && !haveFlags:
		h.failed = append(h.failed, label)
		h.details = append(h.details, desc+": before Linux 5.4 every kprobe on the ftrace call site modifies the instruction pointer, so the kernel refuses the patch (EBUSY)")
	case conflict:
		h.details = append(h.details, desc+": probably the IPMODIFY user (a kprobe with a post_handler)")
	case haveFlags:
		h.warned = append(h.warned, label)
		h.details = append(h.details, desc+": it does not modify the instruction pointer, so it coexists with the patch; it keeps seeing calls to the original entry point")
	default:
		h.warned = append(h.warned, label)
		h.details = append(h.details, desc+": if it has a post_handler the kernel refuses the patch (EBUSY); "+why(h.enabled.path, h.enabled.err)+", so klp cannot tell")
	}
}

func dedup(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
