package preflight

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/klp-project/klp/internal/kallsyms"
	"github.com/klp-project/klp/kmod"
	"github.com/klp-project/klp/livepatch"
	"github.com/klp-project/klp/modinfo"
)

// livepatchModule: a module without the livepatch modinfo tag is an
// ordinary module to the kernel, and klp load refuses it
// (lifecycle.ErrNotLivepatch).
func livepatchModule(f *facts) Check {
	m := f.module
	if m.Name == "" {
		return Check{Status: Fail,
			Reason: "the file names no module (no name in .gnu.linkonce.this_module or .modinfo): the kernel cannot load it",
			Fix:    "rebuild the module with kbuild"}
	}
	if !m.Livepatch {
		return Check{Status: Fail,
			Reason: m.Name + " is not a livepatch module (its .modinfo has no livepatch tag): it would patch nothing, and klp load refuses it",
			Fix:    "give the live patch module (built with MODULE_INFO(livepatch, \"Y\"))"}
	}
	t := m.Targets
	if t == nil || (len(t.Functions) == 0 && t.Undetermined != "") {
		c := Check{Status: Pass, Reason: m.Name + " is a livepatch module; the functions it replaces cannot be determined from the file"}
		if t != nil {
			c.Details = []string{"undetermined: " + t.Undetermined}
		}
		return c
	}
	return Check{Status: Pass, Reason: fmt.Sprintf("%s is a livepatch module replacing %s in %s", m.Name,
		plural(len(t.Functions), "function", "functions"), plural(len(targetObjects(t)), "object", "objects"))}
}

// targetObjects returns the objects a patch names, in the patch's order.
func targetObjects(t *modinfo.Targets) []string {
	var objs []string
	seen := map[string]bool{}
	add := func(o string) {
		if o != "" && !seen[o] {
			seen[o] = true
			objs = append(objs, o)
		}
	}
	for _, o := range t.Objects {
		add(o.Name)
	}
	for _, f := range t.Functions {
		add(f.Object)
	}
	for _, s := range t.Symbols {
		add(s.Object)
	}
	return objs
}

// vermagic: klp load refuses a module built for another release
// (lifecycle.ErrWrongKernel): a patch is valid only for the build it was
// made from. The kernel itself refuses a module without vermagic, or with
// other flags, with ENOEXEC; with modversions it compares the release only
// through symbol CRCs, which is why klp compares it outright.
func vermagic(f *facts) Check {
	rel, err := f.release.v, f.release.err
	if err != nil {
		return Check{Status: Skip, Reason: "the running kernel's release is unknown: " + why(f.release.path, err), Fix: "check the --procfs tree"}
	}
	vm := strings.TrimSpace(f.module.Vermagic)
	if vm == "" {
		return Check{Status: Fail,
			Reason: "the module has no vermagic: the kernel refuses it (ENOEXEC) unless loading is forced",
			Fix:    "rebuild the module with kbuild against the headers of " + rel}
	}
	built := builtFor(f.module)
	if built != rel {
		return Check{Status: Fail,
			Reason: "built for " + built + ", but the running kernel is " + rel + ": a patch is only valid for the build it was made from, and klp load refuses it",
			Fix:    "use the build of this patch for " + rel}
	}
	if cfg := f.config.v; f.config.err == nil && cfg != nil {
		if arch := cfg.machine(); arch != "" && f.module.Machine != "" && arch != f.module.Machine {
			return Check{Status: Fail,
				Reason: "the module is for " + f.module.Machine + ", the kernel for " + arch + ": the kernel refuses it (ENOEXEC)",
				Fix:    "use the build of this patch for " + arch}
		}
	}
	return Check{Status: Pass, Reason: "built for " + rel + ", the running kernel", Details: []string{"vermagic: " + vm}}
}

// builtFor returns the release a module was built for: the first word of
// its vermagic, or "" when it has none.
func builtFor(m *modinfo.Module) string {
	if w := strings.Fields(m.Vermagic); len(w) > 0 {
		return w[0]
	}
	return ""
}

// sameBuild compares the module file with the loaded module of the same
// name by srcversion (modpost's checksum of the sources) or version
// (MODULE_VERSION), when both sides have one.
func sameBuild(f *facts) (same, known bool, detail string) {
	for _, b := range f.build {
		if b.have.err != nil || b.have.v == "" {
			continue
		}
		if b.have.v == b.want {
			return true, true, fmt.Sprintf("same %s %s", b.key, b.want)
		}
		return false, true, fmt.Sprintf("%s %s is loaded, the file has %s", b.key, b.have.v, b.want)
	}
	return false, false, ""
}

