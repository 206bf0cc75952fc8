package preflight

import (
	"github.com/klp-project/klp/ftrace"
	"github.com/klp-project/klp/internal/kallsyms"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/kmod"
	"github.com/klp-project/klp/livepatch"
	"github.com/klp-project/klp/modinfo"
)

// facts are everything the checks decide on: the module, and the kernel as
// [gather] read it. Each value read from a file comes with that file's path
// and the error its read gave, so that a check can say what it could not
// read and where. The checks are functions of the facts alone; gather is
// the only code that reads the kernel.
//
// gather fills only what the selected checks need (see [need]). A reading
// left empty is one no selected check looks at.
type facts struct {
	// module is the patch module, nil for the system checks only.
	module *modinfo.Module

	// iface is the live patching interface sysfs offers.
	iface livepatch.Interface
	// livepatchDir and kgraftDir are <sysfs>/kernel/livepatch and
	// <sysfs>/kernel/kgraft.
	livepatchDir, kgraftDir string
	// sysKernel is <sysfs>/kernel, listed when neither interface exists:
	// an empty one means sysfs is not mounted.
	sysKernel dir

	// release is the kernel release, <procfs>/sys/kernel/osrelease.
	release reading[string]
	// config is the kernel configuration, from <procfs>/config.gz or
	// <boot>/config-<release>; the error says which files were tried.
	config reading[*kconfig]

	// modulesDisabled is <procfs>/sys/kernel/modules_disabled.
	modulesDisabled reading[string]
	// modulesListed says whether <procfs>/modules exists, and procSysKernel
	// whether <procfs>/sys/kernel has entries; both are looked at only when
	// modules_disabled does not exist (procSysKernel only when
	// <procfs>/modules does not either).
	modulesListed bool
	procSysKernel dir

	// ftraceEnabled is <procfs>/sys/kernel/ftrace_enabled.
	ftraceEnabled reading[string]

	// lockdown is <sysfs>/kernel/security/lockdown; securityfs, its
	// directory, is listed when the file does not exist.
	lockdown   reading[string]
	securityfs dir

	// sigEnforce is <sysfs>/module/module/parameters/sig_enforce;
	// sysModule, <sysfs>/module, is listed when the file does not exist.
	sigEnforce reading[string]
	sysModule  dir

	// tainted is <procfs>/sys/kernel/tainted.
	tainted reading[string]

	// patches are the loaded live patches (path: <sysfs>/kernel/livepatch).
	patches reading[[]livepatch.Patch]
	// modules are the loaded modules (path: <procfs>/modules).
	modules reading[kmod.Modules]
	// loadedStates are the klp_state entries of the loaded patches of a
	// kernel with replace sets, by patch name, read from their module
	// files (Inputs.LoadedModule): sysfs does not show them. A patch
	// whose file is unknown is missing or has an error.
	loadedStates map[string]reading[[]modinfo.KlpState]

	// build holds the build identifiers (srcversion, then version) that
	// the module file carries, with the loaded module of the same name's
	// value of each, in order, up to the first the loaded module has.
	build []buildID

	// objects are the states of the objects the patch targets, by name
	// (every name but vmlinux).
	objects map[string]objectState

	// kallsyms is the scan of <procfs>/kallsyms for the symbols the patch
	// needs.
	kallsyms reading[*kallsyms.Result]
	// filterFunctions is tracefs's available_filter_functions, for the
	// functions the patch replaces.
	filterFunctions reading[filterFunctions]
	// enabledFunctions is tracefs's enabled_functions: the ftrace flags of
	// the replaced functions that have ftrace users.
	enabledFunctions reading[map[objFunc]string]
	// kprobes is <sysfs>/kernel/debug/kprobes/list.
	kprobes reading[[]ftrace.Kprobe]
	// bpf are the BPF programs attached to kernel functions (the bpf(2)
	// system call; the running kernel only). Its path is "bpf(2)".
	bpf reading[[]kernel.BPFLink]
	// failFunctions are the functions fail_function injects errors
	// into (<sysfs>/kernel/debug/fail_function/<function>/).
	failFunctions reading[[]string]
}

// reading is what was read from one kernel file: its path, the value, and
// the error the read gave (then the value is the zero value).
type reading[T any] struct {
	path string
	v    T
	err  error
}

// dir is a directory a check looks at to tell an unmounted
// pseudo-filesystem from a missing file: an unmounted one leaves an empty
// mount point.
type dir struct {
	path  string
	empty bool // missing, unreadable or without entries
}

// buildID is one build identifier of the module file, and the loaded
// module's.
type buildID struct {
	key  string          // "srcversion" or "version"
	want string          // the module file's value
	have reading[string] // <sysfs>/module/<name>/<key>
}

// objectState is what /sys/module/<name> says of a target object: "live",
// "coming" or "going" (initstate), "builtin" (a directory without
// initstate: the code is part of vmlinux), or "" (not loaded); err is set
// when the name is invalid or the state could not be read.
type objectState struct {
	state string
	err   error
}

// filterFunctions is what available_filter_functions lists of the
// replaced functions.
type filterFunctions struct {
	set   map[objFunc]bool // the replaced functions ftrace can attach to
	empty bool             // the file has no lines at all
}

// objFunc names a function by object ("vmlinux" for the core kernel) and
// name.
type objFunc struct{ object, name string }

// label names the function as the checks print it.
func (k objFunc) label() string { return k.name + " in " + k.object }

// distinctFunctions returns the functions a patch replaces, each once (a
// function may stand in several klp_func entries), in the file's order.
func distinctFunctions(t *modinfo.Targets) []objFunc {
	var out []objFunc
	seen := map[objFunc]bool{}
	for _, fn := range t.Functions {
		k := objFunc{fn.Object, fn.Function}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}
