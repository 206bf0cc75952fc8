package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	cmdlineMarker = "klp_e2e_cmdline: this has been live patched"
	replaceMarker = "klp_e2e_replace: this has been live patched"
	targetParams  = "/sys/module/klp_e2e_target/parameters/"
	patchParams   = "/sys/module/klp_e2e_target_patch/parameters/"
	targetProc    = "/proc/klp_e2e_target"
	// blockedHold is how long a blocked transition is watched before the
	// checks: over two of the kernel's one-second retries, so a task that
	// the kernel could switch would have been switched.
	blockedHold = 2500 * time.Millisecond
)

// errnoOf extracts the errno from an error, or 0.
func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// probeReadAsUser reads path in a child process as the unprivileged user and
// returns "OK" or the errno name, so permission checks see the kernel's own
// answer rather than a shell's message.
func probeReadAsUser(path string) string {
	res := runAsUser("/bin/klp-guest", "probe-read", path)
	return strings.TrimSpace(res.stdout)
}

// probeRead is the child side of probeReadAsUser.
func probeRead(path string) {
	_, err := os.ReadFile(path)
	if err != nil {
		fmt.Println(errnoName(errnoOf(err)))
		return
	}
	fmt.Println("OK")
}

func errnoName(e syscall.Errno) string {
	names := map[syscall.Errno]string{
		0: "no-errno", syscall.EACCES: "EACCES", syscall.EPERM: "EPERM", syscall.ENOENT: "ENOENT",
		syscall.EINVAL: "EINVAL", syscall.EBUSY: "EBUSY", syscall.EAGAIN: "EAGAIN", syscall.ENODEV: "ENODEV",
	}
	if n, ok := names[e]; ok {
		return n
	}
	return fmt.Sprintf("errno %d (%v)", int(e), e)
}

// loadPatch inserts a patch module and waits for its transition to end.
func (r *runner) loadPatch(module string, params ...string) (time.Duration, bool) {
	start := time.Now()
	res := insmod(module, params...)
	if !r.expect("insmod-"+module, res.code == 0, "%v", res) {
		return 0, false
	}
	done := waitFor(10*time.Second, func() bool {
		t, err := readInt(filepath.Join(lpRoot, module, "transition"))
		return err == nil && t == 0
	})
	d := time.Since(start)
	r.expect("transition-done-"+module, done, "transition of %s finished %v after insmod", module, d.Round(time.Millisecond))
	return d, done
}

// disablePatch writes 0 to enabled and waits until the directory is gone
// and the module's reference is dropped.
func (r *runner) disablePatch(module string) bool {
	start := time.Now()
	err := writeFile(filepath.Join(lpRoot, module, "enabled"), "0")
	if !r.expectNoErr("disable-"+module, err, "echo 0 > %s/%s/enabled", lpRoot, module) {
		return false
	}
	gone := waitFor(10*time.Second, func() bool { return !exists(filepath.Join(lpRoot, module)) })
	r.note("disable-"+module+"-ms", "%d", time.Since(start).Milliseconds())
	ref := waitFor(5*time.Second, func() bool { n, err := readInt("/sys/module/" + module + "/refcnt"); return err == nil && n == 0 })
	return r.expect("gone-"+module, gone && ref, "sysfs dir removed (%v) and refcnt 0 (%v) after disable", gone, ref)
}

func procCmdline() string {
	s, _ := readTrim("/proc/cmdline")
	return s
}

func scenarioIdle(r *runner) {
	entries, err := os.ReadDir(lpRoot)
	r.expect("sysfs-root", err == nil && len(entries) == 0, "%s exists and is empty: err %v, %d entries", lpRoot, err, len(entries))
	tainted, _ := readTrim("/proc/sys/kernel/tainted")
	r.note("tainted-at-boot", "%s", tainted)

	r.checkStatus("idle")
	r.checkPatches("idle")
	r.checkBlocking("idle", blockingWant{})

	res := klp("blocking")
	r.expect("blocking-empty", res.code == 0 && res.stdout == "", "plain blocking prints nothing when ready; got %v", res)
	res = klp("-v", "blocking")
	r.expect("blocking-v-message", res.code == 0 && res.stdout == "no threads with klp_in_progress set\n",
		"want the SUSE message; got %v", res)
	res = klp("blocking", "-v")
	r.expect("options-after-command", res.code == 0 && res.stdout == "no threads with klp_in_progress set\n",
		"options may follow the command; got %v", res)

	for _, args := range [][]string{{"status"}, {"check"}, {"patches"}, {"blocking"}} {
		res := klpUser(args...)
		want := ""
		if args[0] == "status" {
			want = "ready\n"
		}
		r.expect("user-"+args[0], res.code == 0 && res.stdout == want,
			"as uid %d with nothing in transition: want %q exit 0; got %v", userUID, want, res)
	}
	res = klp("--version")
	r.expect("version", res.code == 0 && strings.HasPrefix(res.stdout, "klp "), "got %v", res)
	res = kgr("--version")
	r.expect("kgr-version", res.code == 0 && strings.HasPrefix(res.stdout, "kgr "), "argv[0] selects kgr; got %v", res)
	res = klp("no-such-command")
	r.expect("unknown-command", res.code != 0 && res.stderr != "", "an unknown command fails with a message; got %v", res)
}