// patchesOrNone returns the loaded patches; a kernel without live patching
// has none.
func patchesOrNone(f *facts) ([]livepatch.Patch, error) {
	if errors.Is(f.patches.err, livepatch.ErrNotSupported) {
		return nil, nil
	}
	return f.patches.v, f.patches.err
}

// modulesOrNone returns the loaded modules; a kernel without module
// support has none.
func modulesOrNone(f *facts) (kmod.Modules, error) {
	if errors.Is(f.modules.err, fs.ErrNotExist) {
		return nil, nil
	}
	return f.modules.v, f.modules.err
}

// alreadyLoadedNeeds: the loaded patches and modules, and the loaded
// module's build, for a module with a name.
func alreadyLoadedNeeds(m *modinfo.Module) need {
	if m.Name == "" {
		return 0
	}
	return needPatches | needModules | needBuild
}

// alreadyLoaded: the kernel refuses a second module of the same name
// (EEXIST); klp load turns the common cases into something useful (see
// lifecycle.Manager.Load), and refuses a stale module that still holds
// references.
func alreadyLoaded(f *facts) Check {
	name := f.module.Name
	if name == "" {
		return Check{Status: Skip, Reason: "the module's name is unknown", Fix: "rebuild the module with kbuild"}
	}
	patches, perr := patchesOrNone(f)
	mods, merr := modulesOrNone(f)
	if perr != nil && merr != nil {
		return Check{Status: Skip, Reason: "cannot read the loaded patches or modules: " + perr.Error(), Fix: readFixFor(perr, "")}
	}
	same, known, detail := sameBuild(f)
	var details []string
	if detail != "" {
		details = append(details, detail)
	}
	for _, p := range patches {
		if p.Name != name {
			continue
		}
		if known && !same {
			return Check{Status: Fail,
				Reason:  "another build of patch " + name + " is loaded (" + detail + "): loading this one would leave the old code in place (klp load reports it as loaded; insmod fails with EEXIST)",
				Fix:     "unload the old build first (klp unload " + name + "), or build the new patch as an atomic replace patch with another name",
				Details: details}
		}
		c := Check{Status: Warn, Fix: "nothing to do; to load the file again, klp unload " + name + " first", Details: details}
		switch {
		case p.Enabled && !p.InTransition():
			c.Reason = "patch " + name + " is already loaded and enabled: loading it again does nothing (klp load says so; insmod fails with EEXIST)"
		case p.Enabled:
			c.Reason = "patch " + name + " is already loaded and still patching: klp load waits for its transition"
			c.Fix = "klp wait " + name
		case p.InTransition():
			c.Reason = "patch " + name + " is loaded and unpatching: klp load reverses that (enables it again)"
			c.Fix = "let the disable finish (klp wait " + name + ") if that was the intent"
		default:
			c.Reason = "patch " + name + " is loaded but disabled (a kernel before 5.1 keeps it): klp load enables it again"
		}
		return c
	}
	if merr != nil {
		return Check{Status: Skip, Reason: why(f.modules.path, merr), Fix: readFixFor(merr, ""), Details: details}
	}
	if m, ok := mods.Find(name); ok {
		if m.Refcnt != 0 {
			return Check{Status: Fail,
				Reason:  fmt.Sprintf("module %s is loaded without a live patch and holds %d reference(s): klp load refuses, and the kernel refuses a second module of that name (EEXIST)", name, m.Refcnt),
				Fix:     "find what holds it (a forced patch keeps its reference until reboot); remove it with rmmod " + name + " if it can be",
				Details: details}
		}
		return Check{Status: Warn,
			Reason:  "module " + name + " is loaded without a live patch (disabled, or replaced by an atomic replace patch): klp load removes it first; insmod would fail with EEXIST",
			Fix:     "nothing to do for klp load; otherwise rmmod " + name,
			Details: details}
	}
	return Check{Status: Pass, Reason: "no patch or module named " + name + " is loaded"}
}

// funcKey names a patched function as the sysfs tree does:
// "<object>/<function,sympos>".
func funcKey(object, dir string) string { return object + "/" + dir }

