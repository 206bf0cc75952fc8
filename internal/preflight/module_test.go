package preflight

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/kmod"
	"github.com/klp-project/klp/livepatch"
	"github.com/klp-project/klp/modinfo"
)

// livepatchMod is a livepatch module replacing functions of vmlinux, or of
// another object when spelt "object/function".
func livepatchMod(name string, replace *bool, funcs ...string) *modinfo.Module {
	t := &modinfo.Targets{Functions: []modinfo.Target{}, Replace: replace}
	for _, f := range funcs {
		t.Functions = append(t.Functions, target(f))
	}
	return &modinfo.Module{Name: name, Livepatch: true, Targets: t}
}

// target is one replaced function, "function" in vmlinux or
// "object/function".
func target(f string) modinfo.Target {
	i := strings.LastIndexByte(f, '/')
	if i < 0 {
		return modinfo.Target{Object: "vmlinux", Function: f}
	}
	return modinfo.Target{Object: f[:i], Function: f[i+1:]}
}

// undeterminedMod is a livepatch module whose functions klp could not
// find.
func undeterminedMod() *modinfo.Module {
	m := livepatchMod("p", ptr(true))
	m.Targets.Undetermined = "module has no .symtab"
	return m
}

func TestLivepatchModuleFacts(t *testing.T) {
	two := livepatchMod("p", nil, "cmdline_proc_show", "klp_target/klp_target_value")
	three := livepatchMod("p", nil, "cmdline_proc_show")
	three.Targets.Objects = []modinfo.TargetObject{{Name: "vmlinux"}, {Name: "ext4"}}
	three.Targets.Symbols = []modinfo.KlpSymbol{{Object: "xfs", Name: "helper"}, {Object: "ext4", Name: "other"}}
	partial := livepatchMod("p", nil, "cmdline_proc_show")
	partial.Targets.Undetermined = "some relocations could not be read"
	testCheck(t, livepatchModule, []factCase{
		{"no name", facts{module: &modinfo.Module{Livepatch: true}},
			Check{Status: Fail, Reason: "the file names no module (no name in .gnu.linkonce.this_module or .modinfo): the kernel cannot load it", Fix: "rebuild the module with kbuild"}},
		{"not a livepatch", facts{module: &modinfo.Module{Name: "ext4"}},
			Check{Status: Fail, Reason: "ext4 is not a livepatch module (its .modinfo has no livepatch tag): it would patch nothing, and klp load refuses it",
				Fix: "give the live patch module (built with MODULE_INFO(livepatch, \"Y\"))"}},
		{"no targets", facts{module: &modinfo.Module{Name: "p", Livepatch: true}},
			Check{Status: Pass, Reason: "p is a livepatch module; the functions it replaces cannot be determined from the file"}},
		{"undetermined", facts{module: undeterminedMod()},
			Check{Status: Pass, Reason: "p is a livepatch module; the functions it replaces cannot be determined from the file", Details: []string{"undetermined: module has no .symtab"}}},
		{"one function", facts{module: livepatchMod("p", nil, "cmdline_proc_show")},
			Check{Status: Pass, Reason: "p is a livepatch module replacing 1 function in 1 object"}},
		{"two objects", facts{module: two}, Check{Status: Pass, Reason: "p is a livepatch module replacing 2 functions in 2 objects"}},
		{"objects from every list", facts{module: three}, Check{Status: Pass, Reason: "p is a livepatch module replacing 1 function in 3 objects"}},
		{"partly determined", facts{module: partial}, Check{Status: Pass, Reason: "p is a livepatch module replacing 1 function in 1 object"}},
		{"no functions", facts{module: livepatchMod("p", nil)}, Check{Status: Pass, Reason: "p is a livepatch module replacing 0 functions in 0 objects"}},
	})
}