// scenarioSysfsABI checks the kernel ABI items the suite was written to
// confirm (docs/kernel-notes.md records them), with one simple patch loaded.
func scenarioSysfsABI(r *runner) {
	d, ok := r.loadPatch("klp_e2e_cmdline")
	r.must(ok)
	r.note("transition-ms", "%d", d.Milliseconds())
	dir := filepath.Join(lpRoot, "klp_e2e_cmdline")

	modes := map[string]os.FileMode{
		"": 0o755 | os.ModeDir, "enabled": 0o644, "transition": 0o444, "force": 0o200,
		"vmlinux": 0o755 | os.ModeDir, "vmlinux/patched": 0o444, "vmlinux/cmdline_proc_show,1": 0o755 | os.ModeDir,
	}
	if exists(filepath.Join(dir, "replace")) {
		modes["replace"] = 0o444
	}
	var bad []string
	for name, want := range modes {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode() != want {
			bad = append(bad, fmt.Sprintf("%s: %v %v (want %v)", name, fi.Mode(), err, want))
		}
	}
	r.expect("modes", len(bad) == 0, "file modes as in test-sysfs.sh; wrong: %v", bad)

	_, err := os.ReadFile(filepath.Join(dir, "force"))
	r.expect("read-force-eacces", errnoOf(err) == syscall.EACCES, "root reading write-only force: %v (%s)", err, errnoName(errnoOf(err)))
	err = writeFile(filepath.Join(dir, "transition"), "0")
	r.expect("write-transition-eacces", errnoOf(err) == syscall.EACCES, "root writing read-only transition: %v", err)
	err = writeFile(filepath.Join(dir, "force"), "0")
	r.expect("force-0-noop", err == nil, "writing 0 to force is a no-op success: %v", err)
	err = writeFile(filepath.Join(dir, "force"), "1")
	r.expect("force-1-einval", errnoOf(err) == syscall.EINVAL, "writing 1 to force outside a transition: %v", err)
	err = writeFile(filepath.Join(dir, "enabled"), "1")
	r.expect("enable-again-einval", errnoOf(err) == syscall.EINVAL, "writing 1 to an enabled patch: %v", err)
	err = writeFile(filepath.Join(dir, "enabled"), "maybe")
	r.expect("enable-garbage-einval", errnoOf(err) == syscall.EINVAL, "writing a non-boolean to enabled: %v", err)

	r.expect("no-signal", !exists(filepath.Join(dir, "signal")), "signal was removed in 5.1")
	r.expect("force-present", exists(filepath.Join(dir, "force")), "force exists since 4.15")
	rep, _ := optInt(filepath.Join(dir, "replace"))
	so, _ := optInt(filepath.Join(dir, "stack_order"))
	r.note("replace-attr", "%s", fmtIntPtr(rep))
	r.note("stack-order-attr", "%s", fmtIntPtr(so))
	r.expect("replace-value", rep == nil || *rep == 0, "a non-replace patch reads replace=0 where the attribute exists: %s", fmtIntPtr(rep))
	// Which kernel has which attribute (replace since 6.11, stack_order
	// since 6.14), on the kernels at hand.
	r.expect("replace-since-6.11", (rep != nil) == r.kernelAtLeast(6, 11), "replace present: %v on %s", rep != nil, r.kernel)
	r.expect("stack-order-since-6.14", (so != nil) == r.kernelAtLeast(6, 14), "stack_order present: %v on %s", so != nil, r.kernel)
	r.expect("patched-since-6.1", exists(filepath.Join(dir, "vmlinux/patched")) == r.kernelAtLeast(6, 1), "vmlinux/patched present on %s", r.kernel)
	r.expect("patched-1", readIntOr(filepath.Join(dir, "vmlinux/patched")) == 1, "vmlinux/patched after the transition")

	taint, err := readTrim("/sys/module/klp_e2e_cmdline/taint")
	r.expect("module-taint-k", err == nil && strings.Contains(taint, "K"), "/sys/module/klp_e2e_cmdline/taint = %q (%v)", taint, err)
	tainted := readIntOr("/proc/sys/kernel/tainted")
	r.expect("kernel-tainted-k", tainted&32768 != 0, "/proc/sys/kernel/tainted = %d has TAINT_LIVEPATCH (32768)", tainted)
	r.note("tainted", "%d", tainted)
	ref := readIntOr("/sys/module/klp_e2e_cmdline/refcnt")
	r.expect("refcnt-1", ref == 1, "an enabled patch holds a reference on itself: refcnt %d", ref)
	res := rmmod("klp_e2e_cmdline")
	r.expect("rmmod-enabled-fails", res.code != 0, "rmmod of an enabled patch fails: %v", res)
	r.note("rmmod-enabled-error", "%s", strings.TrimSpace(res.stderr))

	var notIdle []string
	for t, s := range patchStates() {
		if s != -1 {
			notIdle = append(notIdle, fmt.Sprintf("%d=%d", t.tid, s))
		}
	}
	r.expect("patch-state-idle", len(notIdle) == 0, "every task reads -1 after the transition; others: %v", notIdle)

	// Per-task files as the unprivileged user: readable sysfs, but other
	// users' patch_state and every stack are refused.
	r.expect("user-reads-sysfs", probeReadAsUser(filepath.Join(dir, "enabled")) == "OK", "enabled is world-readable")
	got := probeReadAsUser("/proc/1/task/1/patch_state")
	r.expect("user-patch-state-root-task", got == "EACCES", "uid %d reading pid 1's patch_state: %s", userUID, got)
	got = probeReadAsUser("/proc/1/task/1/stack")
	r.expect("user-stack-root-task", got == "EACCES", "uid %d reading pid 1's stack: %s", userUID, got)
	got = probeReadAsUser("/proc/self/stack")
	r.note("user-stack-self", "%s", got)
	got = probeReadAsUser("/proc/self/patch_state")
	r.expect("user-patch-state-own", got == "OK", "uid %d reading its own patch_state: %s", userUID, got)

	r.expect("kmsg", kmsgHas(r.kmsgSeq, "enabling patch 'klp_e2e_cmdline'") && kmsgHas(r.kmsgSeq, "'klp_e2e_cmdline': patching complete"),
		"kernel log has the enabling and patching complete lines")
	r.disablePatch("klp_e2e_cmdline")
}

