// Package admin holds klp's use cases: what each command reads from the
// kernel or does to it, independent of flags and output formats.
//
// The read side is [System], built on one kernel.Handle: status, the loaded
// patches, the blocking tasks with the stall explanation, the patch list
// with typed states, the active patch a downgrade replaces. Whether the
// kernel speaks the upstream live patching interface or SLE 12's kGraft is
// decided once, when the System is made.
//
// The write side is [Changer], built on a kernel.Live handle, so it exists
// only for the running kernel (or a test double): load (its preflight checks
// run inside the lock, on the module parsed once), wait with its stall
// policies, disable, enable, unload, force, signal, poke, install and
// uninstall, and the boot's load of every installed patch. Every change runs
// as root, under klp's lock, and leaves one audit record per patch.
//
// Commands (package cli) parse flags, call one use case and print its
// result; package report turns results into the JSON documents. [ExitCode]
// is the one mapping from an error to the process's exit status.
package admin
