package preflight

import (
	"fmt"
	"strings"

	"github.com/klp-project/klp/ftrace"
	"github.com/klp-project/klp/modinfo"
)

// overrideNeeds: enabled_functions, the BPF programs, the kprobes and the
// config, when the patch replaces functions.
func overrideNeeds(m *modinfo.Module) need {
	if _, ok := replacesFunctions(m.Targets); !ok {
		return 0
	}
	return needEnabledFunctions | needBPF | needKprobes | needConfig | needRelease
}

// silentOverride looks for the users of a replaced function that would
// win over the patch without a word. A BPF fmod_ret or LSM program runs in
// the function's BPF trampoline, before the function: when it returns
// non-zero the trampoline returns that value and the function, patched or
// not, never runs. A kprobe program that calls bpf_override_return() does
// the same (CONFIG_BPF_KPROBE_OVERRIDE). The kernel accepts either on a
// patched function and a patch on such a function, and logs nothing (seen
// on Debian's 6.1 and 6.12: docs/kernel-notes.md). fentry and fexit
// programs only observe.
func silentOverride(f *facts) Check {
	t := f.module.Targets
	if c, ok := replacesFunctions(t); !ok {
		return c
	}
	enabled, bpf := f.enabledFunctions, f.bpf
	if enabled.err != nil && bpf.err != nil {
		return Check{Status: Skip,
			Reason: why(enabled.path, enabled.err) + "; BPF programs not listed: " + bpf.err.Error(),
			Fix:    "run as root, on the running kernel, with tracefs mounted"}
	}
	// Without the config, assume the kernel can override from kprobes.
	kprobeOverride := f.config.err != nil || f.config.v == nil || f.config.v.enabled("CONFIG_BPF_KPROBE_OVERRIDE")
	var overridden, maybe, details []string
	for _, k := range distinctFunctions(t) {
		label := k.label()
		trampoline := false
		for _, l := range bpf.v {
			if l.Object != k.object || l.Function != k.name {
				continue
			}
			kind, eff := ftrace.ClassifyBPF(l)
			u := ftrace.User{Kind: kind, Effect: eff, Program: l.Program, ProgramID: l.ProgramID, LinkID: l.ID}
			if l.UsesTrampoline() {
				trampoline = true
			}
			if eff == ftrace.Overrides {
				overridden = append(overridden, label)
				details = append(details, label+": "+u.String()+": callers would get the program's return value, the patched code would not run, and nothing would say so")
			} else {
				details = append(details, label+": "+u.String()+": it observes the calls; the patched code runs")
			}
		}
		flags := enabled.v[k]
		if enabled.err == nil && strings.Contains(flags, "D") && !trampoline {
			maybe = append(maybe, label)
			if bpf.err != nil {
				details = append(details, fmt.Sprintf("%s: a BPF trampoline (flag D in %s) whose programs klp could not list (%v): an fmod_ret or LSM program there would override the patch", label, enabled.path, bpf.err))
			} else {
				details = append(details, fmt.Sprintf("%s: a direct call (flag D in %s) that no BPF link explains (an ftrace direct-call module?): klp cannot tell whether it lets the function run", label, enabled.path))
			}
		}
		if bpf.err != nil && kprobeOverride && f.kprobes.err == nil {
			for _, p := range f.kprobes.v {
				if p.Function == k.name && p.Object == k.object && p.Has("FTRACE") && !p.Has("GONE") {
					maybe = append(maybe, label)
					details = append(details, fmt.Sprintf("%s: %s at %s+%s %s: a BPF program on it that calls bpf_override_return() would override the patch, and klp could not list the BPF programs", label, p.Kind(), p.Function, p.Offset, p.Flags))
				}
			}
		}
	}
	overridden, maybe = dedup(overridden), dedup(maybe)
	switch {
	case len(overridden) > 0:
		return Check{Status: Warn,
			Reason:  fmt.Sprintf("a BPF program would override the patch of %s without a word: %s", plural(len(overridden), "function", "functions"), joinMax(overridden, 3)),
			Fix:     "detach the program (bpftool link; or stop its owner) or make sure its owner knows that its result, not the patch, is what callers get",
			Details: details}
	case len(maybe) > 0:
		return Check{Status: Warn,
			Reason:  fmt.Sprintf("%s may be overridden without a word: %s", plural(len(maybe), "replaced function", "replaced functions"), joinMax(maybe, 3)),
			Fix:     "run klp preflight as root on the running kernel to list the BPF programs (or bpftool link)",
			Details: details}
	}
	c := Check{Status: Pass, Reason: "no BPF program or other user would override the replaced functions", Details: details}
	switch {
	case bpf.err != nil:
		c.Reason += " (BPF programs not listed: " + bpf.err.Error() + ")"
	case enabled.err != nil:
		c.Reason += " (" + why(enabled.path, enabled.err) + ")"
	}
	return c
}