func TestVermagicFacts(t *testing.T) {
	const osrelease = "/proc/sys/kernel/osrelease"
	const vm = rel61 + " SMP preempt mod_unload modversions "
	mod := func(vermagic, machine string) *modinfo.Module {
		return &modinfo.Module{Name: "p", Vermagic: vermagic, Machine: machine}
	}
	cfg := func(opts ...string) reading[*kconfig] {
		v := map[string]string{}
		for _, o := range opts {
			v[o] = "y"
		}
		return reading[*kconfig]{v: &kconfig{values: v, source: bootConfig}}
	}
	pass := Check{Status: Pass, Reason: "built for " + rel61 + ", the running kernel", Details: []string{"vermagic: " + rel61 + " SMP preempt mod_unload modversions"}}
	noVermagic := Check{Status: Fail, Reason: "the module has no vermagic: the kernel refuses it (ENOEXEC) unless loading is forced",
		Fix: "rebuild the module with kbuild against the headers of " + rel61}
	testCheck(t, vermagic, []factCase{
		{"release unknown", facts{module: mod(vm, "x86_64"), release: bad[string](osrelease, fmt.Errorf("read kernel release: %w", fs.ErrNotExist))},
			Check{Status: Skip, Reason: "the running kernel's release is unknown: " + osrelease + " does not exist", Fix: "check the --procfs tree"}},
		{"release unreadable", facts{module: mod(vm, "x86_64"), release: bad[string](osrelease, fs.ErrPermission)},
			Check{Status: Skip, Reason: "the running kernel's release is unknown: " + osrelease + " is not readable (permission denied)", Fix: "check the --procfs tree"}},
		{"no vermagic", facts{module: mod("", "x86_64"), release: val(osrelease, rel61)}, noVermagic},
		{"blank vermagic", facts{module: mod(" \n", "x86_64"), release: val(osrelease, rel61)}, noVermagic},
		{"other release", facts{module: mod("6.1.0-57-cloud-amd64 SMP", "x86_64"), release: val(osrelease, rel61)},
			Check{Status: Fail, Reason: "built for 6.1.0-57-cloud-amd64, but the running kernel is " + rel61 + ": a patch is only valid for the build it was made from, and klp load refuses it",
				Fix: "use the build of this patch for " + rel61}},
		{"other machine", facts{module: mod(vm, "x86_64"), release: val(osrelease, rel61), config: cfg("CONFIG_ARM64")},
			Check{Status: Fail, Reason: "the module is for x86_64, the kernel for aarch64: the kernel refuses it (ENOEXEC)", Fix: "use the build of this patch for aarch64"}},
		{"same machine", facts{module: mod(vm, "x86_64"), release: val(osrelease, rel61), config: cfg("CONFIG_X86_64")}, pass},
		{"machine of the kernel unknown", facts{module: mod(vm, "x86_64"), release: val(osrelease, rel61), config: cfg("CONFIG_X86_32")}, pass},
		{"machine of the module unknown", facts{module: mod(vm, ""), release: val(osrelease, rel61), config: cfg("CONFIG_ARM64")}, pass},
		{"no config", facts{module: mod(vm, "x86_64"), release: val(osrelease, rel61), config: bad[*kconfig]("", notFound("neither "+bootConfig+" nor /proc/config.gz exists"))}, pass},
	})
}

