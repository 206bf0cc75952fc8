// Package livepatch reads the kernel's live patching state from sysfs and
// procfs: the patches under /sys/kernel/livepatch, their objects and
// functions, the transition in progress, and the per-task patch_state files
// that tell which tasks still block it.
//
// Every path goes through the roots given to [NewFS], so the same code reads
// the running kernel, a test tree, or a snapshot copied from another machine.
// Attributes that only some kernels have (signal, force, replace,
// stack_order, patched) are pointers or flags that say "absent" rather than
// errors; features are detected by the presence of files, never by parsing
// the kernel version. The SLE 12 kGraft interface (/sys/kernel/kgraft) is
// read too, where present.
//
// The ABI is described in the kernel's
// Documentation/ABI/testing/sysfs-kernel-livepatch and
// Documentation/livepatch/livepatch.rst.
package livepatch