func readIntOr(path string) int {
	v, err := readInt(path)
	if err != nil {
		return -999
	}
	return v
}

func scenarioPlain(r *runner) {
	res := insmod("klp_e2e_plain")
	r.must(r.expect("insmod", res.code == 0, "%v", res))
	taint, err := readTrim("/sys/module/klp_e2e_plain/taint")
	r.expect("module-taint", err == nil && !strings.Contains(taint, "K") && strings.Contains(taint, "O"),
		"a plain out-of-tree module's taint has O but no K: %q (%v)", taint, err)
	r.note("taint", "%s", taint)
	r.checkStatus("plain")
	r.checkPatches("plain")
	res = rmmod("klp_e2e_plain")
	r.expect("rmmod", res.code == 0, "%v", res)
}

func scenarioBroken(r *runner) {
	res := insmod("klp_e2e_broken")
	r.expect("insmod-fails", res.code != 0, "loading a patch of a missing symbol must fail: %v", res)
	r.note("insmod-error", "%s", strings.TrimSpace(res.stderr))
	loaded, _ := moduleLoaded("klp_e2e_broken")
	r.expect("not-loaded", !loaded, "the module is not in /proc/modules")
	r.expect("no-sysfs", !exists(filepath.Join(lpRoot, "klp_e2e_broken")), "no sysfs directory left behind")
	r.expect("kmsg", kmsgHas(r.kmsgSeq, "klp_e2e_no_such_function"), "the kernel log names the missing symbol")
	for _, l := range kmsgSince(r.kmsgSeq) {
		if strings.Contains(l, "livepatch") || strings.Contains(l, "klp_e2e_no_such") {
			r.note("kmsg", "%s", l)
		}
	}
	r.checkStatus("after")
	r.checkPatches("after")
}

func scenarioApply(r *runner) {
	orig := procCmdline()
	_, ok := r.loadPatch("klp_e2e_cmdline")
	r.must(ok)
	r.expect("effect", procCmdline() == cmdlineMarker, "/proc/cmdline reads %q", procCmdline())
	r.checkStatus("applied")
	ps := r.checkPatches("applied")
	r.expect("one-patch", len(ps) == 1 && ps[0].name == "klp_e2e_cmdline", "sysfs holds exactly the patch: %v", sysPatchNames())
	res := klp("-v", "patches")
	r.expect("patches-v-active", strings.HasPrefix(res.stdout, "klp_e2e_cmdline\n    active: 1\n"),
		"-v patches starts with the name and \"    active: 1\"; got %v", res)
	r.checkBlocking("applied", blockingWant{})

	r.must(r.disablePatch("klp_e2e_cmdline"))
	r.expect("effect-gone", procCmdline() == orig, "/proc/cmdline back to %q: %q", orig, procCmdline())
	r.checkStatus("disabled")
	r.checkPatches("disabled")
	loaded, refs := moduleLoaded("klp_e2e_cmdline")
	r.expect("still-loaded", loaded && refs == 0, "a disabled patch module stays loaded with refcount 0 until rmmod: loaded %v refs %d", loaded, refs)
	res = rmmod("klp_e2e_cmdline")
	r.expect("rmmod", res.code == 0, "%v", res)
	loaded, _ = moduleLoaded("klp_e2e_cmdline")
	r.expect("unloaded", !loaded, "module gone from /proc/modules")
}

