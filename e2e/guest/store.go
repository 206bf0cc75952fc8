package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Scenarios of the patch store (install, load --all, list, uninstall) and
// of the audit trail, on the real kernel.

const storeDir = "/var/lib/klp"

// foreignModules lists the other kernels' builds of klp_e2e_cmdline packed
// into the guest (/e2e/foreign/<release>/klp_e2e_cmdline.ko), by release.
// It checks first that there is one: the checks that loop over them would
// otherwise pass without running (the suite needs two kernels for them).
func (r *runner) foreignModules() map[string]string {
	m := foreignModules()
	r.expect("foreign-builds", len(m) > 0, "other kernels' builds of klp_e2e_cmdline in %s: %q (the foreign checks need a second kernel in the suite)", foreignDir, m)
	return m
}

// foreignModules lists the other kernels' builds of klp_e2e_cmdline, by
// release, checking nothing: for the lists that include them when there
// are some (the snapshot's commands); the checks use runner.foreignModules.
func foreignModules() map[string]string {
	m := map[string]string{}
	paths, _ := filepath.Glob(foreignDir + "/*/klp_e2e_cmdline.ko")
	for _, p := range paths {
		m[filepath.Base(filepath.Dir(p))] = p
	}
	return m
}

// kernelLoaded is the kernel's answer to klp list's "loaded": every patch in
// sysfs with its state, and every loaded module tainted K (a live patch)
// without a patch directory, which klp calls superseded.
func kernelLoaded() map[string]string {
	m := map[string]string{}
	for _, n := range sysPatchNames() {
		p, err := readSysPatch(n)
		if err != nil {
			continue
		}
		switch {
		case p.transition == 1 && p.enabled == 1:
			m[n] = "patching"
		case p.transition == 1:
			m[n] = "unpatching"
		case p.enabled == 1:
			m[n] = "enabled"
		default:
			m[n] = "disabled"
		}
	}
	b, _ := os.ReadFile("/proc/modules")
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if _, ok := m[f[0]]; ok {
			continue
		}
		if t, err := readTrim("/sys/module/" + f[0] + "/taint"); err == nil && strings.Contains(t, "K") {
			m[f[0]] = "superseded"
		}
	}
	return m
}

// kernelFunctions is the set "object/function,sympos" -> patches of every
// patch in sysfs.
func kernelFunctions() map[string][]string {
	m := map[string][]string{}
	ps, _ := readSysPatches()
	for _, p := range ps {
		for _, o := range p.objects {
			for _, f := range o.funcs {
				k := o.name + "/" + f
				m[k] = append(m[k], p.name)
			}
		}
	}
	return m
}

