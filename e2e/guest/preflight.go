package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Scenarios of klp info (what a module file says it patches) and klp
// preflight (whether this kernel will take it), each checked against what
// the kernel then does with the module.

type jsonInfo struct {
	Name      string `json:"name"`
	Livepatch bool   `json:"livepatch"`
	Vermagic  string `json:"vermagic"`
	Targets   *struct {
		Objects []struct {
			Name    string   `json:"name"`
			Sources []string `json:"sources"`
		} `json:"objects"`
		Functions []struct {
			Object   string `json:"object"`
			Function string `json:"function"`
			Sympos   int    `json:"sympos"`
			Source   string `json:"source"`
		} `json:"functions"`
		Replace      *bool  `json:"replace"`
		Undetermined string `json:"undetermined"`
	} `json:"targets"`
}

// funcSet is the set of "object/function,sympos" as sysfs names them
// (sympos 0, "must be unique", is the directory ",1").
func (j jsonInfo) funcSet() []string {
	var out []string
	if j.Targets == nil {
		return out
	}
	for _, f := range j.Targets.Functions {
		pos := f.Sympos
		if pos == 0 {
			pos = 1
		}
		out = append(out, fmt.Sprintf("%s/%s,%d", f.Object, f.Function, pos))
	}
	return out
}

func (j jsonInfo) objectSet() []string {
	var out []string
	if j.Targets == nil {
		return out
	}
	for _, o := range j.Targets.Objects {
		out = append(out, o.Name)
	}
	return out
}

// infoText parses klp info's text: the "objects:" line and the rows of the
// OBJECT FUNCTION SOURCE table, as "object/function,sympos".
func infoText(out string) (objects, funcs []string) {
	in := false
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case strings.HasPrefix(l, "  objects: "):
			objects = strings.Split(strings.TrimPrefix(l, "  objects: "), ", ")
		case len(f) == 3 && f[0] == "OBJECT" && f[1] == "FUNCTION" && f[2] == "SOURCE":
			in = true
		case in && strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "   ") && len(f) == 3:
			funcs = append(funcs, f[0]+"/"+f[1])
		default:
			in = false
		}
	}
	return objects, funcs
}

// sysFuncSet reads a loaded patch's objects and "object/function,sympos".
func sysFuncSet(p sysPatch) (objects, funcs []string) {
	for _, o := range p.objects {
		objects = append(objects, o.name)
		for _, f := range o.funcs {
			funcs = append(funcs, o.name+"/"+f)
		}
	}
	return objects, funcs
}

// klpInfo runs klp info --json and plain on a file.
func (r *runner) klpInfo(check, file string) (jsonInfo, result) {
	js := klp("--json", "info", file)
	var j jsonInfo
	err := decodeJSON(js.stdout, &j, "name", "livepatch", "vermagic", "targets")
	r.expect(check+"-json", js.code == 0 && err == nil, "decode error %v; got %v", err, js)
	text := klp("info", file)
	r.expect(check+"-text", text.code == 0 && strings.HasPrefix(text.stdout, "name:"), "got %v", text)
	return j, text
}