func scenarioReplace(r *runner) {
	_, ok := r.loadPatch("klp_e2e_cmdline")
	r.must(ok)
	r.checkPatches("first")
	seq := kmsgLastSeq()
	start := time.Now()
	_, ok = r.loadPatch("klp_e2e_replace")
	r.must(ok)
	gone := waitFor(5*time.Second, func() bool { return !exists(filepath.Join(lpRoot, "klp_e2e_cmdline")) })
	r.expect("old-dir-gone", gone, "the replaced patch's directory disappears")
	r.note("old-dir-gone-ms", "%d", time.Since(start).Milliseconds())
	r.expect("effect", procCmdline() == replaceMarker, "/proc/cmdline reads %q", procCmdline())

	loaded, refs := moduleLoaded("klp_e2e_cmdline")
	ok = waitFor(5*time.Second, func() bool { return readIntOr("/sys/module/klp_e2e_cmdline/refcnt") == 0 })
	r.expect("old-module-refcnt-0", loaded && ok, "the replaced module stays loaded (%v) with refcount 0 (/proc/modules %d, refcnt %d)",
		loaded, refs, readIntOr("/sys/module/klp_e2e_cmdline/refcnt"))
	_, refs = moduleLoaded("klp_e2e_cmdline")
	r.expect("old-module-proc-modules-0", refs == 0, "/proc/modules refcount column of the replaced module: %d", refs)

	ps := r.checkPatches("replaced")
	r.expect("only-new", len(ps) == 1 && ps[0].name == "klp_e2e_replace", "sysfs holds only the new patch: %v", sysPatchNames())
	if len(ps) == 1 {
		r.expect("replace-attr", ps[0].replace == nil || *ps[0].replace == 1, "replace attribute of a .replace patch: %s", fmtIntPtr(ps[0].replace))
		r.expect("sympos-1-dir", exists(filepath.Join(lpRoot, "klp_e2e_replace/vmlinux/cmdline_proc_show,1")),
			"explicit old_sympos 1 is named \",1\"")
	}
	r.expect("callbacks-patch", kmsgOrder(seq, "klp_e2e_replace: pre_patch_callback: vmlinux", "klp_e2e_replace: post_patch_callback: vmlinux"),
		"pre_patch then post_patch callbacks ran: %q", kmsgSince(seq))

	res := rmmod("klp_e2e_cmdline")
	r.expect("rmmod-replaced", res.code == 0, "the replaced module can be removed without a disable: %v", res)

	seq = kmsgLastSeq()
	r.must(r.disablePatch("klp_e2e_replace"))
	r.expect("callbacks-unpatch", kmsgOrder(seq, "klp_e2e_replace: pre_unpatch_callback: vmlinux", "klp_e2e_replace: post_unpatch_callback: vmlinux"),
		"pre_unpatch then post_unpatch callbacks ran: %q", kmsgSince(seq))
	r.checkPatches("all-gone")
	res = rmmod("klp_e2e_replace")
	r.expect("rmmod", res.code == 0, "%v", res)
}

// kmsgOrder reports whether the kernel log after seq contains the given
// substrings on lines in that order.
func kmsgOrder(seq uint64, subs ...string) bool {
	i := 0
	for _, l := range kmsgSince(seq) {
		if i < len(subs) && strings.Contains(l, subs[i]) {
			i++
		}
	}
	return i == len(subs)
}

func scenarioUnloadedTarget(r *runner) {
	_, ok := r.loadPatch("klp_e2e_target_patch")
	r.must(ok)
	obj := filepath.Join(lpRoot, "klp_e2e_target_patch", "klp_e2e_target")
	r.expect("patched-0", readIntOr(obj+"/patched") == 0, "object of a module that is not loaded: patched=%d", readIntOr(obj+"/patched"))
	r.expect("func-dirs", exists(obj+"/klp_e2e_target_work,1") && exists(obj+"/klp_e2e_target_read,1"),
		"function directories exist before the target loads")
	r.checkPatches("absent")
	r.checkStatus("absent")

	seq := kmsgLastSeq()
	res := insmod("klp_e2e_target")
	r.must(r.expect("insmod-target", res.code == 0, "%v", res))
	r.expect("patched-1", readIntOr(obj+"/patched") == 1, "after the target loads: patched=%d", readIntOr(obj+"/patched"))
	r.expect("kmsg-applying", kmsgHas(seq, "applying patch 'klp_e2e_target_patch' to loading module 'klp_e2e_target'"),
		"kernel log: %q", kmsgSince(seq))
	out, _ := readTrim(targetProc)
	r.expect("effect", out == "patched", "%s reads %q", targetProc, out)
	r.checkPatches("loaded")
	r.checkStatus("loaded")

	seq = kmsgLastSeq()
	res = rmmod("klp_e2e_target")
	r.must(r.expect("rmmod-target", res.code == 0, "a patched target module can be removed: %v", res))
	r.expect("patched-0-again", readIntOr(obj+"/patched") == 0 && exists(obj),
		"after the target unloads: patched=%d, object dir kept %v", readIntOr(obj+"/patched"), exists(obj))
	r.expect("kmsg-reverting", kmsgHas(seq, "reverting patch 'klp_e2e_target_patch' on unloading module 'klp_e2e_target'"),
		"kernel log: %q", kmsgSince(seq))
	r.checkPatches("unloaded")
}