// checkList compares klp list (--json and text) with the kernel (loaded
// patches and their states, patched functions) and with the store on disk
// (installed patches, which must be exactly want).
func (r *runner) checkList(label string, want []jsonInstalled) {
	for try := 1; ; try++ {
		k1, f1 := kernelLoaded(), kernelFunctions()
		js, text := klp("--json", "list"), klp("list")
		k2 := kernelLoaded()
		if fmt.Sprint(k1) != fmt.Sprint(k2) && try < retries {
			continue
		}
		var l jsonList
		err := decodeJSON(js.stdout, &l, "release", "loaded", "installed", "functions")
		var diffs []string
		got := map[string]string{}
		for _, e := range l.Loaded {
			got[e.Name] = e.State
		}
		if fmt.Sprint(got) != fmt.Sprint(k1) {
			diffs = append(diffs, fmt.Sprintf("loaded %v, kernel %v", got, k1))
		}
		if l.Release != r.kernel {
			diffs = append(diffs, fmt.Sprintf("release %q", l.Release))
		}
		key := func(in jsonInstalled) string {
			return fmt.Sprintf("%s %s %s %s", in.Name, in.Release, in.Path, in.Source)
		}
		var gi, wi []string
		for _, in := range l.Installed {
			gi = append(gi, key(in))
		}
		for _, in := range want {
			wi = append(wi, key(in))
			if !exists(in.Path) {
				diffs = append(diffs, in.Path+" is not on disk")
			}
		}
		if !sameSet(gi, wi) {
			diffs = append(diffs, fmt.Sprintf("installed %q, want %q", gi, wi))
		}
		gf := map[string][]string{}
		for _, f := range l.Functions {
			k := fmt.Sprintf("%s/%s,%d", f.Object, f.Function, f.Sympos)
			gf[k] = f.Patches
			if len(f.Patches) == 1 && (f.ProvidedBy == nil || *f.ProvidedBy != f.Patches[0]) {
				diffs = append(diffs, fmt.Sprintf("%s is changed by %s alone, but provided_by is %v", k, f.Patches[0], f.ProvidedBy))
			}
		}
		if len(gf) != len(f1) {
			diffs = append(diffs, fmt.Sprintf("functions %v, kernel %v", gf, f1))
		}
		for k, ps := range f1 {
			if !sameSet(gf[k], ps) {
				diffs = append(diffs, fmt.Sprintf("function %s: patches %q, kernel %q", k, gf[k], ps))
			}
		}
		r.expect(label+"-list-json", js.code == 0 && err == nil && len(diffs) == 0,
			"decode error %v; differences %v; got %v", err, diffs, js)

		// Text: one line per loaded patch with its state, one per installed
		// file, the running release marked.
		diffs = nil
		tl := lines(text.stdout)
		for name, state := range k1 {
			if !hasFields(tl, name, state) {
				diffs = append(diffs, fmt.Sprintf("no line with %s %s", name, state))
			}
		}
		for _, in := range want {
			rel := in.Release
			if rel == r.kernel {
				rel += " (running)"
			}
			if !hasFields(tl, in.Name, rel, in.Source, in.Path) {
				diffs = append(diffs, fmt.Sprintf("no line with %s %s %s %s", in.Name, rel, in.Source, in.Path))
			}
		}
		if len(k1) == 0 && !strings.HasPrefix(text.stdout, "Loaded patches:\n  (none)\n") {
			diffs = append(diffs, "loaded patches not (none)")
		}
		if len(want) == 0 && !strings.Contains(text.stdout, "Installed patches:\n  (none)\n") {
			diffs = append(diffs, "installed patches not (none)")
		}
		r.expect(label+"-list", text.code == 0 && len(diffs) == 0, "differences %v; got %v", diffs, text)
		return
	}
}

// hasFields reports whether one of the lines holds the given words in that
// order, separated by blanks only.
func hasFields(ls []string, words ...string) bool {
	want := strings.Join(strings.Fields(strings.Join(words, " ")), " ")
	for _, l := range ls {
		if strings.Contains(strings.Join(strings.Fields(l), " "), want) {
			return true
		}
	}
	return false
}

type jsonInstallDoc struct {
	Action    string        `json:"action"`
	Installed jsonInstalled `json:"installed"`
}

// jsonLoadAll is load --all's outcome document: the per-patch outcomes.
type jsonLoadAll struct {
	Patch    *string       `json:"patch"`
	Release  *string       `json:"release"`
	Result   string        `json:"result"`
	Notes    []string      `json:"notes"`
	Outcomes []jsonOutcome `json:"outcomes"`
}

