package main

import (
	"path/filepath"
	"strings"
	"time"
)

// Scenarios of klp's life-cycle verbs (load, unload, disable, enable, wait,
// force, list) on the real kernel. Each verb's --json outcome is checked,
// and so is the state the kernel is left in.

// jsonOutcome is the document of a life-cycle command (docs/json.md).
type jsonOutcome struct {
	Action    string   `json:"action"`
	Patch     string   `json:"patch"`
	Result    string   `json:"result"`
	Error     *string  `json:"error"`
	ExitCode  int      `json:"exit_code"`
	KernelLog []string `json:"kernel_log"`
	Notes     []string `json:"notes"`
	Stall     *struct {
		Patch string `json:"patch"`
		Tasks []struct {
			TID      int      `json:"tid"`
			Culprits []string `json:"culprits"`
		} `json:"tasks"`
	} `json:"stall"`
}

type jsonList struct {
	Loaded []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"loaded"`
}

// klpVerb runs "klp --json <args>" and decodes the outcome; the check named
// name passes when the exit status is code, the result is one of results,
// and the JSON exit_code agrees.
func (r *runner) klpVerb(name string, code int, results []string, args ...string) (jsonOutcome, result) {
	res := klp(append([]string{"--json"}, args...)...)
	var o jsonOutcome
	err := decodeJSON(res.stdout, &o, "action", "result", "error", "exit_code")
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
	o, _ := r.klpVerb("load-fails", 1, []string{"", "failed"}, "load", moduleFile("klp_e2e_broken"))
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
}

// scenarioKlpStall loads a patch whose transition cannot finish, with each
// --on-stall policy, then waits for it and unloads it.
func scenarioKlpStall(r *runner) {
	kt := r.holdKthread()
	o, _ := r.klpVerb("load-rollback", 3, []string{"rolled back"}, "load", "--timeout", "3s", moduleFile("klp_e2e_target_patch"))
	found := false
	if o.Stall != nil {
		for _, t := range o.Stall.Tasks {
			found = found || (t.TID == kt.tid && strings.Contains(strings.Join(t.Culprits, " "), "klp_e2e_target_work"))
		}
	}
	r.expect("stall-report", found, "the stall names the kthread %d and klp_e2e_target_work as culprit: %+v", kt.tid, o.Stall)
	gone := waitFor(5*time.Second, func() bool { return !exists(filepath.Join(lpRoot, "klp_e2e_target_patch")) })
	name, _ := kernelTransition()
	r.expect("rolled-back-kernel", gone && name == "", "after the rollback no patch is left and nothing is in transition (dir gone %v, transition %q)", gone, name)
	loaded, _ := moduleLoaded("klp_e2e_target_patch")
	r.note("module-after-rollback", "loaded=%v", loaded)

	r.klpVerb("load-leave", 3, []string{"left in transition"}, "load", "--timeout", "2s", "--on-stall", "leave", moduleFile("klp_e2e_target_patch"))
	p, err := readSysPatch("klp_e2e_target_patch")
	r.expect("left-kernel", err == nil && p.enabled == 1 && p.transition == 1, "the transition is left open: %+v %v", p, err)
	r.klpVerb("wait-stalled", 3, []string{"left in transition"}, "wait", "--timeout", "2s")

	r.must(r.expectNoErr("release", writeFile(targetParams+"block_kthread", "0"), "release the kthread"))
	r.klpVerb("wait", 0, []string{"patched"}, "wait", "--timeout", "10s")
	p, err = readSysPatch("klp_e2e_target_patch")
	r.expect("wait-kernel", err == nil && p.transition == 0, "wait returned after the transition ended: %+v %v", p, err)
	r.klpVerb("unload", 0, []string{"removed"}, "unload", "klp_e2e_target_patch")
	loaded, _ = moduleLoaded("klp_e2e_target_patch")
	r.expect("unload-kernel", !loaded, "module removed")
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

	r.klpVerb("enable-reverses", 0, []string{"patched"}, "enable", "--timeout", "10s", "klp_e2e_target_patch")
	p, err = readSysPatch("klp_e2e_target_patch")
	r.expect("reversed-kernel", err == nil && p.enabled == 1 && p.transition == 0, "the reverse brought the patch back: %+v %v", p, err)

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

// scenarioKlpUser checks that the life-cycle verbs refuse an unprivileged
// user with exit status 5 and change nothing.
func scenarioKlpUser(r *runner) {
	res := runAsUser("/bin/klp", "load", moduleFile("klp_e2e_cmdline"))
	loaded, _ := moduleLoaded("klp_e2e_cmdline")
	r.expect("load-refused", res.code == 5 && !loaded, "as uid %d, load exits 5 (permission) and loads nothing; got %v", userUID, res)
	r.note("load-refused-message", "%s", strings.TrimSpace(res.stderr))
}
