package main

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The klp-build scenario: patch modules laid out as Linux 6.19's klp-build
// makes them (e2e/modules/klp_e2e_build.h), on kernels that predate it.
// Their file names have dashes, their module names '_'; their klp_patch is
// built by their init code from __klp_objects.

const (
	buildMarker         = "livepatch_e2e_build: this has been live patched"
	buildVersionMarker  = "livepatch_e2e_build: version_proc_show has been live patched"
	noReplaceMarker     = "livepatch_e2e_no_replace: this has been live patched"
	noReplaceReadMarker = "livepatch_e2e_no_replace"
)

// klpBuildModule is one of the klp-build style modules and what its file
// was written to say (its C sources).
type klpBuildModule struct {
	file    string // in moduleDir, as kbuild names it
	name    string // the module name: the file name with '-' turned into '_'
	objects []string
	funcs   []string // "object/function,sympos" as sysfs names them
	replace int      // what the init code sets, as 6.11+ shows it
}

var (
	klpBuildReplace = klpBuildModule{
		file: "livepatch-e2e-build.ko", name: "livepatch_e2e_build", replace: 1,
		objects: []string{"vmlinux"},
		funcs:   []string{"vmlinux/cmdline_proc_show,1", "vmlinux/version_proc_show,1"},
	}
	klpBuildNoReplace = klpBuildModule{
		file: "livepatch-e2e-no-replace.ko", name: "livepatch_e2e_no_replace", replace: 0,
		objects: []string{"vmlinux", "klp_e2e_target"},
		funcs:   []string{"vmlinux/cmdline_proc_show,1", "klp_e2e_target/klp_e2e_target_read,1"},
	}
)

func (m klpBuildModule) path() string { return moduleDir + "/" + m.file }

// checkKlpBuildInfo checks klp info of a klp-build style module against
// what its sources say: the name, every target from the klp-build layout,
// and replace left undetermined (only the init code sets it).
func (r *runner) checkKlpBuildInfo(m klpBuildModule) (jsonInfo, []string, []string) {
	j, text := r.klpInfo(m.name+"-info", m.path())
	tobj, tfun := infoText(text.stdout)
	var sources []string
	if j.Targets != nil {
		for _, o := range j.Targets.Objects {
			sources = append(sources, o.Sources...)
		}
		for _, f := range j.Targets.Functions {
			sources = append(sources, f.Source)
		}
	}
	onlyKlpBuild := len(sources) > 0
	for _, s := range sources {
		onlyKlpBuild = onlyKlpBuild && s == "klp-build"
	}
	r.expect(m.name+"-info-file", j.Name == m.name && j.Livepatch && j.Targets != nil && j.Targets.Undetermined == "" &&
		onlyKlpBuild && sameSet(j.objectSet(), m.objects) && sameSet(j.funcSet(), m.funcs) &&
		sameSet(tobj, m.objects) && sameSet(tfun, m.funcs),
		"klp info of %s: name %q, objects %q / %q (text), functions %q / %q (text), sources %q; the file was built with %q, %q",
		m.file, j.Name, j.objectSet(), tobj, j.funcSet(), tfun, sources, m.objects, m.funcs)
	r.expect(m.name+"-info-replace", j.Targets != nil && j.Targets.Replace == nil &&
		strings.Contains(text.stdout, "atomic replace: undetermined") && strings.Contains(text.stdout, "klp-build --no-replace"),
		"replace is set by the init code, not recorded in the file: json %s; text %q", fmtBoolPtr(targetReplace(j)), text.stdout)
	return j, tobj, tfun
}

func targetReplace(j jsonInfo) *bool {
	if j.Targets == nil {
		return nil
	}
	return j.Targets.Replace
}