// scenarioKlpStore installs good patches and a bad one into a fresh store,
// loads them all as the boot service does, lists them, replaces and unloads
// them all, and uninstalls them.
func scenarioKlpStore(r *runner) {
	r.must(r.expectNoErr("mkdir-store", os.MkdirAll(storeDir, 0o755), "mkdir %s", storeDir))
	r.must(r.expectNoErr("mount-store", syscall.Mount("tmpfs", storeDir, "tmpfs", 0, "mode=0755"), "a fresh, empty store: tmpfs on %s", storeDir))
	r.atCleanup(func() { _ = syscall.Unmount(storeDir, syscall.MNT_DETACH) })
	rel := r.kernel
	inst := func(name string) jsonInstalled {
		return jsonInstalled{Name: name, Release: rel, Path: filepath.Join(storeDir, rel, name+".ko"), Source: "klp"}
	}
	cmdline, target, broken := inst("klp_e2e_cmdline"), inst("klp_e2e_target_patch"), inst("klp_e2e_broken")
	r.checkList("empty", nil)

	res := klp("--json", "install", moduleFile("klp_e2e_cmdline"))
	var doc jsonInstallDoc
	err := decodeJSON(res.stdout, &doc, "action", "installed")
	src, _ := os.ReadFile(moduleFile("klp_e2e_cmdline"))
	dst, _ := os.ReadFile(cmdline.Path)
	r.expect("install-json", res.code == 0 && err == nil && doc.Action == "install" && doc.Installed == cmdline && len(src) > 0 && bytes.Equal(src, dst),
		"want %+v, a copy of the file; decode error %v; got %v", cmdline, err, res)
	for _, in := range []jsonInstalled{target, broken} {
		res = klp("install", moduleFile(in.Name))
		r.expect("install-"+in.Name, res.code == 0 && res.stdout == fmt.Sprintf("installed %s for %s: %s\n", in.Name, rel, in.Path) && exists(in.Path),
			"got %v", res)
	}
	res = klp("install", moduleFile("klp_e2e_cmdline"))
	r.expect("install-again", res.code == 1 && strings.Contains(res.stderr, "already installed"), "got %v", res)
	res = klp("install", moduleFile("klp_e2e_plain"))
	r.expect("install-not-livepatch", res.code == 1 && !exists(filepath.Join(storeDir, rel, "klp_e2e_plain.ko")),
		"a module that is not a live patch is refused; got %v", res)
	installed := []jsonInstalled{cmdline, target, broken}
	foreign := r.foreignModules()
	for frel, path := range foreign {
		res = klp("install", path)
		r.expect("install-foreign", res.code == 1 && strings.Contains(res.stderr, frel),
			"the build for %s is refused for %s, naming its release; got %v", frel, rel, res)
		res = klp("install", "-k", frel, path)
		in := jsonInstalled{Name: "klp_e2e_cmdline", Release: frel, Path: filepath.Join(storeDir, frel, "klp_e2e_cmdline.ko"), Source: "klp"}
		if r.expect("install-foreign-k", res.code == 0 && exists(in.Path), "-k %s installs it for that release; got %v", frel, res) {
			installed = append(installed, in)
		}
	}
	r.checkList("installed", installed)

	// klp.enable=0 on the kernel command line turns load --all off. The
	// command line cannot change at run time, so a copy with the option is
	// bind-mounted over /proc/cmdline.
	fake := "/tmp/cmdline-klp-disabled"
	r.must(r.expectNoErr("fake-cmdline", os.WriteFile(fake, []byte(procCmdline()+" klp.enable=0\n"), 0o644), "write %s", fake))
	if r.expectNoErr("bind-cmdline", syscall.Mount(fake, "/proc/cmdline", "", syscall.MS_BIND, ""), "bind %s over /proc/cmdline", fake) {
		res = klp("--json", "load", "--all")
		_ = syscall.Unmount("/proc/cmdline", 0)
		var la jsonLoadAll
		err = decodeOutcome(res.stdout, &la, "patch", "release", "result", "notes", "outcomes")
		r.expect("load-all-disabled", res.code == 0 && err == nil && la.Result == "disabled" && strings.Contains(strings.Join(la.Notes, " "), "klp.enable=0") &&
			len(la.Outcomes) == 0 && len(sysPatchNames()) == 0,
			"with klp.enable=0 nothing is loaded and the document says why; decode error %v; got %v", err, res)
	}
	r.expect("cmdline-restored", !strings.Contains(procCmdline(), "klp.enable=0"), "/proc/cmdline is the real one again: %q", procCmdline())

	// load --all: the good patches load, the bad one fails, exit 1.
	seq := kmsgLastSeq()
	res = klp("--json", "load", "--all")
	var la jsonLoadAll
	err = decodeOutcome(res.stdout, &la, "patch", "release", "result", "outcomes")
	results := map[string]string{}
	failedOK := false
	for _, o := range la.Outcomes {
		results[str(o.Patch)] = o.Result
		if str(o.Patch) == "klp_e2e_broken" {
			failedOK = o.Result == "failed" && str(o.File) == broken.Path && o.Error != nil && strings.Contains(*o.Error, "klp_e2e_no_such_function")
		}
	}
	r.expect("load-all-json", res.code == 1 && err == nil && la.Patch == nil && str(la.Release) == rel && la.Result == "incomplete" && failedOK &&
		len(results) == 3 && results["klp_e2e_cmdline"] == "patched" && results["klp_e2e_target_patch"] == "patched",
		"want exit 1, klp_e2e_cmdline and klp_e2e_target_patch patched, klp_e2e_broken failed with the kernel's reason; decode error %v; got %v", err, res)
	ps, _ := readSysPatches()
	var states []string
	for _, p := range ps {
		states = append(states, fmt.Sprintf("%s:%d/%d", p.name, p.enabled, p.transition))
	}
	loaded, _ := moduleLoaded("klp_e2e_broken")
	r.expect("load-all-kernel", strings.Join(states, " ") == "klp_e2e_cmdline:1/0 klp_e2e_target_patch:1/0" && !loaded && procCmdline() == cmdlineMarker,
		"sysfs holds the two good patches, enabled, transitions done: %v; klp_e2e_broken loaded %v; /proc/cmdline %q", states, loaded, procCmdline())
	r.expect("load-all-kmsg", kmsgHas(seq, "symbol 'klp_e2e_no_such_function' not found"), "the kernel refused the bad one: %q", kmsgSince(seq))
	r.expect("no-boot-marker", !exists(filepath.Join(storeDir, rel, ".loading")), "the boot marker is removed after each load")
	r.checkList("loaded", installed)

	// Again, as the text a person reads: idempotent for the loaded ones.
	res = klp("load", "--all")
	tl := lines(res.stdout)
	r.expect("load-all-text", res.code == 1 && hasPrefixLine(tl, "klp_e2e_cmdline: already loaded (") &&
		hasPrefixLine(tl, "klp_e2e_target_patch: already loaded (") &&
		hasPrefixLine(tl, "klp_e2e_broken: FAILED: ") && strings.Contains(res.stdout, "klp_e2e_no_such_function"),
		"already loaded twice, FAILED with the missing symbol once, exit 1; got %v", res)

	// A cumulative patch supersedes both; unload --all removes all three.
	r.klpVerb("load-replace", 0, []string{"patched"}, "load", moduleFile("klp_e2e_replace"))
	waitFor(5*time.Second, func() bool { return len(sysPatchNames()) == 1 })
	r.checkList("replaced", installed)
	res = klp("--json", "unload", "--all")
	var ua jsonOutcome
	var uo struct {
		Outcomes []jsonOutcome `json:"outcomes"`
	}
	err = decodeOutcome(res.stdout, &ua, "action", "result", "exit_code")
	if err == nil {
		err = decodeOutcome(res.stdout, &uo, "outcomes")
	}
	removed := map[string]string{}
	for _, o := range uo.Outcomes {
		removed[str(o.Patch)] = o.Result
	}
	r.expect("unload-all", res.code == 0 && err == nil && ua.Patch == nil && ua.Result == "removed" && len(removed) == 3 &&
		removed["klp_e2e_replace"] == "removed" && removed["klp_e2e_cmdline"] == "removed" && removed["klp_e2e_target_patch"] == "removed",
		"each of the three modules removed; decode error %v; got %v", err, res)
	r.expect("unload-all-kernel", len(loadedE2EModules()) == 0 && len(sysPatchNames()) == 0,
		"no e2e module (%v) and no patch (%v) left", loadedE2EModules(), sysPatchNames())
	res = klp("unload", "--all")
	r.expect("unload-all-nothing", res.code == 0, "nothing to unload is not an error; got %v", res)

	// load by name: the installed file.
	o, _ := r.klpVerb("load-by-name", 0, []string{"patched"}, "load", "klp_e2e_cmdline")
	r.expect("load-by-name-file", str(o.Patch) == "klp_e2e_cmdline" && exists(filepath.Join(lpRoot, "klp_e2e_cmdline")),
		"NAME loads the installed file %s: outcome %+v", cmdline.Path, o)
	r.klpVerb("unload-by-name", 0, []string{"removed"}, "unload", "klp_e2e_cmdline")

	// uninstall removes the files, and the release's directory with the last.
	res = klp("--json", "uninstall", "klp_e2e_cmdline")
	doc = jsonInstallDoc{}
	err = decodeJSON(res.stdout, &doc, "action", "installed")
	r.expect("uninstall-json", res.code == 0 && err == nil && doc.Action == "uninstall" && doc.Installed == cmdline && !exists(cmdline.Path),
		"want %+v and the file gone; decode error %v; got %v", cmdline, err, res)
	for _, in := range []jsonInstalled{target, broken} {
		res = klp("uninstall", in.Name)
		r.expect("uninstall-"+in.Name, res.code == 0 && res.stdout == fmt.Sprintf("uninstalled %s for %s\n", in.Name, rel) && !exists(in.Path),
			"got %v", res)
	}
	res = klp("uninstall", "klp_e2e_broken")
	r.expect("uninstall-again", res.code == 1 && strings.Contains(res.stderr, "not installed"), "got %v", res)
	for frel := range foreign {
		res = klp("uninstall", "-k", frel, "klp_e2e_cmdline")
		r.expect("uninstall-foreign-k", res.code == 0, "got %v", res)
	}
	r.expect("store-empty", !exists(filepath.Join(storeDir, rel)), "the release directory goes with its last patch")
	r.checkList("uninstalled", nil)
}