func TestAlreadyLoadedFacts(t *testing.T) {
	yes, no := ptr(true), ptr(false)
	mods := func(ms ...kmod.Module) reading[kmod.Modules] { return reading[kmod.Modules]{path: procModPth, v: ms} }
	loaded := func(name string, refcnt int) kmod.Module {
		return kmod.Module{Name: name, Refcnt: refcnt, State: kmod.StateLive, Taints: "OEK"}
	}
	withPatch := func(p livepatch.Patch, build ...buildID) facts {
		return facts{module: &modinfo.Module{Name: "p"}, patches: patches(p), modules: mods(loaded("p", 1)), build: build}
	}
	srcversion := func(want, have string) buildID {
		return buildID{key: "srcversion", want: want, have: val("/sys/module/p/srcversion", have)}
	}
	const again = "nothing to do; to load the file again, klp unload p first"
	enabled := Check{Status: Warn, Reason: "patch p is already loaded and enabled: loading it again does nothing (klp load says so; insmod fails with EEXIST)", Fix: again}
	sameSrc := enabled
	sameSrc.Details = []string{"same srcversion ABC"}
	otherBuild := func(detail string) Check {
		return Check{Status: Fail,
			Reason:  "another build of patch p is loaded (" + detail + "): loading this one would leave the old code in place (klp load reports it as loaded; insmod fails with EEXIST)",
			Fix:     "unload the old build first (klp unload p), or build the new patch as an atomic replace patch with another name",
			Details: []string{detail}}
	}
	holding := Check{Status: Fail,
		Reason: "module p is loaded without a live patch and holds 1 reference(s): klp load refuses, and the kernel refuses a second module of that name (EEXIST)",
		Fix:    "find what holds it (a forced patch keeps its reference until reboot); remove it with rmmod p if it can be"}
	notSupported := bad[[]livepatch.Patch](lpDir, fmt.Errorf("%w: %s does not exist", livepatch.ErrNotSupported, lpDir))
	noModules := bad[kmod.Modules](procModPth, fmt.Errorf("read %s: %w", procModPth, fs.ErrNotExist))
	nothing := Check{Status: Pass, Reason: "no patch or module named p is loaded"}
	testCheck(t, alreadyLoaded, []factCase{
		{"no name", facts{module: &modinfo.Module{}},
			Check{Status: Skip, Reason: "the module's name is unknown", Fix: "rebuild the module with kbuild"}},
		{"nothing readable", facts{module: &modinfo.Module{Name: "p"},
			patches: bad[[]livepatch.Patch](lpDir, fmt.Errorf("list patches: %w", fs.ErrPermission)), modules: bad[kmod.Modules](procModPth, errIO)},
			Check{Status: Skip, Reason: "cannot read the loaded patches or modules: list patches: permission denied", Fix: "run as root"}},
		{"nothing loaded", facts{module: &modinfo.Module{Name: "p"}, patches: patches(), modules: mods()}, nothing},
		{"no live patching, no modules", facts{module: &modinfo.Module{Name: "p"}, patches: notSupported, modules: noModules}, nothing},
		{"others loaded", facts{module: &modinfo.Module{Name: "p"}, patches: patches(patch("q", true, no)), modules: mods(loaded("q", 1))}, nothing},
		{"enabled", withPatch(patch("p", true, no)), enabled},
		{"enabled before 4.12", withPatch(patch("p", true, nil)), enabled},
		{"patching", withPatch(patch("p", true, yes)),
			Check{Status: Warn, Reason: "patch p is already loaded and still patching: klp load waits for its transition", Fix: "klp wait p"}},
		{"unpatching", withPatch(patch("p", false, yes)),
			Check{Status: Warn, Reason: "patch p is loaded and unpatching: klp load reverses that (enables it again)", Fix: "let the disable finish (klp wait p) if that was the intent"}},
		{"disabled", withPatch(patch("p", false, no)),
			Check{Status: Warn, Reason: "patch p is loaded but disabled (a kernel before 5.1 keeps it): klp load enables it again", Fix: again}},
		{"same build", withPatch(patch("p", true, no), srcversion("ABC", "ABC")), sameSrc},
		{"other build", withPatch(patch("p", true, no), srcversion("NEW", "OLD")), otherBuild("srcversion OLD is loaded, the file has NEW")},
		{"other version, srcversion unreadable", withPatch(patch("p", true, no),
			buildID{key: "srcversion", want: "NEW", have: bad[string]("/sys/module/p/srcversion", fs.ErrNotExist)},
			buildID{key: "version", want: "2", have: val("/sys/module/p/version", "1")}),
			otherBuild("version 1 is loaded, the file has 2")},
		{"build unknown", withPatch(patch("p", true, no), srcversion("ABC", "")), enabled},
		{"patches unreadable, module holds references", facts{module: &modinfo.Module{Name: "p"}, patches: bad[[]livepatch.Patch](lpDir, errIO), modules: mods(loaded("p", 1))}, holding},
		{"module holds references", facts{module: &modinfo.Module{Name: "p"}, patches: patches(), modules: mods(loaded("p", 1))}, holding},
		{"module without references", facts{module: &modinfo.Module{Name: "p"}, patches: notSupported, modules: mods(loaded("p", 0)), build: []buildID{srcversion("ABC", "ABC")}},
			Check{Status: Warn,
				Reason:  "module p is loaded without a live patch (disabled, or replaced by an atomic replace patch): klp load removes it first; insmod would fail with EEXIST",
				Fix:     "nothing to do for klp load; otherwise rmmod p",
				Details: []string{"same srcversion ABC"}}},
		{"module spelt with a dash", facts{module: &modinfo.Module{Name: "my-fix"}, patches: patches(), modules: mods(loaded("my_fix", 0))},
			Check{Status: Warn,
				Reason: "module my-fix is loaded without a live patch (disabled, or replaced by an atomic replace patch): klp load removes it first; insmod would fail with EEXIST",
				Fix:    "nothing to do for klp load; otherwise rmmod my-fix"}},
		{"modules unreadable", facts{module: &modinfo.Module{Name: "p"}, patches: patches(), modules: bad[kmod.Modules](procModPth, fs.ErrPermission), build: []buildID{srcversion("A", "B")}},
			Check{Status: Skip, Reason: procModPth + " is not readable (permission denied)", Fix: "run as root", Details: []string{"srcversion B is loaded, the file has A"}}},
	})
}

