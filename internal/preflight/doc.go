// Package preflight predicts, before anything is loaded, whether this kernel
// will accept a live patch and whether the patch can do its job: `klp
// preflight` prints the full report and `klp load` runs the cheap subset.
//
// Package modinfo says what a module file is, the same on every machine;
// this package joins it with a kernel, read through a [kernel.Handle]: the
// running kernel, or a snapshot of another machine, which then answers for
// itself. Nothing here calls uname or writes anything.
//
// # Facts apart from rules
//
// A run has two halves. The reader, gather (gather.go), is the only code
// that reads the kernel: it fills one facts value (facts.go) with what the
// selected checks need, each file read once, each value with its path and
// the error its read gave. Every check is then a function of the facts
// alone, with no handle, no context and no I/O, so each of its outcomes is
// tested by handing it literal facts. Each check says which facts it needs
// for the module given, and gather reads no more: the cheap subset reads a
// few small files (osrelease, a few sysctls, the lockdown and sig_enforce
// attributes, /proc/modules, the patch list and the kernel config), never
// the kallsyms or ftrace scans, which are megabytes.
//
// The checks live by subject: system.go (live patching, module loading,
// ftrace, stack traces, lockdown, signatures, taint, transitions, forced
// patches), module.go (the module itself, vermagic, already loaded, atomic
// replace, target modules), symbols.go (kallsyms) and ftrace.go (traceable
// functions, kprobes). parse.go and kconfig.go parse the kernel's text.
//
// # Statuses
//
// Each [Check] has a stable ID, a [Status] (pass, warn, fail or skip), a
// one-line reason and, when not passed, a fix. The rules follow the
// kernel's behaviour (docs/kernel-notes.md records what real kernels did):
// a check fails only when the kernel would refuse the load (or klp load
// would), and warns when the load would succeed but something deserves
// attention (a taint, a patch that only applies when its target module
// loads, a probe that stops firing). A file the caller cannot read (not
// root, debugfs not mounted) makes its check skip with a reason naming the
// file and a fix saying what to do, never an error.
//
// Typical use:
//
//	k, err := kernel.Open(kernel.DefaultRoots())
//	if err != nil { ... } // a bad root
//	rep, err := preflight.Run(ctx, preflight.Inputs{Kernel: k, Module: mod})
//	if err != nil { ... } // ctx is done
//	if rep.Result() == preflight.Fail { ... }
package preflight