// holdKthread loads the target module and parks its kthread in
// klp_e2e_target_work(); it returns the kthread.
func (r *runner) holdKthread() taskID {
	res := insmod("klp_e2e_target")
	r.must(r.expect("insmod-target", res.code == 0, "%v", res))
	r.must(r.expectNoErr("block-kthread", writeFile(targetParams+"block_kthread", "1"), "echo 1 > %sblock_kthread", targetParams))
	in := waitFor(5*time.Second, func() bool { return readIntOr(targetParams+"kthread_waiting") == 1 })
	r.must(r.expect("kthread-waiting", in, "the kthread sleeps in klp_e2e_target_work()"))
	t, ok := findTask("klp_e2e_busy")
	r.must(r.expect("kthread-found", ok, "kthread klp_e2e_busy in /proc"))
	return t
}

// startBlockedPatch loads klp_e2e_target_patch while something sleeps in the
// function it replaces, and checks that the transition stays open.
func (r *runner) startBlockedPatch() time.Time {
	start := time.Now()
	res := insmod("klp_e2e_target_patch")
	r.must(r.expect("insmod-patch", res.code == 0, "insmod returns while the transition is open: %v", res))
	time.Sleep(blockedHold)
	tr := readIntOr(filepath.Join(lpRoot, "klp_e2e_target_patch", "transition"))
	r.must(r.expect("stays-blocked", tr == 1, "transition=%d %v after insmod", tr, blockedHold))
	return start
}

func scenarioBlocked(r *runner) {
	// An enabled patch from before, to check that disabling it is refused
	// while another transition is open.
	_, ok := r.loadPatch("klp_e2e_cmdline")
	r.must(ok)
	kt := r.holdKthread()
	r.startBlockedPatch()

	states := patchStates()
	var others []string
	for t, s := range states {
		if t != kt && s != 1 {
			others = append(others, fmt.Sprintf("%d(%s)=%d", t.tid, comm(t), s))
		}
	}
	r.expect("kernel-patch-state", states[kt] == 0 && len(others) == 0,
		"blocking kthread reads patch_state 0 (%d), every other task 1; exceptions %v", states[kt], others)
	stack, err := readTrim(taskPath(kt, "stack"))
	r.expect("kernel-stack", err == nil && strings.Contains(stack, "klp_e2e_target_work"), "root reads the kthread's stack: %q %v", stack, err)

	obj := filepath.Join(lpRoot, "klp_e2e_target_patch", "klp_e2e_target", "patched")
	r.expect("patched-during-transition", readIntOr(obj) == 1,
		"an object reads patched=1 from the start of its patching transition: %d", readIntOr(obj))
	r.checkStatus("blocked")
	r.checkPatches("blocked")
	r.checkBlocking("blocked", blockingWant{tids: []int{kt.tid}, stackFn: "klp_e2e_target_work"})
	res := klp("blocking")
	r.expect("blocking-exact", res.stdout == fmt.Sprintf("%d\n", kt.tid), "exactly the kthread's tid; got %v", res)
	res = klp("-v", "blocking")
	r.expect("blocking-v-exact", res.stdout == fmt.Sprintf("%d [klp_e2e_busy]\n", kt.tid), "tid and [comm]; got %v", res)
	r.checkBlockingAsUser("blocked", kt.tid, nil)
	res = klpUser("status")
	r.expect("user-status", res.code == 0 && res.stdout == "in_progress\n", "status needs no privilege; got %v", res)

	// kgr poke leaves kernel threads alone (signals do not move them) and
	// says so; the transition stays blocked.
	res = kgr("--json", "poke")
	var pk jsonPoke
	err = decodeJSON(res.stdout, &pk, "poked", "skipped", "failed")
	skipped := false
	for _, s := range pk.Skipped {
		skipped = skipped || (s.PID == kt.pid && s.Reason == "kernel thread")
	}
	r.expect("poke-skips-kthread", res.code == 0 && err == nil && len(pk.Poked) == 0 && skipped,
		"kgr --json poke skips the kthread as \"kernel thread\" and pokes nothing; decode error %v; got %v", err, res)
	time.Sleep(1500 * time.Millisecond)
	r.expect("still-blocked-after-poke", readIntOr(filepath.Join(lpRoot, "klp_e2e_target_patch", "transition")) == 1,
		"poking cannot release a kthread")

	// Refused while the transition is open.
	res = insmod("klp_e2e_replace")
	r.expect("insmod-ebusy", res.code != 0 && strings.Contains(strings.ToLower(res.stderr), "busy"),
		"another patch cannot load during a transition (EBUSY): %v", res)
	loaded, _ := moduleLoaded("klp_e2e_replace")
	r.expect("ebusy-no-trace", !loaded && !exists(filepath.Join(lpRoot, "klp_e2e_replace")), "the refused patch left nothing behind")
	err = writeFile(filepath.Join(lpRoot, "klp_e2e_cmdline", "enabled"), "0")
	r.expect("disable-other-ebusy", errnoOf(err) == syscall.EBUSY, "disabling another patch during a transition: %v", err)

	// Release the kthread: the kernel's next retry completes the transition.
	released := time.Now()
	r.must(r.expectNoErr("release", writeFile(targetParams+"block_kthread", "0"), "echo 0 > %sblock_kthread", targetParams))
	done := waitFor(10*time.Second, func() bool {
		return readIntOr(filepath.Join(lpRoot, "klp_e2e_target_patch", "transition")) == 0
	})
	r.expect("completes", done, "transition completes after the release (%v)", time.Since(released).Round(time.Millisecond))
	r.note("release-to-complete-ms", "%d", time.Since(released).Milliseconds())
	var notIdle []string
	for t, s := range patchStates() {
		if s != -1 {
			notIdle = append(notIdle, fmt.Sprintf("%d=%d", t.tid, s))
		}
	}
	r.expect("patch-state-idle", len(notIdle) == 0, "every task reads -1 after completion; others %v", notIdle)
	r.checkStatus("released")
	r.checkBlocking("released", blockingWant{})
	out, _ := readTrim(targetProc)
	r.expect("effect", out == "patched", "%s reads %q", targetProc, out)
}