func TestReplaceFacts(t *testing.T) {
	yes, no := ptr(true), ptr(false)
	note := "klp_patch.replace is false in the file; a module can still set it in its init function (the kernel selftests take it from a parameter)"
	on := func(m *modinfo.Module, ps ...livepatch.Patch) facts { return facts{module: m, patches: patches(ps...)} }
	replacing := livepatchMod("p", yes, "cmdline_proc_show")
	stacking := livepatchMod("p", no, "cmdline_proc_show")
	unknown := livepatchMod("p", nil, "cmdline_proc_show")
	var six []livepatch.Patch
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		six = append(six, patch(n, true, nil, "meminfo_proc_show"))
	}
	testCheck(t, replace, []factCase{
		{"not a livepatch", facts{module: &modinfo.Module{Name: "ext4"}},
			Check{Status: Skip, Reason: "not a livepatch module", Fix: "give the live patch module"}},
		{"no live patching", facts{module: replacing, patches: bad[[]livepatch.Patch](lpDir, livepatch.ErrNotSupported)},
			Check{Status: Skip, Reason: "no live patching support (see above)", Fix: "boot a kernel built with CONFIG_LIVEPATCH=y"}},
		{"patches unreadable", facts{module: replacing, patches: bad[[]livepatch.Patch](lpDir, errIO)},
			Check{Status: Skip, Reason: "cannot read the loaded patches: input/output error", Fix: "check that the file is readable"}},
		{"unknown, alone", on(unknown, patch("p", true, nil, "cmdline_proc_show")),
			Check{Status: Warn, Reason: "the file has no static struct klp_patch, so klp cannot tell whether this is an atomic replace patch", Fix: "check the patch's source or documentation"}},
		{"unknown, with others", on(unknown, patch("p1", true, nil), patch("p2", true, nil)),
			Check{Status: Warn, Reason: "the file has no static struct klp_patch, so klp cannot tell whether this is an atomic replace patch; if it is, it replaces p1, p2", Fix: "check the patch's source or documentation"}},
		{"replace, alone", on(replacing), Check{Status: Pass, Reason: "atomic replace patch; no other patch is loaded, so it replaces nothing"}},
		{"replace, itself loaded", on(replacing, patch("p", true, nil, "version_proc_show")),
			Check{Status: Pass, Reason: "atomic replace patch; no other patch is loaded, so it replaces nothing"}},
		{"replace, undetermined", on(undeterminedMod(), patch("p1", true, nil, "cmdline_proc_show")),
			Check{Status: Warn, Reason: "atomic replace patch: it replaces p1, and klp cannot tell which of their functions it still patches",
				Fix: "make sure this cumulative patch contains every fix of the patches it replaces"}},
		{"replace, covers all", on(replacing, patch("p1", true, nil, "cmdline_proc_show")),
			Check{Status: Pass, Reason: "atomic replace patch: it replaces p1 and patches every function they patch"}},
		{"replace, drops one", on(replacing, patch("p1", true, nil, "cmdline_proc_show"), patch("p2", true, nil, "meminfo_proc_show")),
			Check{Status: Warn, Reason: "atomic replace patch: it replaces p1, p2, and 1 function they patch will go back to the original code",
				Fix:     "make sure this patch is meant to drop those fixes (a downgrade does); otherwise load the complete cumulative patch",
				Details: []string{"vmlinux/meminfo_proc_show,1 (from p2)"}}},
		{"replace, drops several", on(replacing, six...),
			Check{Status: Warn, Reason: "atomic replace patch: it replaces a, b, c, d, e and 1 more, and 1 function they patch will go back to the original code",
				Fix:     "make sure this patch is meant to drop those fixes (a downgrade does); otherwise load the complete cumulative patch",
				Details: []string{"vmlinux/meminfo_proc_show,1 (from a, b, c, d, e, f)"}}},
		{"replace, drops two in order", on(replacing, patch("p1", true, nil, "version_proc_show", "meminfo_proc_show")),
			Check{Status: Warn, Reason: "atomic replace patch: it replaces p1, and 2 functions they patch will go back to the original code",
				Fix:     "make sure this patch is meant to drop those fixes (a downgrade does); otherwise load the complete cumulative patch",
				Details: []string{"vmlinux/meminfo_proc_show,1 (from p1)", "vmlinux/version_proc_show,1 (from p1)"}}},
		{"stacks, alone", on(stacking),
			Check{Status: Pass, Reason: "not an atomic replace patch; no other patch is loaded", Details: []string{note}}},
		{"stacks, apart", on(stacking, patch("p1", true, nil, "meminfo_proc_show")),
			Check{Status: Pass, Reason: "not an atomic replace patch: it adds to p1", Details: []string{note}}},
		{"stacks, shared", on(stacking, patch("p1", true, nil, "cmdline_proc_show"), patch("p2", true, nil, "cmdline_proc_show")),
			Check{Status: Pass, Reason: "not an atomic replace patch: it adds to p1, p2; for 1 function they patch too, this newest patch takes precedence",
				Details: []string{"vmlinux/cmdline_proc_show,1 (also patched by p1, p2)", note}}},
	})
}

