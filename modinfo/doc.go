// Package modinfo reads what a Linux kernel module file says about itself:
// its name, its .modinfo entries, its appended signature and, for a
// livepatch module, the objects and functions it patches. This is what
// `klp info` prints.
//
// The package deals only in the file, never in the running kernel: the same
// file gives the same [Module] on every machine, so it reads no /proc, /sys or
// uname. Whether vermagic matches, whether the target symbols exist (see
// internal/kallsyms) or whether the patch is loaded is for callers to decide
// (the spec/object split of docs/architecture.md).
//
// [Open] takes a path and [Parse] an [io.ReaderAt]; both accept plain, xz,
// zstd and gzip modules. The ELF is parsed with debug/elf, but only after its
// header and section header table have been checked against the file size,
// and under a recover, so that a hostile file can neither panic the caller
// nor make it allocate more than a small multiple of the file's size. Errors
// wrap [ErrNotELF], [ErrTruncated], [ErrWrongArch], [ErrNotModule],
// [ErrMalformed] or [ErrTooLarge].
//
// # Patch targets
//
// A hand-written livepatch module's targets are not in a dedicated section.
// [Targets] gathers them from these places (Documentation/livepatch/module-elf-format.rst
// and docs/kernel-notes.md):
//
//   - the static struct klp_func and klp_object arrays, found by the shape of
//     their relocations (an old_name string pointer next to a new_func code
//     pointer; an object's funcs pointer to such an entry), which needs no
//     config-dependent struct sizes;
//   - klp-build's section of struct klp_object_ext entries (__klp_objects in
//     Linux 6.19, .init.klp_objects later) and the struct klp_func_ext arrays
//     they point at, from which such a module's init code builds its
//     klp_patch; the layout is fixed, so a malformed section is reported as
//     such ([SourceKlpBuild]);
//   - kpatch-build's .kpatch.funcs section;
//   - the .klp.rela.<object>.<section> relocation sections;
//   - the .klp.sym.<object>.<symbol>,<sympos> symbols.
//
// When the replaced functions cannot be determined (no symbol table, an
// architecture whose relocations klp does not know, entries built at run
// time), [Targets.Undetermined] says why instead of guessing.
package modinfo