// parkInReplacement loads the target module and its patch, and parks the
// target's kthread inside the patch's replacement function, where a
// transition away from the patch must wait for it. It returns the kthread.
func (r *runner) parkInReplacement() taskID {
	res := insmod("klp_e2e_target")
	r.must(r.expect("insmod-target", res.code == 0, "%v", res))
	_, ok := r.loadPatch("klp_e2e_target_patch")
	r.must(ok)
	r.must(r.expectNoErr("block", writeFile(patchParams+"block", "1"), "echo 1 > %sblock", patchParams))
	r.must(r.expect("waiting", waitFor(5*time.Second, func() bool { return readIntOr(patchParams+"waiting") == 1 }),
		"the kthread sleeps in the patched function"))
	kt, ok := findTask("klp_e2e_busy")
	r.must(r.expect("kthread-found", ok, "kthread klp_e2e_busy in /proc"))
	return kt
}

func scenarioUnpatchBlocked(r *runner) {
	// The kthread sleeps in the patch's own replacement function, which an
	// unpatching transition must wait for.
	kt := r.parkInReplacement()

	r.must(r.expectNoErr("disable", writeFile(filepath.Join(lpRoot, "klp_e2e_target_patch", "enabled"), "0"), "echo 0 > enabled"))
	time.Sleep(blockedHold)
	p, err := readSysPatch("klp_e2e_target_patch")
	r.must(r.expect("stays-blocked", err == nil && p.enabled == 0 && p.transition == 1,
		"unpatching in progress reads enabled=0 transition=1: %+v %v", p, err))
	states := patchStates()
	var others []string
	for t, s := range states {
		if t != kt && s != 0 {
			others = append(others, fmt.Sprintf("%d(%s)=%d", t.tid, comm(t), s))
		}
	}
	r.expect("kernel-patch-state", states[kt] == 1 && len(others) == 0,
		"unpatching: the kthread stays at 1 (%d), every other task reads 0; exceptions %v", states[kt], others)
	obj := filepath.Join(lpRoot, "klp_e2e_target_patch", "klp_e2e_target", "patched")
	r.expect("patched-during-unpatching", readIntOr(obj) == 1,
		"an object stays patched=1 until its unpatching transition ends: %d", readIntOr(obj))
	r.checkStatus("unpatching")
	r.checkPatches("unpatching")
	r.checkBlocking("unpatching", blockingWant{tids: []int{kt.tid}, stackFn: "klp_e2e_patched_work"})

	r.must(r.expectNoErr("release", writeFile(patchParams+"block", "0"), "echo 0 > %sblock", patchParams))
	gone := waitFor(10*time.Second, func() bool { return !exists(filepath.Join(lpRoot, "klp_e2e_target_patch")) })
	r.expect("completes", gone, "the unpatching transition completes and the directory goes")
	r.checkStatus("unpatched")
	out, _ := readTrim(targetProc)
	r.expect("effect-gone", out == "unpatched", "%s reads %q", targetProc, out)
}