// checkKlpBuildLoaded compares a loaded klp-build style patch with the
// kernel's files: the sysfs directory and /proc/modules under the '_'
// name, the objects and functions that klp info read from the file, and
// the replace attribute (6.11+) with what the init code set.
func (r *runner) checkKlpBuildLoaded(m klpBuildModule, j jsonInfo, tobj, tfun []string) {
	p, err := readSysPatch(m.name)
	loaded, _ := moduleLoaded(m.name)
	dashed := strings.TrimSuffix(m.file, ".ko")
	r.expect(m.name+"-kernel-name", err == nil && p.enabled == 1 && p.transition == 0 && loaded &&
		exists("/sys/module/"+m.name) && !exists(filepath.Join(lpRoot, dashed)),
		"the kernel names the patch %s: sysfs enabled %d transition %d (err %v), in /proc/modules %v, no %s/%s",
		m.name, p.enabled, p.transition, err, loaded, lpRoot, dashed)
	sobj, sfun := sysFuncSet(p)
	r.expect(m.name+"-info-vs-sysfs", sameSet(j.objectSet(), sobj) && sameSet(j.funcSet(), sfun) && sameSet(tobj, sobj) && sameSet(tfun, sfun),
		"klp info: objects %q, functions %q (text %q, %q); %s/%s: objects %q, functions %q",
		j.objectSet(), j.funcSet(), tobj, tfun, lpRoot, m.name, sobj, sfun)
	var unpatched []string
	for _, o := range p.objects {
		if o.patched != nil && *o.patched != 1 {
			unpatched = append(unpatched, o.name)
		}
	}
	r.expect(m.name+"-objects-patched", len(unpatched) == 0, "every object's patched attribute (6.1+) reads 1: not %q", unpatched)
	if p.replace != nil {
		r.expect(m.name+"-replace-attr", *p.replace == m.replace,
			"the init code set replace %d: the kernel's replace attribute reads %d", m.replace, *p.replace)
	} else {
		r.note(m.name+"-replace-attr", "absent (before 6.11)")
	}
}

