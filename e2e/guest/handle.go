package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// scenarioKlpNames: a patch name typed with '-' is the patch whose module
// name has '_', as the kernel has it (kbuild names klp-e2e-x.ko's module
// klp_e2e_x). Every verb that takes a patch name is given the dashed
// spelling, and the kernel's own files say what happened.
func scenarioKlpNames(r *runner) {
	// A module file named with dashes: its module name is still
	// klp_e2e_cmdline (.gnu.linkonce.this_module).
	dashed := "/tmp/klp-e2e-cmdline.ko"
	src, err := os.ReadFile(moduleFile("klp_e2e_cmdline"))
	r.must(r.expectNoErr("copy", err, "read %s", moduleFile("klp_e2e_cmdline")))
	r.must(r.expectNoErr("copy-dashed", os.WriteFile(dashed, src, 0o644), "write %s", dashed))
	r.atCleanup(func() { _ = os.Remove(dashed) })

	o, _ := r.klpVerb("load-dashed-file", 0, []string{"patched"}, "load", dashed)
	p, err := readSysPatch("klp_e2e_cmdline")
	r.expect("load-dashed-file-kernel", str(o.Patch) == "klp_e2e_cmdline" && err == nil && p.enabled == 1 && p.transition == 0 &&
		!exists(filepath.Join(lpRoot, "klp-e2e-cmdline")) && procCmdline() == cmdlineMarker,
		"the patch is klp_e2e_cmdline in sysfs (no dashed directory), enabled and in effect: outcome %q, %+v %v", str(o.Patch), p, err)

	o, _ = r.klpVerb("wait-dashed", 0, []string{"patched"}, "wait", "klp-e2e-cmdline")
	r.expect("wait-dashed-name", str(o.Patch) == "klp_e2e_cmdline", "the outcome names the kernel's spelling: %q", str(o.Patch))
	res := klp("--json", "list")
	var l jsonList
	err = decodeJSON(res.stdout, &l, "loaded")
	r.expect("list", res.code == 0 && err == nil && len(l.Loaded) == 1 && l.Loaded[0].Name == "klp_e2e_cmdline" && l.Loaded[0].State == "enabled",
		"list shows the patch loaded from the dashed file under the kernel's name; decode error %v; got %v", err, res)

	r.klpVerb("disable-dashed", 0, []string{"unpatched", "removed"}, "disable", "klp-e2e-cmdline")
	gone := waitFor(10*time.Second, func() bool { return !exists(filepath.Join(lpRoot, "klp_e2e_cmdline")) })
	r.expect("disable-dashed-kernel", gone && procCmdline() != cmdlineMarker, "the patch is disabled and freed: dir gone %v, /proc/cmdline %q", gone, procCmdline())
	r.klpVerb("unload-dashed", 0, []string{"removed"}, "unload", "klp-e2e-cmdline")
	loaded, _ := moduleLoaded("klp_e2e_cmdline")
	r.expect("unload-dashed-kernel", !loaded, "the module is gone from /proc/modules")

	// enable reverses an unpatching transition; the names are dashed.
	res = insmod("klp_e2e_target")
	r.must(r.expect("insmod-target", res.code == 0, "%v", res))
	r.klpVerb("load-target-patch", 0, []string{"patched"}, "load", moduleFile("klp_e2e_target_patch"))
	r.must(r.expectNoErr("block", writeFile(patchParams+"block", "1"), "park the kthread in the replacement function"))
	r.must(r.expect("waiting", waitFor(10*time.Second, func() bool { return readIntOr(patchParams+"waiting") == 1 }), "kthread parked"))
	r.klpVerb("disable-dashed-stalled", 3, []string{"left in transition"}, "disable", "--timeout", "2s", "klp-e2e-target-patch")
	p, err = readSysPatch("klp_e2e_target_patch")
	r.expect("unpatching-kernel", err == nil && p.enabled == 0 && p.transition == 1, "unpatching left open: %+v %v", p, err)
	r.klpVerb("enable-dashed", 0, []string{"patched"}, "enable", "--timeout", "30s", "klp-e2e-target-patch")
	r.expectEnabledSettled("enable-dashed-kernel", "klp_e2e_target_patch", "the reverse brought the patch back")
	r.must(r.expectNoErr("release", writeFile(patchParams+"block", "0"), "release the kthread"))
	r.klpVerb("unload-target-patch-dashed", 0, []string{"removed"}, "unload", "--timeout", "30s", "klp-e2e-target-patch")
	loaded, _ = moduleLoaded("klp_e2e_target_patch")
	r.expect("unload-target-patch-kernel", !loaded && !exists(filepath.Join(lpRoot, "klp_e2e_target_patch")), "the patch and its module are gone")
}

// scenarioKlpRace starts a load whose transition blocks and, while it holds
// klp's lock, a second load: the kernel sees exactly one transition, and
// the second load is refused with a clear message instead of meeting
// EBUSY (or a stale "no transition in progress") behind the first.
func scenarioKlpRace(r *runner) {
	kt := r.holdKthread()
	first, err := r.start(nil, "/bin/klp", "load", "--timeout", "60s", "--on-stall", "leave", moduleFile("klp_e2e_target_patch"))
	r.must(r.expectNoErr("start-first", err, "start the first klp load"))
	holder := waitFor(20*time.Second, func() bool {
		b, _ := os.ReadFile("/run/klp.lock")
		return strings.TrimSpace(string(b)) == strconv.Itoa(first.cmd.Process.Pid)
	})
	r.must(r.expect("first-holds-lock", holder, "the first load holds /run/klp.lock"))
	r.must(r.expect("first-transition", waitFor(20*time.Second, func() bool {
		return readIntOr(filepath.Join(lpRoot, "klp_e2e_target_patch", "transition")) == 1
	}), "the first load's transition is open, blocked by the kthread %d", kt.tid))

	second := klp("load", "--timeout", "10s", moduleFile("klp_e2e_cmdline"))
	r.expect("second-refused", second.code == 1 && strings.Count(second.stderr, "\n") == 1 &&
		strings.Contains(second.stderr, "another klp is changing live patches (PID "+strconv.Itoa(first.cmd.Process.Pid)+" holds /run/klp.lock)") &&
		strings.Contains(second.stderr, "nothing was changed"),
		"the second load is refused in one line naming the holder; got %v", second)
	ps, _ := readSysPatches()
	var names []string
	inTransition := 0
	for _, p := range ps {
		names = append(names, p.name)
		if p.transition == 1 {
			inTransition++
		}
	}
	loaded, _ := moduleLoaded("klp_e2e_cmdline")
	r.expect("one-transition", strings.Join(names, " ") == "klp_e2e_target_patch" && inTransition == 1 && !loaded,
		"exactly one patch, in transition, and the second module never reached the kernel: patches %q, in transition %d, klp_e2e_cmdline loaded %v", names, inTransition, loaded)

	r.must(r.expectNoErr("release", writeFile(targetParams+"block_kthread", "0"), "release the kthread"))
	r.expect("first-completes", first.exited(60*time.Second) && first.err == nil && strings.Contains(first.stdoutText(), "klp_e2e_target_patch: patched"),
		"the first load completes once the kthread is released: err %v, stdout %q, stderr %q", first.err, first.stdoutText(), first.stderr.String())
	r.klpVerb("unload", 0, []string{"removed"}, "unload", "klp_e2e_target_patch")
}
