package preflight

import (
	"io/fs"
	"testing"

	"github.com/klp-project/klp/ftrace"
	"github.com/klp-project/klp/livepatch"
	"github.com/klp-project/klp/modinfo"
)

const (
	filterPath  = "/sys/kernel/tracing/available_filter_functions"
	enabledPath = "/sys/kernel/tracing/enabled_functions"
	kprobesPath = "/sys/kernel/debug/kprobes/list"
)

// noFunctionCases are the outcomes of traceable and kprobes for a module
// that names no replaced function.
var noFunctionCases = []factCase{
	{"not a livepatch", facts{module: &modinfo.Module{Name: "ext4"}},
		Check{Status: Skip, Reason: "not a livepatch module", Fix: "give the live patch module"}},
	{"undetermined", facts{module: undeterminedMod()},
		Check{Status: Warn, Reason: "the functions the patch replaces cannot be determined from the file, so none was checked",
			Fix: "check the patch's source", Details: []string{"undetermined: module has no .symtab"}}},
	{"no functions", facts{module: livepatchMod("p", nil)}, Check{Status: Pass, Reason: "the patch replaces no functions"}},
}

// traceableFuncs is an available_filter_functions that lists the given
// functions ("name" in vmlinux or "object/name").
func traceableFuncs(funcs ...string) reading[filterFunctions] {
	set := map[objFunc]bool{}
	for _, f := range funcs {
		t := target(f)
		set[objFunc{t.Object, t.Function}] = true
	}
	return reading[filterFunctions]{path: filterPath, v: filterFunctions{set: set, empty: len(funcs) == 0}}
}

func TestTraceableFacts(t *testing.T) {
	p := livepatchMod("p", nil, "cmdline_proc_show", "version_proc_show")
	twice := livepatchMod("p", nil, "cmdline_proc_show", "cmdline_proc_show")
	twice.Targets.Functions[1].Sympos = 2
	m := livepatchMod("m", nil, "meminfo_proc_show", "klp_target/klp_target_value")
	notFound := func(f string) string {
		return f + " in vmlinux: not in available_filter_functions; the kernel logs \"failed to find location for function '" + f + "'\""
	}
	const notLoaded = "klp_target_value in klp_target: module not loaded; checked by the kernel when it loads"
	pending := Check{Status: Warn, Reason: "1 function in modules that are not loaded cannot be checked: klp_target_value in klp_target",
		Fix: "load the target modules first to check them now", Details: []string{"meminfo_proc_show in vmlinux: traceable", notLoaded}}
	otherLines := traceableFuncs()
	otherLines.v.empty = false
	testCheck(t, traceable, append(noFunctionCases[:len(noFunctionCases):len(noFunctionCases)], []factCase{
		{"tracefs missing", facts{module: p, filterFunctions: bad[filterFunctions](filterPath, fs.ErrNotExist)},
			Check{Status: Skip, Reason: filterPath + " does not exist", Fix: "run as root with tracefs mounted (mount -t tracefs nodev /sys/kernel/tracing)"}},
		{"unreadable", facts{module: p, filterFunctions: bad[filterFunctions](filterPath, fs.ErrPermission)},
			Check{Status: Skip, Reason: filterPath + " is not readable (permission denied)", Fix: "run as root"}},
		{"read error", facts{module: p, filterFunctions: bad[filterFunctions](filterPath, errIO)},
			Check{Status: Skip, Reason: "cannot read " + filterPath + ": input/output error", Fix: "check that the file is readable"}},
		{"empty file", facts{module: p, filterFunctions: traceableFuncs()},
			Check{Status: Skip, Reason: filterPath + " is empty", Fix: "check the tracefs mount"}},
		{"all traceable", facts{module: p, filterFunctions: traceableFuncs("cmdline_proc_show", "version_proc_show")},
			Check{Status: Pass, Reason: "all 2 replaced functions can be traced", Details: []string{"cmdline_proc_show in vmlinux: traceable", "version_proc_show in vmlinux: traceable"}}},
		{"one function, two copies", facts{module: twice, filterFunctions: traceableFuncs("cmdline_proc_show")},
			Check{Status: Pass, Reason: "the replaced function can be traced", Details: []string{"cmdline_proc_show in vmlinux: traceable"}}},
		{"one not traceable", facts{module: p, filterFunctions: traceableFuncs("version_proc_show")},
			Check{Status: Fail, Reason: "1 function cannot be traced (notrace, inlined, or not instrumented), so the kernel refuses the patch (EINVAL): cmdline_proc_show in vmlinux",
				Fix:     "patch the functions that call it instead (a function ftrace cannot hook cannot be live patched)",
				Details: []string{notFound("cmdline_proc_show"), "version_proc_show in vmlinux: traceable"}}},
		{"none traceable", facts{module: p, filterFunctions: otherLines},
			Check{Status: Fail, Reason: "2 functions cannot be traced (notrace, inlined, or not instrumented), so the kernel refuses the patch (EINVAL): cmdline_proc_show in vmlinux, version_proc_show in vmlinux",
				Fix:     "patch the functions that call it instead (a function ftrace cannot hook cannot be live patched)",
				Details: []string{notFound("cmdline_proc_show"), notFound("version_proc_show")}}},
		{"module not loaded", facts{module: m, filterFunctions: traceableFuncs("meminfo_proc_show"), objects: map[string]objectState{"klp_target": {}}}, pending},
		{"module state unreadable", facts{module: m, filterFunctions: traceableFuncs("meminfo_proc_show"), objects: map[string]objectState{"klp_target": {err: errIO}}}, pending},
		{"module loaded", facts{module: m, filterFunctions: traceableFuncs("meminfo_proc_show", "klp_target/klp_target_value"), objects: map[string]objectState{"klp_target": {state: "live"}}},
			Check{Status: Pass, Reason: "all 2 replaced functions can be traced", Details: []string{"meminfo_proc_show in vmlinux: traceable", "klp_target_value in klp_target: traceable"}}},
		{"module's function listed for another module", facts{module: m, filterFunctions: traceableFuncs("meminfo_proc_show", "other/klp_target_value"), objects: map[string]objectState{"klp_target": {state: "live"}}},
			Check{Status: Fail, Reason: "1 function cannot be traced (notrace, inlined, or not instrumented), so the kernel refuses the patch (EINVAL): klp_target_value in klp_target",
				Fix: "patch the functions that call it instead (a function ftrace cannot hook cannot be live patched)",
				Details: []string{"meminfo_proc_show in vmlinux: traceable",
					"klp_target_value in klp_target: not in available_filter_functions; the kernel logs \"failed to find location for function 'klp_target_value'\""}}},
		{"failure before pending", facts{module: m, filterFunctions: traceableFuncs("version_proc_show"), objects: map[string]objectState{"klp_target": {}}},
			Check{Status: Fail, Reason: "1 function cannot be traced (notrace, inlined, or not instrumented), so the kernel refuses the patch (EINVAL): meminfo_proc_show in vmlinux",
				Fix:     "patch the functions that call it instead (a function ftrace cannot hook cannot be live patched)",
				Details: []string{notFound("meminfo_proc_show"), notLoaded}}},
	}...))
}