// scenarioKlpBuild loads the two klp-build style modules through klp on the
// real kernel: first the --no-replace one (vmlinux and the klp_e2e_target
// module), then the default, cumulative one, which replaces it.
func scenarioKlpBuild(r *runner) {
	origCmdline := procCmdline()
	origVersion, _ := readTrim("/proc/version")
	nr, nrObj, nrFun := r.checkKlpBuildInfo(klpBuildNoReplace)
	br, brObj, brFun := r.checkKlpBuildInfo(klpBuildReplace)

	res := insmod("klp_e2e_target")
	r.must(r.expect("insmod-target", res.code == 0, "%v", res))
	orig, _ := readTrim(targetProc)

	// The --no-replace module: preflight, load, the kernel's view, the effect.
	p := r.klpPreflight(klpBuildNoReplace.name, klpBuildNoReplace.path())
	r.expect(klpBuildNoReplace.name+"-predicts-load", p.Result != "fail" && p.Module != nil && p.Module.Name == klpBuildNoReplace.name,
		"result %s, failed %q", p.Result, p.failed())
	c := p.check("replace")
	r.expect(klpBuildNoReplace.name+"-preflight-replace", c.Status == "pass" && strings.Contains(c.Reason, "klp-build"),
		"nothing else loaded: replace %s %q", c.Status, c.Reason)
	_, _ = r.klpVerb(klpBuildNoReplace.name+"-load", 0, []string{"patched"}, "load", klpBuildNoReplace.path())
	r.checkKlpBuildLoaded(klpBuildNoReplace, nr, nrObj, nrFun)
	read, _ := readTrim(targetProc)
	r.expect(klpBuildNoReplace.name+"-effect", procCmdline() == noReplaceMarker && read == noReplaceReadMarker,
		"/proc/cmdline %q, %s %q (was %q)", procCmdline(), targetProc, read, orig)

	// The default module: cumulative, so it replaces the first.
	p = r.klpPreflight(klpBuildReplace.name, klpBuildReplace.path())
	c = p.check("replace")
	r.expect(klpBuildReplace.name+"-predicts-load", p.Result != "fail" && p.Module != nil && p.Module.Name == klpBuildReplace.name &&
		c.Status == "warn" && strings.Contains(c.Reason, "if it is, it replaces "+klpBuildNoReplace.name),
		"result %s, failed %q; replace %s %q", p.Result, p.failed(), c.Status, c.Reason)
	_, _ = r.klpVerb(klpBuildReplace.name+"-load", 0, []string{"patched"}, "load", klpBuildReplace.path())
	gone := waitFor(5*time.Second, func() bool { return !exists(filepath.Join(lpRoot, klpBuildNoReplace.name)) })
	loaded, refs := moduleLoaded(klpBuildNoReplace.name)
	r.expect("replaced", gone && loaded && waitFor(5*time.Second, func() bool { return readIntOr("/sys/module/"+klpBuildNoReplace.name+"/refcnt") == 0 }),
		"the cumulative patch retired %s: sysfs dir gone %v, still in /proc/modules %v (refcount %d)", klpBuildNoReplace.name, gone, loaded, refs)
	r.checkKlpBuildLoaded(klpBuildReplace, br, brObj, brFun)
	version, _ := readTrim("/proc/version")
	read, _ = readTrim(targetProc)
	r.expect(klpBuildReplace.name+"-effect", procCmdline() == buildMarker && version == buildVersionMarker && read == orig,
		"/proc/cmdline %q, /proc/version %q, %s %q (back to %q: the replaced patch's function is no longer patched)",
		procCmdline(), version, targetProc, read, orig)

	res = klp("--json", "list")
	var l jsonList
	err := decodeJSON(res.stdout, &l, "loaded")
	states := map[string]string{}
	for _, e := range l.Loaded {
		states[e.Name] = e.State
	}
	r.expect("list", res.code == 0 && err == nil && states[klpBuildReplace.name] == "enabled" && states[klpBuildNoReplace.name] == "superseded",
		"list names the modules as /proc/modules does: %s enabled, %s superseded; decode error %v; got %v",
		klpBuildReplace.name, klpBuildNoReplace.name, err, res)

	// Unload, by the name the kernel uses, and by the file's dashed
	// spelling, which users will type.
	r.klpVerb(klpBuildNoReplace.name+"-unload-dashed", 0, []string{"removed"}, "unload", strings.ReplaceAll(klpBuildNoReplace.name, "_", "-"))
	loaded, _ = moduleLoaded(klpBuildNoReplace.name)
	r.expect(klpBuildNoReplace.name+"-unloaded", !loaded && !exists("/sys/module/"+klpBuildNoReplace.name), "gone from /proc/modules and /sys/module")
	r.klpVerb(klpBuildReplace.name+"-unload", 0, []string{"removed"}, "unload", klpBuildReplace.name)
	loaded, _ = moduleLoaded(klpBuildReplace.name)
	version, _ = readTrim("/proc/version")
	r.expect(klpBuildReplace.name+"-unloaded", !loaded && !exists(filepath.Join(lpRoot, klpBuildReplace.name)) &&
		procCmdline() == origCmdline && version == origVersion,
		"after unload: in /proc/modules %v, sysfs dir %v, /proc/cmdline %q, /proc/version %q",
		loaded, exists(filepath.Join(lpRoot, klpBuildReplace.name)), procCmdline(), version)

	// The store and NAME lookups, in the dashed spelling of klp-build's
	// file names: installed under the kernel's name, loaded, unloaded and
	// uninstalled by the dashed one.
	dashed := strings.ReplaceAll(klpBuildReplace.name, "_", "-")
	res = klp("--json", "install", klpBuildReplace.path())
	var inst jsonInstallDoc
	err = decodeJSON(res.stdout, &inst, "action", "installed")
	installedPath := filepath.Join(storeDir, r.kernel, klpBuildReplace.name+".ko")
	r.atCleanup(func() { _ = os.Remove(installedPath) })
	r.expect("install-dashed-file", res.code == 0 && err == nil && inst.Installed.Name == klpBuildReplace.name && inst.Installed.Path == installedPath && exists(installedPath),
		"installed under the module's name %s; decode error %v; got %v", installedPath, err, res)
	o, _ := r.klpVerb("load-dashed-name", 0, []string{"patched"}, "load", dashed)
	r.expect("load-dashed-name-kernel", str(o.File) == installedPath && exists(filepath.Join(lpRoot, klpBuildReplace.name)) && procCmdline() == buildMarker,
		"the installed file %s is loaded: outcome file %q, /proc/cmdline %q", installedPath, str(o.File), procCmdline())
	r.klpVerb("unload-dashed-name", 0, []string{"removed"}, "unload", dashed)
	loaded, _ = moduleLoaded(klpBuildReplace.name)
	r.expect("unload-dashed-name-kernel", !loaded && procCmdline() == origCmdline, "gone from /proc/modules; /proc/cmdline %q", procCmdline())
	res = klp("uninstall", dashed)
	r.expect("uninstall-dashed-name", res.code == 0 && !exists(installedPath), "uninstalled by the dashed name; got %v", res)

	res = rmmod("klp_e2e_target")
	r.expect("rmmod-target", res.code == 0, "%v", res)
	r.checkStatus("after")
	r.checkPatches("after")
}