// otherPatches returns the names of the loaded patches but the one called
// name, the functions they patch (by [funcKey]) with the patches that patch
// each, and those functions sorted.
func otherPatches(patches []livepatch.Patch, name string) (others []string, theirs map[string][]string, keys []string) {
	theirs = map[string][]string{}
	for _, p := range patches {
		if p.Name == name {
			continue
		}
		others = append(others, p.Name)
		for _, o := range p.Objects {
			for _, fn := range o.Functions {
				k := funcKey(o.Name, fn.DirName())
				theirs[k] = append(theirs[k], p.Name)
			}
		}
	}
	keys = make([]string, 0, len(theirs))
	for k := range theirs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return others, theirs, keys
}

// replaceNeeds: the loaded patches, for a livepatch module, and the
// klp_state ids of the loaded patches when this one declares states (on a
// kernel with replace sets, two sets may not share one).
func replaceNeeds(m *modinfo.Module) need {
	if m.Targets == nil {
		return 0
	}
	if len(m.Targets.States) > 0 {
		return needPatches | needLoadedStates
	}
	return needPatches
}

// replace: an atomic replace patch disables every loaded patch when its
// transition completes; functions they patch that it does not go back to
// the original code (the kernel gives the new patch a "nop" function for
// each of them during the transition: docs/kernel-notes.md). A non-replace
// patch stacks on the others, and the newest patch wins for a function
// both patch.
func replace(f *facts) Check {
	t := f.module.Targets
	if t == nil {
		return Check{Status: Skip, Reason: "not a livepatch module", Fix: "give the live patch module"}
	}
	patches, err := f.patches.v, f.patches.err
	if errors.Is(err, livepatch.ErrNotSupported) {
		return Check{Status: Skip, Reason: "no live patching support (see above)", Fix: "boot a kernel built with CONFIG_LIVEPATCH=y"}
	}
	if err != nil {
		return Check{Status: Skip, Reason: "cannot read the loaded patches: " + err.Error(), Fix: readFixFor(err, "")}
	}
	if replaceSets(patches) {
		return replaceSet(f, patches)
	}
	others, theirs, keys := otherPatches(patches, f.module.Name)
	ours := map[string]bool{}
	for _, fn := range t.Functions {
		ours[funcKey(fn.Object, fn.SysfsName())] = true
	}
	undetermined := len(t.Functions) == 0 && t.Undetermined != ""
	// The functions of the other patches that this one leaves out: as an
	// atomic replace patch, it sends them back to the original code.
	var reverting []string
	for _, k := range keys {
		if !ours[k] {
			reverting = append(reverting, k+" (from "+strings.Join(theirs[k], ", ")+")")
		}
	}

	switch {
	case t.Replace == nil && t.KlpBuild():
		// klp-build's init code sets replace: true unless built with
		// --no-replace, and the file's data does not record which.
		reason := "a klp-build patch: atomic replace unless it was built with klp-build --no-replace, which the file does not record"
		if len(others) == 0 {
			return Check{Status: Pass, Reason: reason + "; no other patch is loaded, so it replaces nothing either way"}
		}
		c := Check{Status: Warn, Reason: reason + "; if it is, it replaces " + joinMax(others, 5),
			Fix: "find out whether the patch was built with --no-replace; if not, make sure it contains every fix of the patches it replaces"}
		if !undetermined && len(reverting) > 0 {
			c.Reason += fmt.Sprintf(", and %s they patch will go back to the original code", plural(len(reverting), "function", "functions"))
			c.Details = reverting
		}
		return c
	case t.Replace == nil:
		c := Check{Status: Warn,
			Reason: "the file has no static struct klp_patch, so klp cannot tell whether this is an atomic replace patch",
			Fix:    "check the patch's source or documentation"}
		if len(others) > 0 {
			c.Reason += "; if it is, it replaces " + joinMax(others, 5)
		}
		return c
	case *t.Replace:
		if len(others) == 0 {
			return Check{Status: Pass, Reason: "atomic replace patch; no other patch is loaded, so it replaces nothing"}
		}
		if undetermined {
			return Check{Status: Warn,
				Reason: "atomic replace patch: it replaces " + joinMax(others, 5) + ", and klp cannot tell which of their functions it still patches",
				Fix:    "make sure this cumulative patch contains every fix of the patches it replaces"}
		}
		if len(reverting) == 0 {
			return Check{Status: Pass, Reason: "atomic replace patch: it replaces " + joinMax(others, 5) + " and patches every function they patch"}
		}
		return Check{Status: Warn,
			Reason: fmt.Sprintf("atomic replace patch: it replaces %s, and %s they patch will go back to the original code", joinMax(others, 5),
				plural(len(reverting), "function", "functions")),
			Fix:     "make sure this patch is meant to drop those fixes (a downgrade does); otherwise load the complete cumulative patch",
			Details: reverting}
	}
	note := "klp_patch.replace is false in the file; a module can still set it in its init function (the kernel selftests take it from a parameter)"
	if len(others) == 0 {
		return Check{Status: Pass, Reason: "not an atomic replace patch; no other patch is loaded", Details: []string{note}}
	}
	var shared []string
	for _, k := range keys {
		if ours[k] {
			shared = append(shared, k+" (also patched by "+strings.Join(theirs[k], ", ")+")")
		}
	}
	c := Check{Status: Pass, Reason: "not an atomic replace patch: it adds to " + joinMax(others, 5), Details: append(shared, note)}
	if len(shared) > 0 {
		c.Reason += fmt.Sprintf("; for %s they patch too, this newest patch takes precedence", plural(len(shared), "function", "functions"))
	}
	return c
}

