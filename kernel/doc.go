// Package kernel is the one rooted handle that says which kernel klp reads
// and acts on.
//
// A [Handle] reads: the sysfs, procfs, /dev and /boot roots of the running
// kernel, of a tree copied from another machine, of a snapshot archive, or
// of a test double. Every package that reads the kernel (livepatch, kmod,
// preflight) takes one, so they agree on the roots, on the kernel's release
// (read once), on how files are opened (regular files only: a FIFO or a
// device where an attribute should be never blocks or tricks a read), and on
// the kernel's name rule ([ModuleName]: '-' and '_' are the same in a module
// name, and a patch name is a module name).
//
// A [Live] handle adds what changes the kernel: attribute writes, the module
// syscalls and signals. [OpenLive] makes one only for the kernel's own sysfs
// and procfs mounts, and [Simulate] only for a test double whose seams take
// every action, so that "read a copy, act on the host" cannot happen: code
// that holds a plain Handle has no method that acts.
//
// The sentinel errors are declared here once and re-exported by the packages
// whose callers test for them, so errors.Is agrees everywhere.
//
//	live, err := kernel.OpenLive(kernel.Roots{})  // the running kernel
//	snap, err := kernel.Open(kernel.Roots{Sys: "copy/sys", Proc: "copy/proc"})
package kernel