// scenarioKlpInfo compares what klp info reads from each live patch test
// module with the objects and functions the kernel lists under
// /sys/kernel/livepatch/<patch>/ once the module is loaded.
func scenarioKlpInfo(r *runner) {
	// The kernel's objects and functions of klp_e2e_cmdline, for the other
	// kernels' builds of it below.
	var cmdlineObjects, cmdlineFuncs []string
	for _, m := range []string{"klp_e2e_cmdline", "klp_e2e_replace", "klp_e2e_target_patch", "klp_e2e_pinned"} {
		j, text := r.klpInfo(m+"-info", moduleFile(m))
		tobj, tfun := infoText(text.stdout)
		if _, ok := r.loadPatch(m); !ok {
			continue
		}
		p, err := readSysPatch(m)
		sobj, sfun := sysFuncSet(p)
		if m == "klp_e2e_cmdline" {
			cmdlineObjects, cmdlineFuncs = sobj, sfun
		}
		r.expect(m+"-json", err == nil && j.Name == m && j.Livepatch && j.Targets != nil && j.Targets.Undetermined == "" &&
			sameSet(j.objectSet(), sobj) && sameSet(j.funcSet(), sfun),
			"klp info --json: name %q, objects %q, functions %q; the kernel's %s: objects %q, functions %q (%v)",
			j.Name, j.objectSet(), j.funcSet(), m, sobj, sfun, err)
		r.expect(m+"-text", sameSet(tobj, sobj) && sameSet(tfun, sfun),
			"klp info: objects %q, functions %q; the kernel's: %q, %q", tobj, tfun, sobj, sfun)
		if p.replace != nil && j.Targets != nil {
			r.expect(m+"-replace", j.Targets.Replace != nil && *j.Targets.Replace == (*p.replace == 1),
				"klp info replace %s, kernel replace attribute %d", fmtBoolPtr(j.Targets.Replace), *p.replace)
		}
		r.disablePatch(m)
		res := rmmod(m)
		r.expect(m+"-rmmod", res.code == 0, "%v", res)
	}

	// What the kernel cannot show: the missing symbol of the broken module,
	// a module that is not a live patch, another kernel's build.
	j, text := r.klpInfo("broken-info", moduleFile("klp_e2e_broken"))
	_, tfun := infoText(text.stdout)
	want := []string{"vmlinux/klp_e2e_no_such_function,1"}
	r.expect("broken", sameSet(j.funcSet(), want) && sameSet(tfun, want),
		"the file names the function the kernel will not find: json %q, text %q", j.funcSet(), tfun)
	j, text = r.klpInfo("plain-info", moduleFile("klp_e2e_plain"))
	r.expect("plain", !j.Livepatch && j.Targets == nil && strings.Contains(text.stdout, "targets: none (not a livepatch module)"),
		"an ordinary module has no targets: livepatch %v, targets %v; text %q", j.Livepatch, j.Targets, text.stdout)
	// Another kernel's build of klp_e2e_cmdline (this kernel refuses it)
	// patches what this kernel showed in sysfs for its own build, and
	// names its own release in its vermagic.
	for rel, path := range r.foreignModules() {
		j, _ := r.klpInfo("foreign-info", path)
		r.expect("foreign", len(cmdlineFuncs) > 0 && strings.HasPrefix(j.Vermagic, rel+" ") &&
			sameSet(j.funcSet(), cmdlineFuncs) && sameSet(j.objectSet(), cmdlineObjects),
			"the %s build, vermagic %q: objects %q, functions %q; the kernel's klp_e2e_cmdline: objects %q, functions %q",
			rel, j.Vermagic, j.objectSet(), j.funcSet(), cmdlineObjects, cmdlineFuncs)
	}
}

type jsonPreflight struct {
	Module *struct {
		Name string `json:"name"`
	} `json:"module"`
	Checks []jsonCheck `json:"checks"`
	Result string      `json:"result"`
}

func (p jsonPreflight) check(id string) jsonCheck {
	for _, c := range p.Checks {
		if c.ID == id {
			return c
		}
	}
	return jsonCheck{ID: id, Status: "(absent)"}
}

func (p jsonPreflight) failed() []string {
	var out []string
	for _, c := range p.Checks {
		if c.Status == "fail" {
			out = append(out, c.ID+": "+c.Reason)
		}
	}
	return out
}

// klpPreflight runs klp preflight --json and plain (args: a module file, or
// none) and checks that they agree: the exit status (1 exactly when a check
// fails), the result and one text line per check.
func (r *runner) klpPreflight(check string, args ...string) jsonPreflight {
	start := time.Now()
	js := klp(append([]string{"--json", "preflight"}, args...)...)
	r.note(check+"-preflight-ms", "%d", time.Since(start).Milliseconds())
	text := klp(append([]string{"preflight"}, args...)...)
	var p jsonPreflight
	err := decodeJSON(js.stdout, &p, "module", "checks", "result")
	var diffs []string
	code := 0
	if p.Result == "fail" {
		code = 1
	}
	if js.code != code || text.code != code {
		diffs = append(diffs, fmt.Sprintf("result %q, exit statuses %d (json) and %d (text), want %d", p.Result, js.code, text.code, code))
	}
	tl := lines(text.stdout)
	for _, c := range p.Checks {
		line := fmt.Sprintf("%s  %s: %s", strings.ToUpper(c.Status), c.Title, c.Reason)
		if !contains(tl, line) {
			diffs = append(diffs, "no text line "+line)
		}
	}
	if !hasPrefixLine(tl, "result: "+p.Result+" (") {
		diffs = append(diffs, "no text line result: "+p.Result)
	}
	r.expect(check+"-preflight", err == nil && len(p.Checks) > 0 && len(diffs) == 0,
		"decode error %v; differences %v; json %v; text %v", err, diffs, js, text)
	return p
}

