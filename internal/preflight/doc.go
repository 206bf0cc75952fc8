// Package preflight predicts, before anything is loaded, whether this kernel
// will accept a live patch and whether the patch can do its job: `klp
// preflight` prints the full report and `klp load` runs the cheap subset.
//
// It is the "object" half of the spec/object split (docs/style.md habit 8):
// package modinfo says what a module file is, the same on every machine;
// this package joins it with the running kernel, read through injected
// sysfs and procfs roots (and a /boot directory for the kernel config), so
// that a snapshot of another machine answers for itself. Nothing here
// calls uname or writes anything.
//
// Each [Check] has a stable ID, a [Status] (pass, warn, fail or skip), a
// one-line reason and, when not passed, a fix. The rules follow the
// kernel's real behaviour (docs/kernel-abi.md sections 3.3 and 7): a check
// fails only when the kernel would refuse the load (or klp load would), and
// warns when the load would succeed but something deserves attention (a
// taint, a patch that only applies when its target module loads, a probe
// that stops firing). A file the caller cannot read (not root, debugfs not
// mounted) makes its check skip with a reason saying what to do, never an
// error.
//
// Typical use:
//
//	rep, err := preflight.Run(ctx, preflight.Inputs{SysRoot: "/sys", ProcRoot: "/proc", Module: mod})
//	if err != nil { ... } // a bad root only
//	if rep.Result() == preflight.Fail { ... }
package preflight
