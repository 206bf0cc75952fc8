// Package fakekernel is a test double for the kernel's module and
// livepatch interfaces. It owns a temporary sysfs/procfs/dev tree and
// reacts to module syscalls and attribute writes the way Linux does, so
// that klp's lifecycle verbs (load, wait, disable, enable, unload,
// replace, force, signal) can be unit-tested without root, a VM or ELF
// files.
//
// What it provides:
//
//   - [Kernel] implements the seams of a kernel.Live handle: the module
//     syscalls (finit_module, init_module, delete_module), the attribute
//     writer through which every sysfs/procfs write goes, and kill(2).
//     [Kernel.Live] is that handle (kernel.Simulate: every action goes to
//     the fake, none to the host), [Kernel.Handle] the read-only view, and
//     [Kernel.Loader] a kmod.Loader on it. Its specification, the contract
//     it shares with the real kernel, is docs/fakekernel.md.
//   - Read faults are injectable ([Kernel.InjectReadFault]): ENODEV while a
//     patch is freed, a task that vanishes mid-read, EACCES.
//   - Tests register module files with [Kernel.AddModule], describing
//     the module (name, parameters, dependencies, taints, failures) and,
//     for a livepatch, its struct klp_patch: objects, functions with
//     sympos, replace, klp_state. No ELF is written; the file carries an
//     identifier.
//   - The tree below [Kernel.Root]: sys/kernel/livepatch/<p>/{enabled,
//     transition,force,signal,replace,replace_set,stack_order,<obj>/{patched,
//     <fn,pos>/}}, sys/module/<m>/{refcnt,taint,initstate,coresize,
//     holders/,parameters/}, sys/module/compression, proc/modules,
//     proc/sys/kernel/{tainted,ftrace_enabled,modules_disabled},
//     proc/<pid>/[task/<tid>/]{patch_state,comm,cmdline,stat,stack}, and
//     dev/kmsg, a regular file of records in /dev/kmsg's format that
//     kmod.DevKmsg reads unchanged (seek to the end, read new records).
//     Files are replaced atomically (rename), so readers never see a
//     half-written attribute.
//   - A controllable scheduler. Transitions stay open until [Kernel.Tick]
//     (one run of the kernel's once-a-second retry work), unless
//     Options.SwitchOnStart makes them complete at once as on an idle
//     1-CPU machine. klp's waits run on the fake's own clock
//     ([Kernel.Clock], handed to klp by [Kernel.Live]), which ticks every
//     second of it and runs the events scheduled with [Kernel.After]: no
//     result depends on the machine's speed. Options.AutoTick also ticks
//     from a goroutine, on the machine's clock.
//     [Kernel.BlockTask] pins a task (optionally only while it "sleeps
//     in" given functions), [Kernel.HoldIdle] models an idle task that has
//     not switched, [Kernel.SwitchTask] moves one task.
//   - Kernel versions: [Features] presets select which attributes exist
//     and the pre-5.1 semantics (disabled patches stay and can be
//     re-enabled, stacking rules, global force). [ProposedReplaceSet] is
//     the proposed replace sets (no released kernel has them);
//     Features.SUSESupport adds SUSE's support facility
//     (sys/kernel/supported, proc/sys/kernel/unsupported, the NO_SUPPORT
//     taint on disable).
//
// Its specification, and the contract it shares with the real kernel, is
// docs/fakekernel.md: behaviour follows kernel/livepatch/{core,transition,
// state}.c and kernel/module/main.c, with the real kernel's log lines
// ("livepatch: enabling patch 'p'", ...). Where a real 6.1/6.12 kernel in
// the e2e suite disagrees, the real kernel wins and this package is fixed;
// docs/fakekernel.md lists what it does not model.
package fakekernel