// probes is a kprobes list.
func probes(ps ...ftrace.Kprobe) reading[[]ftrace.Kprobe] {
	return reading[[]ftrace.Kprobe]{path: kprobesPath, v: ps}
}

// flags is an enabled_functions with the given flags per function.
func flags(fl map[string]string) reading[map[objFunc]string] {
	out := map[objFunc]string{}
	for f, v := range fl {
		t := target(f)
		out[objFunc{t.Object, t.Function}] = v
	}
	return reading[map[objFunc]string]{path: enabledPath, v: out}
}

func TestKprobesFacts(t *testing.T) {
	p := livepatchMod("p", nil, "cmdline_proc_show", "version_proc_show")
	on := func(list reading[[]ftrace.Kprobe], enabled reading[map[objFunc]string], edit ...func(*facts)) facts {
		f := facts{module: p, kprobes: list, enabledFunctions: enabled, patches: patches(), release: val("/proc/sys/kernel/osrelease", rel61)}
		for _, e := range edit {
			e(&f)
		}
		return f
	}
	old := func(f *facts) { f.release = val("/proc/sys/kernel/osrelease", "4.19.0-27-amd64") }
	loaded := func(ps ...livepatch.Patch) func(*facts) { return func(f *facts) { f.patches = patches(ps...) } }
	kp := func(fn, flags string) ftrace.Kprobe {
		return ftrace.Kprobe{Type: "k", Object: "vmlinux", Function: fn, Offset: "0x0", Flags: flags}
	}
	ftraced := kp("cmdline_proc_show", "[FTRACE]")
	inside := ftrace.Kprobe{Type: "k", Object: "vmlinux", Function: "cmdline_proc_show", Offset: "0x14", Flags: "[OPTIMIZED]"}
	ret := ftrace.Kprobe{Type: "r", Object: "vmlinux", Function: "version_proc_show", Offset: "0x0", Flags: "[FTRACE]"}
	jprobe := ftrace.Kprobe{Type: "j", Object: "vmlinux", Function: "version_proc_show", Offset: "0x0", Flags: "[FTRACE]"}
	noFlags := flags(nil)
	missingFlags := bad[map[objFunc]string](enabledPath, fs.ErrNotExist)

	const (
		ipmodify  = "cmdline_proc_show in vmlinux: another ftrace user modifies its instruction pointer (IPMODIFY, flags \"RI\" in enabled_functions): the kernel refuses the patch (EBUSY)"
		coexists  = ": it does not modify the instruction pointer, so it coexists with the patch; it keeps seeing calls to the original entry point"
		kpDesc    = "cmdline_proc_show in vmlinux: kprobe at cmdline_proc_show+0x0 [FTRACE]"
		removeFix = "remove the conflicting probe (see " + kprobesPath + " and " + enabledPath + ") before loading the patch"
		ownersFix = "check that the probes' owners expect the function to be replaced"
	)
	warnOn := func(fns string, details ...string) Check {
		return Check{Status: Warn, Reason: "kprobes on " + fns, Fix: ownersFix, Details: details}
	}
	failOn := func(reason string, details ...string) Check {
		return Check{Status: Fail, Reason: reason + ", so the kernel refuses the patch (EBUSY): cmdline_proc_show in vmlinux", Fix: removeFix, Details: details}
	}
	clean := Check{Status: Pass, Reason: "no kprobe or other IPMODIFY ftrace user on the replaced functions"}

	four := livepatchMod("p", nil, "a", "b", "c", "d")
	both := livepatchMod("p", nil, "cmdline_proc_show", "version_proc_show")

	testCheck(t, kprobes, append(noFunctionCases[:len(noFunctionCases):len(noFunctionCases)], []factCase{
		{"nothing readable", on(bad[[]ftrace.Kprobe](kprobesPath, fs.ErrNotExist), bad[map[objFunc]string](enabledPath, fs.ErrPermission)),
			Check{Status: Skip, Reason: kprobesPath + " does not exist; " + enabledPath + " is not readable (permission denied)",
				Fix: "run as root with debugfs mounted (mount -t debugfs none /sys/kernel/debug)"}},
		{"nothing there", on(probes(), noFlags), clean},
		{"kprobes not listed", on(bad[[]ftrace.Kprobe](kprobesPath, fs.ErrPermission), noFlags),
			Check{Status: Pass, Reason: "no other IPMODIFY ftrace user on the replaced functions (kprobes not listed: " + kprobesPath + " is not readable (permission denied))"}},
		{"flags not readable", on(probes(), missingFlags),
			Check{Status: Pass, Reason: "no kprobe on the replaced functions (other ftrace users not checked: " + enabledPath + " does not exist)"}},
		{"IPMODIFY user", on(probes(), flags(map[string]string{"cmdline_proc_show": "RI"})),
			failOn("1 function already has an ftrace user that modifies the instruction pointer", ipmodify)},
		{"IPMODIFY user, kprobes not listed", on(bad[[]ftrace.Kprobe](kprobesPath, fs.ErrNotExist), flags(map[string]string{"cmdline_proc_show": "RI"})),
			failOn("1 function already has an ftrace user that modifies the instruction pointer", ipmodify)},
		{"IPMODIFY kprobe", on(probes(ftraced), flags(map[string]string{"cmdline_proc_show": "RI"})),
			failOn("1 function already has an ftrace user that modifies the instruction pointer", ipmodify, kpDesc+": probably the IPMODIFY user (a kprobe with a post_handler)")},
		{"two IPMODIFY users", facts{module: both, kprobes: probes(), enabledFunctions: flags(map[string]string{"cmdline_proc_show": "RI", "version_proc_show": "I"}), patches: patches()},
			Check{Status: Fail,
				Reason: "2 functions already have an ftrace user that modifies the instruction pointer, so the kernel refuses the patch (EBUSY): cmdline_proc_show in vmlinux, version_proc_show in vmlinux",
				Fix:    removeFix,
				Details: []string{ipmodify,
					"version_proc_show in vmlinux: another ftrace user modifies its instruction pointer (IPMODIFY, flags \"I\" in enabled_functions): the kernel refuses the patch (EBUSY)"}}},
		{"another live patch", on(probes(), flags(map[string]string{"cmdline_proc_show": "RI"}), loaded(patch("p1", true, nil, "cmdline_proc_show"), patch("p2", true, nil, "cmdline_proc_show"))),
			Check{Status: Pass, Reason: "no kprobe or other IPMODIFY ftrace user on the replaced functions",
				Details: []string{"cmdline_proc_show in vmlinux: already hooked by live patch p1, p2 (shared, no conflict)"}}},
		{"this patch loaded already", on(probes(), flags(map[string]string{"cmdline_proc_show": "RI"}), loaded(patch("p", true, nil, "cmdline_proc_show"))),
			failOn("1 function already has an ftrace user that modifies the instruction pointer", ipmodify)},
		{"patches unreadable", on(probes(), flags(map[string]string{"cmdline_proc_show": "RI"}), func(f *facts) { f.patches = bad[[]livepatch.Patch](lpDir, errIO) }),
			failOn("1 function already has an ftrace user that modifies the instruction pointer", ipmodify)},
		{"kprobe beside a live patch", on(probes(ftraced), flags(map[string]string{"cmdline_proc_show": "RI"}), loaded(patch("p1", true, nil, "cmdline_proc_show"))),
			warnOn("1 replaced function: cmdline_proc_show in vmlinux", "cmdline_proc_show in vmlinux: already hooked by live patch p1 (shared, no conflict)", kpDesc+coexists)},
		{"plain kprobe", on(probes(ftraced), flags(map[string]string{"cmdline_proc_show": "R"})),
			warnOn("1 replaced function: cmdline_proc_show in vmlinux", kpDesc+coexists)},
		{"kretprobe", on(probes(ret), noFlags),
			warnOn("1 replaced function: version_proc_show in vmlinux", "version_proc_show in vmlinux: kretprobe at version_proc_show+0x0 [FTRACE]"+coexists)},
		{"jprobe", on(probes(jprobe), noFlags),
			warnOn("1 replaced function: version_proc_show in vmlinux", "version_proc_show in vmlinux: jprobe at version_proc_show+0x0 [FTRACE]"+coexists)},
		{"inside the function", on(probes(inside), noFlags),
			warnOn("1 replaced function: cmdline_proc_show in vmlinux",
				"cmdline_proc_show in vmlinux: kprobe at cmdline_proc_show+0x14 [OPTIMIZED]: inside the function, not on its ftrace call site; it stops firing once the function is redirected")},
		{"disabled", on(probes(kp("cmdline_proc_show", "[DISABLED][FTRACE]")), noFlags),
			warnOn("1 replaced function: cmdline_proc_show in vmlinux",
				"cmdline_proc_show in vmlinux: kprobe at cmdline_proc_show+0x0 [DISABLED][FTRACE]: disabled now; enabling it later fails (EBUSY) if it has a post_handler")},
		{"gone", on(probes(kp("cmdline_proc_show", "[GONE][FTRACE]"), kp("cmdline_proc_show", "[GONE]")), noFlags), clean},
		{"another object's function", on(probes(ftrace.Kprobe{Type: "k", Object: "other", Function: "cmdline_proc_show", Offset: "0x0", Flags: "[FTRACE]"}), noFlags), clean},
		{"another function", on(probes(kp("schedule", "[FTRACE]")), noFlags), clean},
		{"post_handler unknown", on(probes(ftraced), missingFlags),
			warnOn("1 replaced function: cmdline_proc_show in vmlinux",
				kpDesc+": if it has a post_handler the kernel refuses the patch (EBUSY); "+enabledPath+" does not exist, so klp cannot tell")},
		{"before 5.4", on(probes(ftraced), missingFlags, old),
			failOn("1 function already has an ftrace user that modifies the instruction pointer",
				kpDesc+": before Linux 5.4 every kprobe on the ftrace call site modifies the instruction pointer, so the kernel refuses the patch (EBUSY)")},
		{"before 5.4 with flags", on(probes(ftraced), flags(map[string]string{"cmdline_proc_show": "R"}), old),
			warnOn("1 replaced function: cmdline_proc_show in vmlinux", kpDesc+coexists)},
		{"before 5.4, inside the function", on(probes(inside), missingFlags, old),
			warnOn("1 replaced function: cmdline_proc_show in vmlinux",
				"cmdline_proc_show in vmlinux: kprobe at cmdline_proc_show+0x14 [OPTIMIZED]: inside the function, not on its ftrace call site; it stops firing once the function is redirected")},
		{"two probes, one function", on(probes(ftraced, inside), noFlags),
			warnOn("1 replaced function: cmdline_proc_show in vmlinux", kpDesc+coexists,
				"cmdline_proc_show in vmlinux: kprobe at cmdline_proc_show+0x14 [OPTIMIZED]: inside the function, not on its ftrace call site; it stops firing once the function is redirected")},
		{"four functions", facts{module: four, kprobes: probes(kp("a", "[FTRACE]"), kp("b", "[FTRACE]"), kp("c", "[FTRACE]"), kp("d", "[FTRACE]")), enabledFunctions: noFlags, patches: patches()},
			warnOn("4 replaced functions: a in vmlinux, b in vmlinux, c in vmlinux and 1 more",
				"a in vmlinux: kprobe at a+0x0 [FTRACE]"+coexists, "b in vmlinux: kprobe at b+0x0 [FTRACE]"+coexists,
				"c in vmlinux: kprobe at c+0x0 [FTRACE]"+coexists, "d in vmlinux: kprobe at d+0x0 [FTRACE]"+coexists)},
		{"failure before warning", on(probes(ret), flags(map[string]string{"cmdline_proc_show": "RI"})),
			failOn("1 function already has an ftrace user that modifies the instruction pointer", ipmodify,
				"version_proc_show in vmlinux: kretprobe at version_proc_show+0x0 [FTRACE]"+coexists)},
	}...))
}