func hasPrefixLine(ls []string, prefix string) bool {
	for _, l := range ls {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// scenarioKlpAudit runs busybox syslogd for the duration of a load, a
// failed load and an unload, and checks the audit records klp sends to
// /dev/log. (Without /dev/log, as in every other scenario, klp drops them.)
func scenarioKlpAudit(r *runner) {
	const logFile = "/tmp/klp-audit.log"
	_ = os.Remove(logFile)
	_, err := r.start(nil, "/bin/syslogd", "-n", "-O", logFile)
	r.must(r.expectNoErr("syslogd", err, "start busybox syslogd"))
	r.atCleanup(func() { _ = os.Remove("/dev/log") })
	r.must(r.expect("dev-log", waitFor(5*time.Second, func() bool { return exists("/dev/log") }), "syslogd listens on /dev/log"))

	r.klpVerb("load", 0, []string{"patched"}, "load", moduleFile("klp_e2e_cmdline"))
	r.klpVerb("load-broken", 1, []string{"failed"}, "load", moduleFile("klp_e2e_broken"))
	r.klpVerb("unload", 0, []string{"removed"}, "unload", "klp_e2e_cmdline")
	want := []string{
		`action=load target=` + moduleFile("klp_e2e_cmdline") + ` result="patched"`,
		`action=load target=` + moduleFile("klp_e2e_broken") + ` result="failed" `,
		`action=unload target=klp_e2e_cmdline result="removed"`,
	}
	var got string
	ok := waitFor(3*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		got = string(b)
		for _, w := range want {
			if !strings.Contains(got, w) {
				return false
			}
		}
		return true
	})
	var recs []string
	for _, l := range lines(got) {
		if strings.Contains(l, "klp") {
			recs = append(recs, l)
		}
	}
	sort.Strings(want)
	r.expect("records", ok && strings.Contains(got, "user=root(0)") && strings.Contains(got, "klp_e2e_no_such_function"),
		"one record per action, with the user, the result and the error; want %q; got %q", want, recs)
	for _, l := range recs {
		r.note("record", "%s", l)
	}
}
