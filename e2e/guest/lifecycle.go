package main

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Scenarios of klp's life-cycle verbs (load, unload, disable, enable, wait,
// force, list) on the real kernel. Each verb's --json outcome is checked,
// and so is the state the kernel is left in.

// jsonOutcome is the document of a life-cycle command (docs/json.md), of
// load --all and unload --all too (with the per-patch outcomes in
// Outcomes).
type jsonOutcome struct {
	Action    string     `json:"action"`
	Patch     *string    `json:"patch"`
	File      *string    `json:"file"`
	Release   *string    `json:"release"`
	Result    string     `json:"result"`
	Error     *string    `json:"error"`
	ExitCode  int        `json:"exit_code"`
	KernelLog []string   `json:"kernel_log"`
	Notes     []string   `json:"notes"`
	Stall     *jsonStall `json:"stall"`
	// Preflight is set when klp load refused the module before loading.
	Preflight []jsonCheck   `json:"preflight"`
	Outcomes  []jsonOutcome `json:"outcomes"`
}

// jsonStall is the stall report of a life-cycle outcome and of
// blocking --why --json.
type jsonStall struct {
	Patch     string   `json:"patch"`
	Target    string   `json:"target"`
	Functions []string `json:"functions"`
	Tasks     []struct {
		PID          int      `json:"pid"`
		TID          int      `json:"tid"`
		Comm         string   `json:"comm"`
		KernelThread bool     `json:"kernel_thread"`
		Stack        []string `json:"stack"`
		Culprits     []string `json:"culprits"`
		Advice       string   `json:"advice"`
	} `json:"tasks"`
}

// jsonCheck is one preflight check (klp preflight --json, and a load that
// preflight refused).
type jsonCheck struct {
	ID      string   `json:"id"`
	Title   string   `json:"title"`
	Status  string   `json:"status"`
	Reason  string   `json:"reason"`
	Fix     *string  `json:"fix"`
	Details []string `json:"details"`
}