// startReader parks an unprivileged `cat` of /proc/klp_e2e_target in the
// read handler, in its own process group.
func (r *runner) startReader() *child {
	res := insmod("klp_e2e_target")
	r.must(r.expect("insmod-target", res.code == 0, "%v", res))
	r.must(r.expectNoErr("block-read", writeFile(targetParams+"block_read", "1"), "echo 1 > %sblock_read", targetParams))
	c, err := r.start(&syscall.Credential{Uid: userUID, Gid: userUID}, "/bin/cat", targetProc)
	r.must(r.expectNoErr("start-reader", err, "cat %s as uid %d", targetProc, userUID))
	in := waitFor(5*time.Second, func() bool { return readIntOr(targetParams+"read_waiting") == 1 })
	r.must(r.expect("reader-waiting", in, "cat sleeps in klp_e2e_target_read()"))
	return c
}

func scenarioPoke(r *runner) {
	c := r.startReader()
	pid := c.cmd.Process.Pid
	start := r.startBlockedPatch()
	doc := r.checkBlocking("before", blockingWant{tids: []int{pid}, stackFn: "klp_e2e_target_read"})
	for _, t := range doc.Tasks {
		r.expect("json-user-task", !t.KernelThread && t.Cmdline == "/bin/cat "+targetProc,
			"the reader is a user task with its command line: %+v", t)
	}
	res := klp("-v", "blocking")
	r.expect("blocking-v-exact", res.stdout == fmt.Sprintf("%d /bin/cat %s\n", pid, targetProc), "got %v", res)
	// The user owns the reader, so it sees it; root's tasks stay unreadable.
	r.checkBlockingAsUser("before", 0, []int{pid})

	// A bystander in its own process group that reports any SIGCONT: poke
	// must signal only blocking processes.
	by, err := r.start(&syscall.Credential{Uid: userUID, Gid: userUID}, "/bin/sh", "-c",
		`trap "echo got-SIGCONT" CONT; echo ready; while :; do sleep 0.05; done`)
	r.must(r.expectNoErr("start-bystander", err, "start a process that does not block"))
	r.must(r.expect("bystander-ready", waitFor(5*time.Second, func() bool { return strings.Contains(by.stdoutText(), "ready") }),
		"bystander started"))

	seq := kmsgLastSeq()
	poked := time.Now()
	res = kgr("--json", "poke")
	var pk jsonPoke
	err = decodeJSON(res.stdout, &pk, "poked", "skipped", "failed")
	r.expect("poke", res.code == 0 && err == nil && len(pk.Poked) == 1 && pk.Poked[0].PID == pid && pk.Poked[0].Comm == "cat" && len(pk.Failed) == 0,
		"kgr --json poke pokes exactly the reader %d; decode error %v; got %v", pid, err, res)
	// A loaded machine may take several of the kernel's one-second retries;
	// the kernel-log check below still tells poke's doing from the
	// kernel's own signal.
	done := waitFor(20*time.Second, func() bool {
		return readIntOr(filepath.Join(lpRoot, "klp_e2e_target_patch", "transition")) == 0
	})
	elapsed := time.Since(start)
	r.note("poke-to-complete-ms", "%d", time.Since(poked).Milliseconds())
	r.note("insmod-to-complete-ms", "%d", elapsed.Milliseconds())
	// The kernel sends its own fake signal about 15 s into a transition and
	// logs "signaling remaining tasks" when it does; without that line the
	// completion is poke's doing.
	signaled := kmsgHas(seq, "signaling remaining tasks")
	r.expect("poke-completes", done && !signaled, "transition completed %v after poke (%v after insmod) without the kernel's fake signal (signaled: %v)",
		time.Since(poked).Round(time.Millisecond), elapsed.Round(time.Millisecond), signaled)
	exited := c.exited(5 * time.Second)
	r.expect("reader-restarted", exited && c.err == nil && c.stdout.String() == "patched\n",
		"the stopped and continued read restarts in the patched function: exited %v, err %v, stdout %q, stderr %q",
		exited, c.err, c.stdout.String(), c.stderr.String())
	// A bystander that poke stopped shows state T in the kernel's
	// /proc/<pid>/stat and would stay stopped; one that it stopped and
	// continued prints got-SIGCONT (its trap runs within its 50 ms sleep).
	time.Sleep(300 * time.Millisecond)
	byPID := by.cmd.Process.Pid
	state := taskState(taskID{pid: byPID, tid: byPID})
	r.expect("bystander-untouched", (state == "S" || state == "R") && !strings.Contains(by.stdoutText(), "got-SIGCONT"),
		"a process that does not block gets no signal: the kernel shows it in state %q (want S or R, never T); its output %q",
		state, by.stdoutText())
	r.checkStatus("poked")
	r.checkBlocking("poked", blockingWant{})
}