func TestTargetModulesFacts(t *testing.T) {
	on := func(states map[string]objectState, funcs ...string) facts {
		return facts{module: livepatchMod("p", nil, funcs...), objects: states}
	}
	const fix = "check the object names against the modules of this kernel"
	invalid := objectState{err: fmt.Errorf("%w %q: a module name cannot contain %q", kernel.ErrInvalidName, "../etc", '/')}
	withObjects := livepatchMod("p", nil, "cmdline_proc_show")
	withObjects.Targets.Objects = []modinfo.TargetObject{{Name: "vmlinux"}, {Name: "ext4"}}
	withObjects.Targets.Symbols = []modinfo.KlpSymbol{{Object: "xfs", Name: "helper"}}
	testCheck(t, targetModules, []factCase{
		{"not a livepatch", facts{module: &modinfo.Module{Name: "ext4"}},
			Check{Status: Skip, Reason: "not a livepatch module", Fix: "give the live patch module"}},
		{"vmlinux only", on(nil, "cmdline_proc_show"), Check{Status: Pass, Reason: "the patch applies to vmlinux only"}},
		{"no objects", on(nil), Check{Status: Pass, Reason: "the patch applies to vmlinux only"}},
		{"loaded", on(map[string]objectState{"klp_target": {state: "live"}}, "klp_target/f"),
			Check{Status: Pass, Reason: "loaded: klp_target", Details: []string{"klp_target: loaded; the patch applies to it at once"}}},
		{"not loaded", on(map[string]objectState{"klp_target": {}}, "klp_target/f"),
			Check{Status: Pass, Reason: "not loaded (patched when they load): klp_target", Details: []string{"klp_target: not loaded; the patch applies to it when it loads"}}},
		{"state unknown to the facts", on(nil, "klp_target/f"),
			Check{Status: Pass, Reason: "not loaded (patched when they load): klp_target", Details: []string{"klp_target: not loaded; the patch applies to it when it loads"}}},
		{"built in", on(map[string]objectState{"klp_target": {state: "builtin"}}, "klp_target/f"),
			Check{Status: Warn, Reason: "cannot be patched now: klp_target", Fix: fix,
				Details: []string{"klp_target: built into the kernel image, not a loadable module: its functions are never patched (patch them as part of vmlinux)"}}},
		{"going", on(map[string]objectState{"m": {state: "going"}}, "m/f"),
			Check{Status: Warn, Reason: "cannot be patched now: m", Fix: fix, Details: []string{"m: going (being loaded or removed right now)"}}},
		{"coming", on(map[string]objectState{"m": {state: "coming"}}, "m/f"),
			Check{Status: Warn, Reason: "cannot be patched now: m", Fix: fix, Details: []string{"m: coming (being loaded or removed right now)"}}},
		{"invalid name", on(map[string]objectState{"../etc": invalid}, "../etc/f"),
			Check{Status: Warn, Reason: "cannot be patched now: ../etc", Fix: fix, Details: []string{`"../etc" cannot be a module name, so this object never loads`}}},
		{"unreadable", on(map[string]objectState{"m": {err: fmt.Errorf("read /sys/module/m/initstate: %w", fs.ErrPermission)}}, "m/f"),
			Check{Status: Warn, Reason: "cannot be patched now: m", Fix: fix, Details: []string{"m: read /sys/module/m/initstate: permission denied"}}},
		{"every kind", on(map[string]objectState{"a": {state: "live"}, "b": {}, "c": {state: "builtin"}, "d": {state: "live"}}, "a/f", "b/f", "c/f", "d/f", "a/g"),
			Check{Status: Warn, Reason: "loaded: a, d; not loaded (patched when they load): b; cannot be patched now: c", Fix: fix,
				Details: []string{"a: loaded; the patch applies to it at once", "b: not loaded; the patch applies to it when it loads",
					"c: built into the kernel image, not a loadable module: its functions are never patched (patch them as part of vmlinux)",
					"d: loaded; the patch applies to it at once"}}},
		{"objects from every list", facts{module: withObjects, objects: map[string]objectState{"ext4": {state: "live"}, "xfs": {}}},
			Check{Status: Pass, Reason: "loaded: ext4; not loaded (patched when they load): xfs",
				Details: []string{"ext4: loaded; the patch applies to it at once", "xfs: not loaded; the patch applies to it when it loads"}}},
	})
}