// targetModulesNeeds: the target objects' states, for a livepatch module.
func targetModulesNeeds(m *modinfo.Module) need {
	if m.Targets == nil {
		return 0
	}
	return needObjects
}

// targetModules: a patch for a module that is not loaded is applied when
// the module loads (klp_module_coming); one whose object is built into
// vmlinux (a /sys/module directory without initstate) is never applied,
// because klp looks the object up among loadable modules only.
func targetModules(f *facts) Check {
	t := f.module.Targets
	if t == nil {
		return Check{Status: Skip, Reason: "not a livepatch module", Fix: "give the live patch module"}
	}
	var loaded, absent, odd, details []string
	for _, obj := range targetObjects(t) {
		if obj == kallsyms.Vmlinux {
			continue
		}
		st, err := objectStateOf(f, obj)
		switch {
		case errors.Is(err, kmod.ErrInvalidName):
			odd = append(odd, obj)
			details = append(details, fmt.Sprintf("%q cannot be a module name, so this object never loads", obj))
		case err != nil:
			odd = append(odd, obj)
			details = append(details, obj+": "+err.Error())
		case st == "live":
			loaded = append(loaded, obj)
			details = append(details, obj+": loaded; the patch applies to it at once")
		case st == "builtin":
			odd = append(odd, obj)
			details = append(details, obj+": built into the kernel image, not a loadable module: its functions are never patched (patch them as part of vmlinux)")
		case st == "":
			absent = append(absent, obj)
			details = append(details, obj+": not loaded; the patch applies to it when it loads")
		default:
			odd = append(odd, obj)
			details = append(details, obj+": "+st+" (being loaded or removed right now)")
		}
	}
	if len(loaded)+len(absent)+len(odd) == 0 {
		return Check{Status: Pass, Reason: "the patch applies to vmlinux only"}
	}
	var parts []string
	if len(loaded) > 0 {
		parts = append(parts, "loaded: "+joinMax(loaded, 5))
	}
	if len(absent) > 0 {
		parts = append(parts, "not loaded (patched when they load): "+joinMax(absent, 5))
	}
	if len(odd) > 0 {
		parts = append(parts, "cannot be patched now: "+joinMax(odd, 5))
		return Check{Status: Warn, Reason: strings.Join(parts, "; "),
			Fix: "check the object names against the modules of this kernel", Details: details}
	}
	return Check{Status: Pass, Reason: strings.Join(parts, "; "), Details: details}
}

// objectStateOf returns the state of a target object; one the facts do
// not name is not loaded.
func objectStateOf(f *facts, obj string) (string, error) {
	st := f.objects[obj]
	return st.state, st.err
}

// objectLoaded says whether the object's symbols can be looked up now:
// vmlinux always, a module once it is loaded (coming counts: the kernel
// resolves a patch's symbols in klp_module_coming).
func objectLoaded(f *facts, obj string, scan *kallsyms.Result) (bool, error) {
	if obj == kallsyms.Vmlinux {
		return true, nil
	}
	if scan != nil && scan.Objects[obj] > 0 {
		return true, nil
	}
	st, err := objectStateOf(f, obj)
	if err != nil {
		return false, err
	}
	return st == "live" || st == "coming", nil
}
