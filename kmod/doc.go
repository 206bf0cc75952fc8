// Package kmod loads and unloads kernel modules and reads their state.
//
// It makes finit_module(2), init_module(2) and delete_module(2) through a
// kernel.Live handle (the [Syscalls] seam), translates their errnos into sentinel errors whose doc
// comments record what the kernel means by them (for a livepatch module,
// EBUSY means "another transition is in progress", not "busy device"),
// captures the kernel log around a load so that a refusal can be explained
// ([LoadError]), and reads /proc/modules and
// /sys/module/<m>/{refcnt,taint,initstate,holders,parameters}.
//
// Every kernel path goes through the kernel.Handle given to [New]; nothing
// here reads a global. Reading ([FS]) works on any handle; loading and
// unloading ([Loader]) only on the live handle of the running kernel, so a
// copied tree can never be acted on. Tests use internal/fakekernel, whose
// live handle takes every syscall and attribute write the way the kernel
// behaves.
//
// Typical use, as klp load does it:
//
//	live, err := kernel.OpenLive(kernel.Roots{})
//	...
//	fs := kmod.NewLoader(live, kmod.Options{})
//	res, err := fs.Load("/var/lib/klp/livepatch_fix.ko", "")
//	var le *kmod.LoadError
//	switch {
//	case errors.Is(err, kmod.ErrBusy):
//		// another livepatch transition is running: wait and retry
//	case errors.As(err, &le):
//		fmt.Println(le.KernelMessages()) // e.g. "livepatch: symbol 'x' not found in symbol table"
//	}
//
// and to remove a disabled patch module:
//
//	if err := fs.WaitRefcnt(ctx, "livepatch_fix", 0); err != nil { ... }
//	err = fs.Unload("livepatch_fix", 0)
package kmod