// scenarioFakeSignal leaves the same user-space blocker alone: the kernel
// signals the remaining tasks itself about 15 s into the transition.
func scenarioFakeSignal(r *runner) {
	c := r.startReader()
	seq := kmsgLastSeq()
	start := r.startBlockedPatch()
	done := waitFor(30*time.Second, func() bool {
		return readIntOr(filepath.Join(lpRoot, "klp_e2e_target_patch", "transition")) == 0
	})
	elapsed := time.Since(start)
	r.note("insmod-to-complete-ms", "%d", elapsed.Milliseconds())
	r.expect("completes", done && elapsed > 10*time.Second && elapsed < 25*time.Second,
		"the kernel's fake signal completes the transition about 15 s in: %v", elapsed.Round(time.Millisecond))
	r.expect("kmsg", kmsgHas(seq, "signaling remaining tasks"), "kernel log: %q", kmsgSince(seq))
	exited := c.exited(5 * time.Second)
	r.expect("reader-restarted", exited && c.stdout.String() == "patched\n",
		"the read restarted in the patched function: exited %v stdout %q", exited, c.stdout.String())
}

// scenarioForce forces a blocked patching transition and checks that the
// patch can still be disabled and removed afterwards (since about 5.19 only
// patches being removed are marked forced).
func scenarioForce(r *runner) {
	r.holdKthread()
	r.startBlockedPatch()
	seq := kmsgLastSeq()
	dir := filepath.Join(lpRoot, "klp_e2e_target_patch")
	r.must(r.expectNoErr("force", writeFile(dir+"/force", "1"), "echo 1 > force during the transition"))
	done := waitFor(30*time.Second, func() bool { return readIntOr(dir+"/transition") == 0 })
	r.expect("completes", done, "a forced transition completes")
	r.expect("kmsg", kmsgHas(seq, "forcing remaining tasks to the patched state"), "kernel log: %q", kmsgSince(seq))
	r.checkStatus("forced")
	r.must(r.expectNoErr("release", writeFile(targetParams+"block_kthread", "0"), "release the kthread"))
	r.must(r.disablePatch("klp_e2e_target_patch"))
	res := rmmod("klp_e2e_target_patch")
	r.expect("rmmod", res.code == 0, "a patch forced on is removable after a clean disable: %v", res)
}

// scenarioReplaceNops holds an atomic-replace transition open to see the
// "nop" entries: while it runs, the new patch also lists the objects and
// functions that only the replaced patch changed; they go when it ends.
func scenarioReplaceNops(r *runner) {
	// The kthread sleeps in klp_e2e_target_patch's function: the replace
	// transition must move it back to the original code through a nop.
	kt := r.parkInReplacement()

	res := insmod("klp_e2e_replace")
	r.must(r.expect("insmod-replace", res.code == 0, "%v", res))
	time.Sleep(blockedHold)
	p, err := readSysPatch("klp_e2e_replace")
	r.must(r.expect("stays-blocked", err == nil && p.transition == 1, "replace transition open: %+v %v", p, err))
	r.expect("nops-present", sysObjectSummary(p.objects) ==
		"klp_e2e_target patched=true [klp_e2e_target_read,1 klp_e2e_target_work,1]; vmlinux patched=true [cmdline_proc_show,1]",
		"during the transition the new patch lists nop entries for the replaced patch's functions: %s", sysObjectSummary(p.objects))
	r.expect("old-still-listed", exists(filepath.Join(lpRoot, "klp_e2e_target_patch")), "the replaced patch stays until the end")
	r.checkStatus("replacing")
	r.checkPatches("replacing")
	r.checkBlocking("replacing", blockingWant{tids: []int{kt.tid}, stackFn: "klp_e2e_patched_work"})

	r.must(r.expectNoErr("release", writeFile(patchParams+"block", "0"), "echo 0 > %sblock", patchParams))
	done := waitFor(10*time.Second, func() bool {
		return readIntOr(filepath.Join(lpRoot, "klp_e2e_replace", "transition")) == 0 &&
			!exists(filepath.Join(lpRoot, "klp_e2e_target_patch"))
	})
	r.expect("completes", done, "the replace transition completes and the old patch's directory goes")
	p, err = readSysPatch("klp_e2e_replace")
	r.expect("nops-gone", err == nil && sysObjectSummary(p.objects) == "vmlinux patched=true [cmdline_proc_show,1]",
		"after the transition only the patch's own objects remain: %s %v", sysObjectSummary(p.objects), err)
	r.checkPatches("replaced")
	out, _ := readTrim(targetProc)
	r.expect("target-unpatched", out == "unpatched", "the replaced patch's change is gone: %s reads %q", targetProc, out)
}

// kernelAtLeast compares the running kernel's major.minor with the given
// version; it is used only to state which attributes a version must have.
func (r *runner) kernelAtLeast(major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(r.kernel, "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}