type jsonList struct {
	Release string `json:"release"`
	Loaded  []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"loaded"`
	Installed []jsonInstalled `json:"installed"`
	Functions []struct {
		Object          string   `json:"object"`
		Function        string   `json:"function"`
		Sympos          int      `json:"sympos"`
		Patches         []string `json:"patches"`
		ProvidedBy      *string  `json:"provided_by"`
		ProvidedByBasis *string  `json:"provided_by_basis"`
	} `json:"functions"`
}

// jsonInstalled is an installed patch (list, install, uninstall).
type jsonInstalled struct {
	Name    string `json:"name"`
	Release string `json:"release"`
	Path    string `json:"path"`
	Source  string `json:"source"`
}

// klpVerb runs "klp --json <args>" and decodes the outcome; the check named
// name passes when the exit status is code, the result is one of results,
// and the JSON exit_code agrees.
func (r *runner) klpVerb(name string, code int, results []string, args ...string) (jsonOutcome, result) {
	res := klp(append([]string{"--json"}, args...)...)
	var o jsonOutcome
	err := decodeOutcome(res.stdout, &o, "action", "patch", "file", "result", "error", "exit_code", "preflight", "outcomes")
	okResult := false
	for _, want := range results {
		okResult = okResult || o.Result == want
	}
	r.expect(name, err == nil && res.code == code && o.ExitCode == code && okResult,
		"want exit %d and result %q; decode error %v; got %v", code, results, err, res)
	return o, res
}

func moduleFile(m string) string { return moduleDir + "/" + m + ".ko" }

func scenarioKlpLoad(r *runner) {
	orig := procCmdline()
	o, _ := r.klpVerb("load", 0, []string{"patched"}, "load", moduleFile("klp_e2e_cmdline"))
	p, err := readSysPatch("klp_e2e_cmdline")
	r.expect("load-kernel", err == nil && p.enabled == 1 && p.transition == 0 && procCmdline() == cmdlineMarker,
		"after load returns the patch is enabled with its transition done: %+v %v, /proc/cmdline %q", p, err, procCmdline())
	r.expect("load-kernel-log", strings.Contains(strings.Join(o.KernelLog, "\n"), "enabling patch 'klp_e2e_cmdline'"),
		"the outcome carries the kernel log of the load: %q", o.KernelLog)

	r.klpVerb("load-again", 0, []string{"already loaded"}, "load", moduleFile("klp_e2e_cmdline"))
	r.klpVerb("load-replace", 0, []string{"patched"}, "load", moduleFile("klp_e2e_replace"))
	gone := waitFor(5*time.Second, func() bool { return !exists(filepath.Join(lpRoot, "klp_e2e_cmdline")) })
	r.expect("replaced", gone && procCmdline() == replaceMarker, "the cumulative patch replaced the first: %v %q", gone, procCmdline())

	// list: every loaded live patch module, with its state as the kernel
	// shows it: a sysfs directory (enabled) or none (superseded).
	res := klp("--json", "list")
	var l jsonList
	err = decodeJSON(res.stdout, &l, "loaded")
	states := map[string]string{}
	for _, e := range l.Loaded {
		states[e.Name] = e.State
	}
	r.expect("list", res.code == 0 && err == nil && len(states) == 2 &&
		states["klp_e2e_replace"] == "enabled" && states["klp_e2e_cmdline"] == "superseded",
		"want klp_e2e_replace enabled and klp_e2e_cmdline superseded (loaded, no sysfs dir); decode error %v; got %v", err, res)

	r.klpVerb("unload-superseded", 0, []string{"removed"}, "unload", "klp_e2e_cmdline")
	loaded, _ := moduleLoaded("klp_e2e_cmdline")
	r.expect("unload-superseded-kernel", !loaded, "the superseded module is gone from /proc/modules")
	r.klpVerb("unload", 0, []string{"removed"}, "unload", "klp_e2e_replace")
	loaded, _ = moduleLoaded("klp_e2e_replace")
	r.expect("unload-kernel", !loaded && !exists(filepath.Join(lpRoot, "klp_e2e_replace")) && procCmdline() == orig,
		"after unload: module loaded %v, sysfs dir %v, /proc/cmdline %q", loaded, exists(filepath.Join(lpRoot, "klp_e2e_replace")), procCmdline())
	r.checkStatus("after")
	r.checkPatches("after")
}

func scenarioKlpBroken(r *runner) {
	seq := kmsgLastSeq()
	o, _ := r.klpVerb("load-fails", 1, []string{"failed"}, "load", moduleFile("klp_e2e_broken"))
	r.expect("error", o.Error != nil && *o.Error != "", "the outcome says why")
	r.expect("kernel-log", strings.Contains(strings.Join(o.KernelLog, "\n"), "klp_e2e_no_such_function"),
		"klp passes on the kernel's reason: %q", o.KernelLog)
	loaded, _ := moduleLoaded("klp_e2e_broken")
	r.expect("not-loaded", !loaded && !exists(filepath.Join(lpRoot, "klp_e2e_broken")), "nothing left behind")
	n := 0
	for _, l := range kmsgSince(seq) {
		if strings.Contains(l, "'klp_e2e_no_such_function' not found") {
			n++
		}
	}
	// busybox insmod retries a failed finit_module with init_module, so the
	// module's init runs twice there; klp loads once.
	r.expect("init-once", n == 1, "the kernel logged the missing symbol %d time(s)", n)

	// As a person sees it: the error and the kernel's reason on stderr.
	res := klp("load", moduleFile("klp_e2e_broken"))
	r.expect("load-fails-text", res.code == 1 && res.stdout == "" &&
		strings.Contains(res.stderr, "symbol 'klp_e2e_no_such_function' not found"),
		"exit 1 and stderr names the missing symbol from the kernel log; got %v", res)
	loaded, _ = moduleLoaded("klp_e2e_broken")
	r.expect("not-loaded-text", !loaded && !exists(filepath.Join(lpRoot, "klp_e2e_broken")), "nothing left behind")
	r.checkStatus("after")
}

// targetPatchFuncs are the functions klp_e2e_target_patch (and its copy
// klp_e2e_pinned) replaces.
var targetPatchFuncs = []string{"klp_e2e_target_read", "klp_e2e_target_work"}

// scenarioKlpStall loads a patch whose transition cannot finish, with each
// --on-stall policy; while it is left open, it checks the explanation of
// the stall (blocking --why) and that other loads are refused; then it
// waits for it and unloads it.
func scenarioKlpStall(r *runner) {
	kt := r.holdKthread()
	file := moduleFile("klp_e2e_target_patch")
	seq := kmsgLastSeq()
	// 5 s: the rollback waits as long again for the reversed transition,
	// which takes a retry of the kernel's (a second) on an idle guest and
	// more on a loaded host.
	o, _ := r.klpVerb("load-rollback", 3, []string{"rolled back"}, "load", "--timeout", "5s", file)
	// The kthread still sleeps where it slept when klp looked.
	want := kernelCulprits(kt, targetPatchFuncs, nil)
	r.expect("culprit-kernel", len(want) == 1 && strings.Contains(want[0], "klp_e2e_target_work+"),
		"the kernel stack of the kthread has one frame of a replaced function: %q", want)
	if r.expect("stall-json", o.Stall != nil, "the outcome has a stall report: %+v", o) {
		r.checkStallJSON("stall-json", *o.Stall, "klp_e2e_target_patch", "patched", targetPatchFuncs, kt, want,
			"wait", "klp disable klp_e2e_target_patch", "klp force klp_e2e_target_patch")
	}
	r.checkRolledBack("rolled-back-kernel", seq)

	// The same as a person sees it.
	seq = kmsgLastSeq()
	res := klp("load", "--timeout", "5s", file)
	r.expect("load-rollback-text", res.code == 3 && strings.Contains(res.stderr, "rolling back") &&
		!strings.Contains(res.stderr, "did not complete") && !strings.Contains(res.stderr, "stays loaded"),
		"exit 3, and stderr says it rolls back, and not that the rollback failed; got %v", res)
	r.checkStallText("stall-text", res.stdout, "klp_e2e_target_patch", "patching", targetPatchFuncs, kt, want,
		"wait", "klp disable klp_e2e_target_patch", "klp force klp_e2e_target_patch")
	r.checkRolledBack("rolled-back-text-kernel", seq)

	r.klpVerb("load-leave", 3, []string{"left in transition"}, "load", "--timeout", "2s", "--on-stall", "leave", file)
	p, err := readSysPatch("klp_e2e_target_patch")
	r.must(r.expect("left-kernel", err == nil && p.enabled == 1 && p.transition == 1, "the transition is left open: %+v %v", p, err))

	r.checkWhy("why", kt, "wait", "klp disable klp_e2e_target_patch", "klp force klp_e2e_target_patch")
	r.checkLoadBusy(moduleFile("klp_e2e_cmdline"), "klp_e2e_target_patch")

	r.klpVerb("wait-stalled", 3, []string{"left in transition"}, "wait", "--timeout", "2s")

	r.must(r.expectNoErr("release", writeFile(targetParams+"block_kthread", "0"), "release the kthread"))
	// Named: once released, the kthread may let the kernel finish before
	// klp starts, and a wait for "the transition in progress" would then
	// rightly find none.
	r.klpVerb("wait", 0, []string{"patched"}, "wait", "--timeout", "10s", "klp_e2e_target_patch")
	p, err = readSysPatch("klp_e2e_target_patch")
	r.expect("wait-kernel", err == nil && p.transition == 0, "wait returned after the transition ended: %+v %v", p, err)
	res = klp("blocking", "--why")
	r.expect("why-ready", res.code == 0 && res.stdout == "no transition in progress\n", "nothing to explain once it completed; got %v", res)
	r.klpVerb("unload", 0, []string{"removed"}, "unload", "klp_e2e_target_patch")
	loaded, _ := moduleLoaded("klp_e2e_target_patch")
	r.expect("unload-kernel", !loaded, "module removed")
}

// checkRolledBack checks, from the kernel log since seq, that the load of
// klp_e2e_target_patch happened and was rolled back (the kernel enabled the
// patch, started the patching transition, then the reversed, unpatching
// one, and completed it), and that it left nothing: no patch directory, no
// transition, no module.
func (r *runner) checkRolledBack(check string, seq uint64) {
	gone := waitFor(5*time.Second, func() bool { return !exists(filepath.Join(lpRoot, "klp_e2e_target_patch")) })
	var steps []string
	for _, want := range []string{"enabling patch 'klp_e2e_target_patch'", "'klp_e2e_target_patch': starting patching transition",
		"'klp_e2e_target_patch': starting unpatching transition", "'klp_e2e_target_patch': unpatching complete"} {
		if !kmsgHas(seq, want) {
			steps = append(steps, want)
		}
	}
	name, _ := kernelTransition()
	loaded, _ := moduleLoaded("klp_e2e_target_patch")
	r.expect(check, len(steps) == 0 && gone && name == "" && !loaded,
		"the kernel log lacks %q; after the rollback: patch dir gone %v, transition %q, module loaded %v (want gone, none, false)",
		steps, gone, name, loaded)
}

// checkLoadBusy tries to load file while patch's transition is blocked:
// klp refuses it, with and without its preflight checks, saying which patch
// is in transition, and nothing is loaded. (The kernel itself answers EBUSY:
// see blocked/insmod-ebusy.)
func (r *runner) checkLoadBusy(file, patch string) {
	name := strings.TrimSuffix(filepath.Base(file), ".ko")
	nothing := func(check string) {
		loaded, _ := moduleLoaded(name)
		r.expect(check, !loaded && !exists(filepath.Join(lpRoot, name)), "%s is neither loaded nor in sysfs", name)
	}
	o, res := r.klpVerb("load-busy-json", 1, []string{"refused"}, "load", file)
	var found *jsonCheck
	for i, c := range o.Preflight {
		if c.ID == "transition_in_progress" {
			found = &o.Preflight[i]
		}
	}
	r.expect("load-busy-preflight", found != nil && found.Status == "fail" && strings.Contains(found.Reason, patch),
		"the refusal's preflight check transition_in_progress fails and names %s: %+v; got %v", patch, found, res)
	nothing("load-busy-nothing-loaded")
	res = klp("load", file)
	r.expect("load-busy-text", res.code == 1 && strings.Contains(res.stderr, patch) && strings.Contains(res.stderr, "refused"),
		"exit 1, stderr says the load is refused and names %s; got %v", patch, res)
	nothing("load-busy-text-nothing-loaded")
	o, res = r.klpVerb("load-busy-skip-preflight", 1, []string{"failed"}, "load", "--skip-preflight", file)
	r.expect("load-busy-skip-preflight-error", o.Error != nil && strings.Contains(*o.Error, patch) && strings.Contains(*o.Error, "transition"),
		"without preflight, klp load still refuses before the kernel would say EBUSY, naming %s; got %v", patch, res)
	nothing("load-busy-skip-preflight-nothing-loaded")
}

// kernelCulprits returns the frames of the task's kernel stack that run a
// function of funcs or code of one of modules: what klp must mark as the
// culprits of a stall.
func kernelCulprits(t taskID, funcs, modules []string) []string {
	stack, _ := readTrim(taskPath(t, "stack"))
	var out []string
	for _, l := range lines(stack) {
		l = strings.TrimSpace(l)
		if contains(funcs, frameFunc(l)) || contains(modules, frameModule(l)) {
			out = append(out, l)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s && s != "" {
			return true
		}
	}
	return false
}

// frameFunc is the function of a stack line: "[<0>] f+0x2e/0x60 [mod]"
// gives "f".
func frameFunc(l string) string {
	f := strings.Fields(l)
	if len(f) < 2 {
		return ""
	}
	fn, _, _ := strings.Cut(f[1], "+")
	return fn
}

// frameModule is the module of a stack line, "" for vmlinux.
func frameModule(l string) string {
	f := strings.Fields(l)
	if len(f) < 3 || !strings.HasPrefix(f[2], "[") {
		return ""
	}
	return strings.Trim(f[2], "[]")
}

// kernelStall is what the kernel says about the transition in progress:
// the patch, its function names (sysfs directories without ",sympos") and
// every patch name (the live patch modules whose code counts as culprit).
func kernelStall() (patch string, target int, funcs, patches []string) {
	patch, target = kernelTransition()
	patches = sysPatchNames()
	if p, err := readSysPatch(patch); err == nil {
		for _, o := range p.objects {
			for _, f := range o.funcs {
				fn, _, _ := strings.Cut(f, ",")
				if !contains(funcs, fn) {
					funcs = append(funcs, fn)
				}
			}
		}
	}
	return
}

// checkWhy runs blocking --why, as text and --json, while kt alone blocks
// the transition, and compares them with the kernel: the transition, the
// patched functions, the task, its stack and the culprit frames. The advice
// must contain each of the given phrases.
func (r *runner) checkWhy(label string, kt taskID, advice ...string) {
	patch, target, funcs, patches := kernelStall()
	want := kernelCulprits(kt, funcs, patches)
	r.expect(label+"-culprit-kernel", len(want) > 0, "the blocking kthread's stack runs patched code: %q (patched functions %q)", want, funcs)
	text, js := klp("blocking", "--why"), klp("--json", "blocking", "--why")
	dir, tgt := "patching", "patched"
	if target == 0 {
		dir, tgt = "unpatching", "unpatched"
	}
	r.expect(label+"-text-exit", text.code == 0, "got %v", text)
	r.checkStallText(label+"-text", text.stdout, patch, dir, funcs, kt, want, advice...)
	var doc struct {
		Stall *jsonStall `json:"stall"`
	}
	err := decodeJSON(js.stdout, &doc, "stall")
	if r.expect(label+"-json", js.code == 0 && err == nil && doc.Stall != nil, "decode error %v; got %v", err, js) {
		r.checkStallJSON(label+"-json", *doc.Stall, patch, tgt, funcs, kt, want, advice...)
	}
}

// checkStallJSON compares a stall report with the kernel's view.
func (r *runner) checkStallJSON(check string, st jsonStall, patch, target string, funcs []string, kt taskID, culprits []string, advice ...string) {
	var diffs []string
	if st.Patch != patch || st.Target != target {
		diffs = append(diffs, fmt.Sprintf("transition %s/%s, want %s/%s", st.Patch, st.Target, patch, target))
	}
	if !sameSet(st.Functions, funcs) {
		diffs = append(diffs, fmt.Sprintf("functions %q, want %q", st.Functions, funcs))
	}
	if len(st.Tasks) != 1 {
		diffs = append(diffs, fmt.Sprintf("%d tasks, want the kthread alone", len(st.Tasks)))
	}
	stack, _ := readTrim(taskPath(kt, "stack"))
	for _, t := range st.Tasks {
		if t.TID != kt.tid {
			diffs = append(diffs, fmt.Sprintf("task %d is not the kthread %d", t.TID, kt.tid))
			continue
		}
		if t.PID != kt.pid || t.Comm != comm(kt) || !t.KernelThread {
			diffs = append(diffs, fmt.Sprintf("task pid %d comm %q kernel_thread %v; kernel pid %d comm %q kthread", t.PID, t.Comm, t.KernelThread, kt.pid, comm(kt)))
		}
		if t.Stack != nil && !equalStrings(t.Stack, trimmed(lines(stack))) {
			diffs = append(diffs, fmt.Sprintf("stack %q, kernel %q", t.Stack, stack))
		}
		if !equalStrings(t.Culprits, culprits) {
			diffs = append(diffs, fmt.Sprintf("culprits %q, want the kernel's frames %q", t.Culprits, culprits))
		}
		for _, a := range advice {
			if !strings.Contains(t.Advice, a) {
				diffs = append(diffs, fmt.Sprintf("advice %q lacks %q", t.Advice, a))
			}
		}
	}
	r.expect(check, len(diffs) == 0, "differences %v; report %+v", diffs, st)
}

// checkStallText checks the text stall report: the header, the patched
// functions, the task line, each culprit frame marked "=>" (and no other),
// and the advice.
func (r *runner) checkStallText(check, out, patch, dir string, funcs []string, kt taskID, culprits []string, advice ...string) {
	var diffs []string
	head := fmt.Sprintf("Transition of %s (%s) is blocked by 1 task(s).\n", patch, dir)
	if !strings.HasPrefix(out, head) {
		diffs = append(diffs, "header is not "+strconv.Quote(head))
	}
	var listed []string
	var marked []string
	adv := ""
	// The kthread wakes every 20 ms to check its parameter: it reads S, or
	// R for a moment.
	var tasks []string
	for _, st := range []string{"S", "R"} {
		tasks = append(tasks, fmt.Sprintf("  %d/%d %s (kernel thread, state %s): [%s]", kt.pid, kt.tid, comm(kt), st, comm(kt)))
	}
	hasTask := false
	for _, l := range lines(out) {
		switch {
		case strings.HasPrefix(l, "Patched functions: "):
			listed = strings.Split(strings.TrimPrefix(l, "Patched functions: "), ", ")
		case strings.HasPrefix(l, "    => "):
			marked = append(marked, strings.TrimPrefix(l, "    => "))
		case strings.HasPrefix(l, "    advice: "):
			adv = l
		case contains(tasks, l):
			hasTask = true
		}
	}
	if !sameSet(listed, funcs) {
		diffs = append(diffs, fmt.Sprintf("patched functions %q, want %q", listed, funcs))
	}
	if !hasTask {
		diffs = append(diffs, fmt.Sprintf("no line %q", tasks))
	}
	if !equalStrings(marked, culprits) {
		diffs = append(diffs, fmt.Sprintf("frames marked => %q, want the kernel's %q", marked, culprits))
	}
	var names []string
	for _, c := range culprits {
		names = append(names, frameFunc(c))
	}
	if want := "    on its stack (=>): " + strings.Join(names, ", "); !strings.Contains(out, want+"\n") {
		diffs = append(diffs, "no line "+strconv.Quote(want))
	}
	for _, a := range advice {
		if !strings.Contains(adv, a) {
			diffs = append(diffs, fmt.Sprintf("advice %q lacks %q", adv, a))
		}
	}
	r.expect(check, len(diffs) == 0, "differences %v; output %q", diffs, out)
}

func sameSet(a, b []string) bool {
	x, y := append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(x)
	sort.Strings(y)
	return equalStrings(x, y)
}

func trimmed(ls []string) []string {
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		out = append(out, strings.TrimSpace(l))
	}
	return out
}

// scenarioKlpReverse stalls an unpatching transition with disable, then
// reverses it with enable.
func scenarioKlpReverse(r *runner) {
	res := insmod("klp_e2e_target")
	r.must(r.expect("insmod-target", res.code == 0, "%v", res))
	r.klpVerb("load", 0, []string{"patched"}, "load", moduleFile("klp_e2e_target_patch"))
	r.must(r.expectNoErr("block", writeFile(patchParams+"block", "1"), "park the kthread in the replacement function"))
	r.must(r.expect("waiting", waitFor(5*time.Second, func() bool { return readIntOr(patchParams+"waiting") == 1 }), "kthread parked"))

	r.klpVerb("disable-stalled", 3, []string{"left in transition"}, "disable", "--timeout", "2s", "klp_e2e_target_patch")
	p, err := readSysPatch("klp_e2e_target_patch")
	r.expect("unpatching-kernel", err == nil && p.enabled == 0 && p.transition == 1, "unpatching left open: %+v %v", p, err)
	// The kthread sleeps in the patch module's own code, which the
	// unpatching transition takes away.
	if kt, ok := findTask("klp_e2e_busy"); r.expect("kthread-found", ok, "kthread klp_e2e_busy in /proc") {
		r.checkWhy("why", kt, "wait", "klp enable klp_e2e_target_patch", "klp force klp_e2e_target_patch")
	}

	r.klpVerb("enable-reverses", 0, []string{"patched"}, "enable", "--timeout", "10s", "klp_e2e_target_patch")
	r.expectEnabledSettled("reversed-kernel", "klp_e2e_target_patch", "the reverse brought the patch back")

	r.must(r.expectNoErr("release", writeFile(patchParams+"block", "0"), "release the kthread"))
	r.klpVerb("unload", 0, []string{"removed"}, "unload", "klp_e2e_target_patch")
}

// scenarioKlpForce forces a stalled patching transition with klp and then
// unloads the patch. On these kernels (>= 5.19) forcing a patch *on* does not
// pin its module: a clean disable releases it (see scenarioForce).
func scenarioKlpForce(r *runner) {
	r.holdKthread()
	r.klpVerb("load-leave", 3, []string{"left in transition"}, "load", "--timeout", "2s", "--on-stall", "leave", moduleFile("klp_e2e_target_patch"))
	seq := kmsgLastSeq()
	r.klpVerb("force", 0, []string{"forced, patched"}, "force", "--yes", "klp_e2e_target_patch")
	r.expect("force-kernel", readIntOr(filepath.Join(lpRoot, "klp_e2e_target_patch", "transition")) == 0 &&
		kmsgHas(seq, "forcing remaining tasks to the patched state"), "the kernel forced the transition")
	r.must(r.expectNoErr("release", writeFile(targetParams+"block_kthread", "0"), "release the kthread"))
	res := klp("force", "--yes", "klp_e2e_target_patch")
	r.expect("force-not-in-transition", res.code == 1, "force outside a transition fails: %v", res)
	r.klpVerb("unload", 0, []string{"removed"}, "unload", "klp_e2e_target_patch")
	loaded, refs := moduleLoaded("klp_e2e_target_patch")
	r.expect("unload-kernel", !loaded, "the kernel lets a patch forced on be removed after a clean disable (loaded %v, refcount %d)", loaded, refs)
}

// scenarioKlpCompressed loads klp_e2e_cmdline compressed with xz, gzip and
// zstd through klp: the kernel decompresses what it was built to
// (/sys/module/compression names it, 5.17+), and klp decompresses the rest
// itself and uses init_module. Either way the patch must apply as from the
// plain file, and klp info must read the compressed file.
func scenarioKlpCompressed(r *runner) {
	if s, err := readTrim("/sys/module/compression"); err == nil {
		r.note("kernel-decompresses", "%s", s)
	} else {
		r.note("kernel-decompresses", "none (%v)", err)
	}
	for _, c := range []struct{ ext, kind string }{{"xz", "xz"}, {"gz", "gzip"}, {"zst", "zstd"}} {
		path := compressedDir + "/klp_e2e_cmdline.ko." + c.ext
		res := klp("--json", "info", path)
		var info struct {
			Name        string `json:"name"`
			Compression string `json:"compression"`
			Livepatch   bool   `json:"livepatch"`
		}
		err := decodeJSON(res.stdout, &info, "name", "compression")
		r.expect("info-"+c.ext, res.code == 0 && err == nil && info.Name == "klp_e2e_cmdline" && info.Compression == c.kind && info.Livepatch,
			"klp info reads the %s module: decode error %v; got %v", c.kind, err, res)

		o, _ := r.klpVerb("load-"+c.ext, 0, []string{"patched"}, "load", path)
		r.expect("effect-"+c.ext, procCmdline() == cmdlineMarker, "/proc/cmdline after loading the %s module: %q", c.kind, procCmdline())
		r.note("log-"+c.ext, "%s", strings.Join(o.KernelLog, " | "))
		r.klpVerb("unload-"+c.ext, 0, []string{"removed"}, "unload", "klp_e2e_cmdline")
		loaded, _ := moduleLoaded("klp_e2e_cmdline")
		r.expect("unloaded-"+c.ext, !loaded && !exists(filepath.Join(lpRoot, "klp_e2e_cmdline")), "nothing left after unloading the %s module", c.kind)
	}
	r.checkStatus("after")
}

// scenarioKlpUser checks that the life-cycle verbs refuse an unprivileged
// user with exit status 5 and change nothing.
func scenarioKlpUser(r *runner) {
	res := runAsUser("/bin/klp", "load", moduleFile("klp_e2e_cmdline"))
	loaded, _ := moduleLoaded("klp_e2e_cmdline")
	r.expect("load-refused", res.code == 5 && !loaded, "as uid %d, load exits 5 (permission) and loads nothing; got %v", userUID, res)
	r.note("load-refused-message", "%s", strings.TrimSpace(res.stderr))
}

// pinnedParams are the parameters of klp_e2e_pinned, a copy of
// klp_e2e_target_patch under another name.
const pinnedParams = "/sys/module/klp_e2e_pinned/parameters/"

// scenarioKlpForceUnpatch forces an *unpatching* transition. Since 5.19 the
// kernel marks the patch being removed as forced and never drops its
// module's reference, so klp unload must explain that instead of waiting
// forever. The module (klp_e2e_pinned, used by no other scenario) then stays
// loaded until the guest powers off, which is why this scenario runs last.
func scenarioKlpForceUnpatch(r *runner) {
	const name = "klp_e2e_pinned"
	res := insmod("klp_e2e_target")
	r.must(r.expect("insmod-target", res.code == 0, "%v", res))
	r.klpVerb("load", 0, []string{"patched"}, "load", moduleFile(name))
	r.must(r.expectNoErr("block", writeFile(pinnedParams+"block", "1"), "park the kthread in the replacement function"))
	r.must(r.expect("waiting", waitFor(5*time.Second, func() bool { return readIntOr(pinnedParams+"waiting") == 1 }), "kthread parked"))
	r.klpVerb("disable-stalled", 3, []string{"left in transition"}, "disable", "--timeout", "2s", name)
	p, err := readSysPatch(name)
	r.must(r.expect("unpatching-kernel", err == nil && p.enabled == 0 && p.transition == 1, "unpatching left open: %+v %v", p, err))

	// From here on the module is the kernel's for good.
	r.pinned[name] = true
	seq := kmsgLastSeq()
	res = klp("force", "--yes", name)
	r.expect("force", res.code == 0 && strings.HasPrefix(res.stdout, name+": forced, unpatched (") &&
		strings.Contains(res.stderr, "never release module "+name) && strings.Contains(res.stderr, "until reboot"),
		"force says the module can never be unloaded until reboot, and forces; got %v", res)
	gone := waitFor(5*time.Second, func() bool { return !exists(filepath.Join(lpRoot, name)) })
	r.expect("force-kernel", gone && kmsgHas(seq, "forcing remaining tasks to the"),
		"the kernel forced the transition and freed the patch (dir gone %v); log %q", gone, kmsgSince(seq))
	for _, l := range kmsgSince(seq) {
		if strings.Contains(l, "forcing") {
			r.note("force-kmsg", "%s", l)
		}
	}
	r.must(r.expectNoErr("release", writeFile(pinnedParams+"block", "0"), "release the kthread"))
	r.must(r.expect("released", waitFor(5*time.Second, func() bool { return readIntOr(pinnedParams+"waiting") == 0 }), "kthread left the replacement function"))
	time.Sleep(200 * time.Millisecond)
	r.expect("refcnt-kept", readIntOr("/sys/module/"+name+"/refcnt") == 1,
		"the kernel keeps the forced module's reference: refcnt %d", readIntOr("/sys/module/"+name+"/refcnt"))

	start := time.Now()
	res = klp("unload", name)
	took := time.Since(start)
	r.note("unload-forced-seconds", "%.1f", took.Seconds())
	r.note("unload-forced-message", "%s", strings.TrimSpace(res.stderr))
	r.expect("unload-explains", res.code == 1 && strings.Contains(res.stderr, "forced") && strings.Contains(res.stderr, "reboot") && took < 30*time.Second,
		"exit 1 within 30 s, saying the patch was forced and a reboot removes it (took %v); got %v", took.Round(time.Millisecond), res)
	loaded, refs := moduleLoaded(name)
	r.expect("unload-kernel", loaded && refs == 1 && readIntOr("/sys/module/"+name+"/refcnt") == 1,
		"the module stays loaded with refcount 1 (/proc/modules %v %d, refcnt %d)", loaded, refs, readIntOr("/sys/module/"+name+"/refcnt"))
	res = rmmod(name)
	r.expect("rmmod-refused", res.code != 0, "the kernel refuses to remove it: %v", res)
	r.note("rmmod-error", "%s", strings.TrimSpace(res.stderr))

	// The other views of a pinned module.
	res = klp("--json", "list")
	var l jsonList
	err = decodeJSON(res.stdout, &l, "loaded")
	state := ""
	for _, e := range l.Loaded {
		if e.Name == name {
			state = e.State
		}
	}
	r.note("list-state", "%s", state)
	r.expect("list", res.code == 0 && err == nil && state != "" && len(sysPatchNames()) == 0,
		"klp list still lists the loaded live patch module %s (state %q) with no patch in sysfs; decode error %v; got %v", name, state, err, res)
	pf := r.klpPreflight("forced", moduleFile("klp_e2e_cmdline"))
	c := pf.check("forced_patch")
	r.expect("preflight-forced", c.Status == "warn" && strings.Contains(c.Reason+strings.Join(c.Details, " "), name) && pf.Result == "warn",
		"preflight warns about the forced module %s: %s %q %q; result %s", name, c.Status, c.Reason, c.Details, pf.Result)
	r.checkStatus("after")
	r.checkPatches("after")
}