// scenarioKlpPreflight checks klp preflight's prediction of each test
// module's load against the kernel's answer to the load.
func scenarioKlpPreflight(r *runner) {
	p := r.klpPreflight("system")
	r.expect("system-pass", p.Result != "fail" && p.Module == nil, "an idle kernel with live patching: result %s, failed %q", p.Result, p.failed())
	for _, id := range []string{"livepatch_supported", "modules_disabled", "ftrace_enabled", "reliable_stacktrace", "lockdown", "transition_in_progress", "forced_patch"} {
		c := p.check(id)
		r.expect("system-"+id, c.Status == "pass", "%s: %s %q", id, c.Status, c.Reason)
	}

	// The good modules: no failure predicted, and the kernel takes them.
	res := insmod("klp_e2e_target")
	r.must(r.expect("insmod-target", res.code == 0, "%v", res))
	for _, m := range []string{"klp_e2e_cmdline", "klp_e2e_replace", "klp_e2e_target_patch"} {
		p := r.klpPreflight(m, moduleFile(m))
		r.expect(m+"-predicts-load", p.Result != "fail" && p.Module != nil && p.Module.Name == m,
			"result %s, failed %q", p.Result, p.failed())
		if _, ok := r.loadPatch(m); ok {
			r.disablePatch(m)
			rmmod(m)
		}
	}
	res = rmmod("klp_e2e_target")
	r.must(r.expect("rmmod-target", res.code == 0, "%v", res))

	// A patch of a module that is not loaded: a warning, and it loads.
	p = r.klpPreflight("target-absent", moduleFile("klp_e2e_target_patch"))
	c := p.check("target_modules")
	sy := p.check("symbols")
	r.expect("target-absent-warns", p.Result == "warn" && len(p.failed()) == 0 &&
		strings.Contains(c.Reason, "not loaded") && strings.Contains(c.Reason, "klp_e2e_target") &&
		sy.Status == "warn" && strings.Contains(sy.Reason, "klp_e2e_target_work"),
		"result %s; target_modules %s %q; symbols %s %q; failed %q", p.Result, c.Status, c.Reason, sy.Status, sy.Reason, p.failed())
	if _, ok := r.loadPatch("klp_e2e_target_patch"); ok {
		r.disablePatch("klp_e2e_target_patch")
		rmmod("klp_e2e_target_patch")
	}

	// The broken module: the missing symbol, and the kernel refuses it.
	p = r.klpPreflight("broken", moduleFile("klp_e2e_broken"))
	c = p.check("symbols")
	r.expect("broken-fails", p.Result == "fail" && c.Status == "fail" &&
		strings.Contains(c.Reason+strings.Join(c.Details, " "), "klp_e2e_no_such_function"),
		"symbols %s %q %q; failed %q", c.Status, c.Reason, c.Details, p.failed())
	seq := kmsgLastSeq()
	res = insmod("klp_e2e_broken")
	r.expect("broken-load-fails", res.code != 0 && kmsgHas(seq, "klp_e2e_no_such_function"), "the kernel refuses it: %v", res)

	// Another kernel's build: vermagic, and the kernel refuses it.
	for rel, path := range r.foreignModules() {
		p = r.klpPreflight("foreign", path)
		c = p.check("vermagic")
		r.expect("foreign-fails", p.Result == "fail" && c.Status == "fail" && strings.Contains(c.Reason, rel),
			"vermagic %s %q; failed %q", c.Status, c.Reason, p.failed())
		info, _ := r.klpInfo("foreign-info", path)
		seq := kmsgLastSeq()
		res = run("insmod", path)
		loaded, _ := moduleLoaded("klp_e2e_cmdline")
		r.expect("foreign-load-fails", res.code != 0 && !loaded, "the kernel refuses the %s build: %v", rel, res)
		r.note("foreign-insmod-error", "%s", strings.TrimSpace(res.stderr))
		// The kernel says why in its log: with CONFIG_MODVERSIONS it checks
		// the symbol versions (6.1: "disagrees about version of symbol
		// module_layout") or the size of struct module (6.12) before the
		// vermagic's release; without, "version magic '...' should be".
		var refusal string
		for _, l := range kmsgSince(seq) {
			r.note("foreign-kmsg", "%s", l)
			if strings.Contains(l, "klp_e2e_cmdline") && (strings.Contains(l, "version magic") ||
				strings.Contains(l, "disagrees about version of symbol") || strings.Contains(l, "struct module size")) {
				refusal = l
			}
		}
		built := ""
		if f := strings.Fields(info.Vermagic); len(f) > 0 {
			built = f[0]
		}
		r.expect("foreign-refusal-kernel", refusal != "" && built == rel && built != r.kernel && strings.Contains(c.Reason, rel),
			"the kernel logged why it refused the file: %q; klp info reads the release %q from its vermagic (built for %s, running %s); preflight says %q",
			refusal, built, rel, r.kernel, c.Reason)
		o, _ := r.klpVerb("foreign-klp-load", 1, []string{"refused"}, "load", path)
		r.expect("foreign-klp-load-vermagic", jsonOutcomeCheck(o, "vermagic") == "fail", "klp load refuses it on vermagic: %+v", o.Preflight)
	}

	// ftrace disabled. The kernel refuses the sysctl while a patch is applied.
	_, ok := r.loadPatch("klp_e2e_cmdline")
	r.must(ok)
	err := writeFile("/proc/sys/kernel/ftrace_enabled", "0")
	r.expect("ftrace-off-refused", errnoOf(err) == syscall.EBUSY && readIntOr("/proc/sys/kernel/ftrace_enabled") == 1,
		"with a patch applied, echo 0 > ftrace_enabled fails with EBUSY: %v; it reads %d", err, readIntOr("/proc/sys/kernel/ftrace_enabled"))
	r.must(r.disablePatch("klp_e2e_cmdline"))
	rmmod("klp_e2e_cmdline")
	r.atCleanup(func() { _ = writeFile("/proc/sys/kernel/ftrace_enabled", "1") })
	r.must(r.expectNoErr("ftrace-off", writeFile("/proc/sys/kernel/ftrace_enabled", "0"), "echo 0 > /proc/sys/kernel/ftrace_enabled with no patch applied"))
	p = r.klpPreflight("ftrace-off", moduleFile("klp_e2e_cmdline"))
	c = p.check("ftrace_enabled")
	r.expect("ftrace-off-fails", p.Result == "fail" && c.Status == "fail", "ftrace_enabled %s %q; failed %q", c.Status, c.Reason, p.failed())
	seq = kmsgLastSeq()
	res = insmod("klp_e2e_cmdline")
	loaded, _ := moduleLoaded("klp_e2e_cmdline")
	r.expect("ftrace-off-load-fails", res.code != 0 && strings.Contains(strings.ToLower(res.stderr), "busy") && !loaded && !exists(filepath.Join(lpRoot, "klp_e2e_cmdline")),
		"the kernel refuses the patch with EBUSY and keeps nothing: %v", res)
	for _, l := range kmsgSince(seq) {
		r.note("ftrace-off-kmsg", "%s", l)
	}
	o, _ := r.klpVerb("ftrace-off-klp-load", 1, []string{"refused"}, "load", moduleFile("klp_e2e_cmdline"))
	r.expect("ftrace-off-klp-load-check", jsonOutcomeCheck(o, "ftrace_enabled") == "fail", "klp load refuses it on ftrace_enabled: %+v", o.Preflight)
	o, _ = r.klpVerb("ftrace-off-skip-preflight", 1, []string{"failed"}, "load", "--skip-preflight", moduleFile("klp_e2e_cmdline"))
	r.note("ftrace-off-skip-preflight-error", "%s", strPtr(o.Error))
	loaded, _ = moduleLoaded("klp_e2e_cmdline")
	r.expect("ftrace-off-nothing-loaded", !loaded && !exists(filepath.Join(lpRoot, "klp_e2e_cmdline")), "nothing left loaded")
	r.must(r.expectNoErr("ftrace-on", writeFile("/proc/sys/kernel/ftrace_enabled", "1"), "echo 1 > /proc/sys/kernel/ftrace_enabled"))
	p = r.klpPreflight("ftrace-on", moduleFile("klp_e2e_cmdline"))
	r.expect("ftrace-on-pass", p.Result != "fail", "failed %q", p.failed())

	// Another transition blocked: preflight fails, and the kernel says EBUSY.
	r.holdKthread()
	r.startBlockedPatch()
	p = r.klpPreflight("blocked", moduleFile("klp_e2e_cmdline"))
	c = p.check("transition_in_progress")
	r.expect("blocked-fails", p.Result == "fail" && c.Status == "fail" && strings.Contains(c.Reason, "klp_e2e_target_patch"),
		"transition_in_progress %s %q; failed %q", c.Status, c.Reason, p.failed())
	res = insmod("klp_e2e_cmdline")
	r.expect("blocked-load-ebusy", res.code != 0 && strings.Contains(strings.ToLower(res.stderr), "busy"), "the kernel answers EBUSY: %v", res)
	r.must(r.expectNoErr("release", writeFile(targetParams+"block_kthread", "0"), "release the kthread"))
	r.expect("released", waitFor(10*time.Second, func() bool {
		return readIntOr(filepath.Join(lpRoot, "klp_e2e_target_patch", "transition")) == 0
	}), "the transition completes")
}

func jsonOutcomeCheck(o jsonOutcome, id string) string {
	for _, c := range o.Preflight {
		if c.ID == id {
			return c.Status
		}
	}
	return "(absent)"
}

func strPtr(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
