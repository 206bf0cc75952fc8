package preflight

import (
	"io/fs"
	"testing"

	"github.com/klp-project/klp/internal/kallsyms"
	"github.com/klp-project/klp/modinfo"
)

// scanned is a kallsyms scan that saw each "object/name" (or "name" in
// vmlinux) the number of times given, among other symbols of vmlinux and
// of the objects listed in loaded.
func scanned(counts map[string]int, loaded ...string) reading[*kallsyms.Result] {
	res := &kallsyms.Result{Symbols: map[kallsyms.Key]*kallsyms.Entry{}, Objects: map[string]int{"vmlinux": 1000}}
	for _, o := range loaded {
		res.Objects[o] += 10
	}
	for s, n := range counts {
		t := target(s)
		res.Symbols[kallsyms.Key{Object: t.Object, Name: t.Function}] = &kallsyms.Entry{Count: n}
	}
	return reading[*kallsyms.Result]{path: "/proc/kallsyms", v: res}
}

func TestSymbolsFacts(t *testing.T) {
	// p replaces cmdline_proc_show (unique) and the second
	// version_proc_show, and refers to the second klp_static_helper.
	p := livepatchMod("p", nil, "cmdline_proc_show", "version_proc_show")
	p.Targets.Functions[1].Sympos = 2
	p.Targets.Symbols = []modinfo.KlpSymbol{{Object: "vmlinux", Name: "klp_static_helper", Sympos: 2}}
	all := map[string]int{"cmdline_proc_show": 1, "version_proc_show": 2, "klp_static_helper": 2}
	with := func(counts map[string]int, edit func(map[string]int)) map[string]int {
		c := map[string]int{}
		for k, v := range counts {
			c[k] = v
		}
		edit(c)
		return c
	}
	found := []string{
		"function cmdline_proc_show,1 in vmlinux: found (1 occurrence)",
		"function version_proc_show,2 in vmlinux: found (2 occurrences)",
		"klp symbol klp_static_helper,2 in vmlinux: found (2 occurrences)",
	}
	const otherBuild = "use the build of this patch made for this kernel: its symbols are not this kernel's"

	// m replaces a function of vmlinux and one of klp_target.
	m := livepatchMod("m", nil, "meminfo_proc_show", "klp_target/klp_target_value")
	mCounts := map[string]int{"meminfo_proc_show": 1, "klp_target/klp_target_value": 1}
	notLoaded := Check{Status: Warn,
		Reason: "1 of 2 symbols are in modules that are not loaded and cannot be checked until they load: function klp_target_value,1 in klp_target",
		Fix:    "load the target modules first to check them now, or load the patch and watch the target modules load",
		Details: []string{"function meminfo_proc_show,1 in vmlinux: found (1 occurrence)",
			"function klp_target_value,1 in klp_target: module klp_target is not loaded; the kernel resolves it when the module loads, and refuses that module if it cannot"}}
	mResolved := Check{Status: Pass, Reason: "all 2 symbols resolve as the kernel will look them up",
		Details: []string{"function meminfo_proc_show,1 in vmlinux: found (1 occurrence)", "function klp_target_value,1 in klp_target: found (1 occurrence)"}}

	// u could not be read for its functions, but refers to a symbol.
	u := undeterminedMod()
	u.Targets.Symbols = []modinfo.KlpSymbol{{Object: "vmlinux", Name: "klp_static_helper", Sympos: 1}}

	testCheck(t, symbols, []factCase{
		{"not a livepatch", facts{module: &modinfo.Module{Name: "ext4"}},
			Check{Status: Skip, Reason: "not a livepatch module", Fix: "give the live patch module"}},
		{"undetermined, no symbols", facts{module: undeterminedMod()},
			Check{Status: Warn, Reason: "the functions the patch replaces cannot be determined from the file, so none was checked",
				Fix: "check the patch's source", Details: []string{"undetermined: module has no .symtab"}}},
		{"no symbols", facts{module: livepatchMod("p", nil)}, Check{Status: Pass, Reason: "the patch names no symbols"}},
		{"kallsyms missing", facts{module: p, kallsyms: bad[*kallsyms.Result]("/proc/kallsyms", fs.ErrNotExist)},
			Check{Status: Skip, Reason: "/proc/kallsyms does not exist", Fix: "mount -t proc proc /proc, or point --procfs at a procfs tree"}},
		{"kallsyms unreadable", facts{module: p, kallsyms: bad[*kallsyms.Result]("/proc/kallsyms", fs.ErrPermission)},
			Check{Status: Skip, Reason: "/proc/kallsyms is not readable (permission denied)", Fix: "run as root"}},
		{"no vmlinux symbols", facts{module: p, kallsyms: reading[*kallsyms.Result]{path: "/proc/kallsyms", v: &kallsyms.Result{Objects: map[string]int{"ext4": 3}}}},
			Check{Status: Skip, Reason: "/proc/kallsyms lists no vmlinux symbols", Fix: "check the --procfs tree (and that the kernel has CONFIG_KALLSYMS)"}},
		{"all resolve", facts{module: p, kallsyms: scanned(all)},
			Check{Status: Pass, Reason: "all 3 symbols resolve as the kernel will look them up", Details: found}},
		{"one symbol resolves", facts{module: livepatchMod("p", nil, "cmdline_proc_show"), kallsyms: scanned(all)},
			Check{Status: Pass, Reason: "the symbol resolves as the kernel will look it up", Details: found[:1]}},
		{"not found", facts{module: p, kallsyms: scanned(with(all, func(c map[string]int) { delete(c, "cmdline_proc_show") }))},
			Check{Status: Fail, Reason: "1 of 3 symbols cannot be resolved, so the kernel refuses the patch (EINVAL): function cmdline_proc_show,1 in vmlinux",
				Fix: otherBuild, Details: append([]string{"function cmdline_proc_show,1 in vmlinux: symbol 'cmdline_proc_show' not found in symbol table"}, found[1:]...)}},
		{"ambiguous", facts{module: p, kallsyms: scanned(with(all, func(c map[string]int) { c["cmdline_proc_show"] = 2 }))},
			Check{Status: Fail, Reason: "1 of 3 symbols cannot be resolved, so the kernel refuses the patch (EINVAL): function cmdline_proc_show,1 in vmlinux",
				Fix:     "rebuild the patch with old_sympos (klp_func) or the ,sympos of .klp.sym set to the intended copy's position in /proc/kallsyms",
				Details: append([]string{"function cmdline_proc_show,1 in vmlinux: unresolvable ambiguity for symbol 'cmdline_proc_show' in object 'vmlinux'"}, found[1:]...)}},
		{"sympos past the end", facts{module: p, kallsyms: scanned(with(all, func(c map[string]int) { c["version_proc_show"] = 1; c["klp_static_helper"] = 1 }))},
			Check{Status: Fail, Reason: "2 of 3 symbols cannot be resolved, so the kernel refuses the patch (EINVAL): function version_proc_show,2 in vmlinux, klp symbol klp_static_helper,2 in vmlinux",
				Fix: otherBuild, Details: []string{found[0],
					"function version_proc_show,2 in vmlinux: symbol position 2 for symbol 'version_proc_show' in object 'vmlinux' not found",
					"klp symbol klp_static_helper,2 in vmlinux: symbol position 2 for symbol 'klp_static_helper' in object 'vmlinux' not found"}}},
		{"the first failure picks the fix", facts{module: p, kallsyms: scanned(with(all, func(c map[string]int) { c["version_proc_show"] = 0; c["cmdline_proc_show"] = 3 }))},
			Check{Status: Fail, Reason: "2 of 3 symbols cannot be resolved, so the kernel refuses the patch (EINVAL): function cmdline_proc_show,1 in vmlinux, function version_proc_show,2 in vmlinux",
				Fix: "rebuild the patch with old_sympos (klp_func) or the ,sympos of .klp.sym set to the intended copy's position in /proc/kallsyms",
				Details: []string{"function cmdline_proc_show,1 in vmlinux: unresolvable ambiguity for symbol 'cmdline_proc_show' in object 'vmlinux'",
					"function version_proc_show,2 in vmlinux: symbol 'version_proc_show' not found in symbol table", found[2]}}},
		{"module not loaded", facts{module: m, kallsyms: scanned(mCounts), objects: map[string]objectState{"klp_target": {}}}, notLoaded},
		{"module going", facts{module: m, kallsyms: scanned(mCounts), objects: map[string]objectState{"klp_target": {state: "going"}}}, notLoaded},
		{"module state unreadable", facts{module: m, kallsyms: scanned(mCounts), objects: map[string]objectState{"klp_target": {err: errIO}}},
			Check{Status: Warn,
				Reason:  "1 of 2 symbols are in modules that are not loaded and cannot be checked until they load: function klp_target_value,1 in klp_target",
				Fix:     "load the target modules first to check them now, or load the patch and watch the target modules load",
				Details: []string{"function meminfo_proc_show,1 in vmlinux: found (1 occurrence)", "function klp_target_value,1 in klp_target: input/output error"}}},
		{"module loaded", facts{module: m, kallsyms: scanned(mCounts, "klp_target"), objects: map[string]objectState{"klp_target": {state: "live"}}}, mResolved},
		{"module coming", facts{module: m, kallsyms: scanned(mCounts), objects: map[string]objectState{"klp_target": {state: "coming"}}}, mResolved},
		{"module in kallsyms only", facts{module: m, kallsyms: scanned(mCounts, "klp_target")}, mResolved},
		{"module loaded without the symbol", facts{module: m, kallsyms: scanned(map[string]int{"meminfo_proc_show": 1}, "klp_target")},
			Check{Status: Fail, Reason: "1 of 2 symbols cannot be resolved, so the kernel refuses the patch (EINVAL): function klp_target_value,1 in klp_target", Fix: otherBuild,
				Details: []string{"function meminfo_proc_show,1 in vmlinux: found (1 occurrence)", "function klp_target_value,1 in klp_target: symbol 'klp_target_value' not found in symbol table"}}},
		{"undetermined, symbol resolves", facts{module: u, kallsyms: scanned(map[string]int{"klp_static_helper": 1})},
			Check{Status: Warn, Reason: "all 1 named symbols resolve, but the replaced functions could not all be determined from the file", Fix: "check the patch's source",
				Details: []string{"klp symbol klp_static_helper,1 in vmlinux: found (1 occurrence)", "the replaced functions could not be determined from the file: module has no .symtab"}}},
	})
}
