package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The klp-owner scenario: which of two patches of one function runs, on
// kernels without stack_order (6.1, 6.12). Two non-replace patches of
// cmdline_proc_show (klp_e2e_cmdline and livepatch-e2e-no-replace) are
// loaded in both orders: the kernel runs the newest's code, and /proc/modules
// lists the newest module first. klp list infers the owner from that
// order and says the answer is inferred.

// ownerPatch is one of the two patches: how to load it, its module name,
// and what /proc/cmdline prints while its code runs.
type ownerPatch struct {
	file, name, marker string
}

var (
	ownerCmdline   = ownerPatch{moduleFile("klp_e2e_cmdline"), "klp_e2e_cmdline", cmdlineMarker}
	ownerNoReplace = ownerPatch{klpBuildNoReplace.path(), klpBuildNoReplace.name, noReplaceMarker}
)

// procModulesOrder returns the module names of /proc/modules, in its order.
func procModulesOrder() []string {
	b, _ := os.ReadFile("/proc/modules")
	var names []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func scenarioKlpOwner(r *runner) {
	orig := procCmdline()
	for _, order := range [][2]ownerPatch{{ownerCmdline, ownerNoReplace}, {ownerNoReplace, ownerCmdline}} {
		first, second := order[0], order[1]
		tag := "last-" + second.name
		r.klpVerb(tag+"-load-first", 0, []string{"patched"}, "load", first.file)
		r.klpVerb(tag+"-load-second", 0, []string{"patched"}, "load", second.file)

		// The kernel's answer: whose code runs, and the order of /proc/modules.
		mods := procModulesOrder()
		i1, i2 := indexOf(mods, first.name), indexOf(mods, second.name)
		r.expect(tag+"-proc-modules-newest-first", i2 >= 0 && i1 > i2,
			"/proc/modules lists %s (loaded last) at %d, before %s at %d: %q", second.name, i2, first.name, i1, mods[:min(len(mods), 4)])
		r.expect(tag+"-newest-runs", procCmdline() == second.marker,
			"/proc/cmdline prints the marker of %s, loaded last: %q", second.name, procCmdline())
		p1, _ := readSysPatch(first.name)
		p2, _ := readSysPatch(second.name)
		r.expect(tag+"-both-enabled", p1.enabled == 1 && p2.enabled == 1 && p1.stackOrder == nil && p2.stackOrder == nil,
			"both patches enabled, no stack_order on this kernel: %+v %+v", p1, p2)
		r.note(tag+"-proc-modules", "%q, /proc/cmdline %q", mods[:min(len(mods), 3)], procCmdline())

		// klp's answer.
		res := klp("--json", "list")
		var l jsonList
		err := decodeJSON(res.stdout, &l, "functions")
		var by, basis string
		var patches []string
		for _, f := range l.Functions {
			if f.Object == "vmlinux" && f.Function == "cmdline_proc_show" {
				patches = f.Patches
				if f.ProvidedBy != nil {
					by = *f.ProvidedBy
				}
				if f.ProvidedByBasis != nil {
					basis = *f.ProvidedByBasis
				}
			}
		}
		r.expect(tag+"-list-json", res.code == 0 && err == nil && by == second.name && basis == "load_order" && sameSet(patches, []string{first.name, second.name}),
			"provided_by %q (%s), patches %q; want %s by load_order; decode error %v; %v", by, basis, patches, second.name, err, res)
		res = klp("list")
		want := second.name + " (inferred from load order)"
		r.expect(tag+"-list-text", res.code == 0 && strings.Contains(res.stdout, want), "list says %q: %v", want, res)
		r.note(tag+"-list", "%s", res.stdout)

		r.klpVerb(tag+"-unload-second", 0, []string{"removed"}, "unload", second.name)
		r.expect(tag+"-older-runs-again", procCmdline() == first.marker,
			"with %s gone, /proc/cmdline prints %s's marker: %q", second.name, first.name, procCmdline())
		r.klpVerb(tag+"-unload-first", 0, []string{"removed"}, "unload", first.name)
	}
	r.expect("restored", procCmdline() == orig, "/proc/cmdline %q, was %q", procCmdline(), orig)
}

// The klp-suse scenario. Debian's kernels lack SUSE's support facility
// (CONFIG_SUSE_KERNEL_SUPPORTED), which shows as /sys/kernel/supported and
// /proc/sys/kernel/unsupported: there, disable and unload ask nothing and
// the kernel does not taint. Then the facility's file is simulated (a tmpfs
// over /sys/kernel holding /sys/kernel/supported, with the real
// /sys/kernel/livepatch bound back into it): klp asks, refuses without a
// terminal unless --yes, and the refused commands leave the real kernel as
// it was. What a SUSE kernel itself does on the disable (the taint and its
// log line) is modelled by the fake kernel only: no SUSE kernel boots here.

const taintNoSupport = 1 << 31

func kernelTainted() uint64 {
	n, _ := readInt("/proc/sys/kernel/tainted")
	return uint64(n)
}

func scenarioKlpSUSE(r *runner) {
	const name = "klp_e2e_cmdline"
	r.expect("no-facility", !exists("/sys/kernel/supported") && !exists("/proc/sys/kernel/unsupported"),
		"Debian's kernel has neither /sys/kernel/supported nor /proc/sys/kernel/unsupported")

	// Not SUSE: no question, no taint.
	seq := kmsgLastSeq()
	r.klpVerb("load", 0, []string{"patched"}, "load", moduleFile(name))
	res := klp("disable", name)
	r.expect("disable-asks-nothing", res.code == 0 && strings.HasPrefix(res.stdout, name+": ") && !exists(filepath.Join(lpRoot, name)) && !strings.Contains(res.stderr, "SUSE"),
		"disable without --yes and without a terminal just disables: %v", res)
	r.expect("no-taint", kernelTainted()&taintNoSupport == 0 && !kmsgHas(seq, "NO_SUPPORT"),
		"tainted %d (bit 31 clear), no NO_SUPPORT in the kernel log", kernelTainted())
	r.klpVerb("unload-yes", 0, []string{"removed"}, "unload", "--yes", name)

	// The facility's file, simulated.
	r.klpVerb("load-again", 0, []string{"patched"}, "load", moduleFile(name))
	const realSys = "/run/klp-e2e-sys"
	ok := r.expectNoErr("mkdir", os.MkdirAll(realSys, 0o755), "mkdir %s", realSys) &&
		r.expectNoErr("mount-sysfs", syscall.Mount("sysfs", realSys, "sysfs", 0, ""), "a second sysfs on %s", realSys)
	r.must(ok)
	r.atCleanup(func() { _ = syscall.Unmount(realSys, syscall.MNT_DETACH) })
	r.must(r.expectNoErr("mount-tmpfs", syscall.Mount("tmpfs", "/sys/kernel", "tmpfs", 0, "mode=0755"), "a tmpfs over /sys/kernel"))
	r.atCleanup(func() { _ = syscall.Unmount("/sys/kernel", syscall.MNT_DETACH) })
	r.must(r.expectNoErr("bind-livepatch", func() error {
		if err := os.Mkdir(lpRoot, 0o755); err != nil {
			return err
		}
		return syscall.Mount(filepath.Join(realSys, "kernel", "livepatch"), lpRoot, "", syscall.MS_BIND, "")
	}(), "the real %s bound back", lpRoot))
	r.atCleanup(func() { _ = syscall.Unmount(lpRoot, syscall.MNT_DETACH) })
	r.must(r.expectNoErr("supported", os.WriteFile("/sys/kernel/supported", []byte("Yes\n"), 0o444), "/sys/kernel/supported on the tmpfs"))

	before := kernelTainted()
	warning := "this is a SUSE kernel (/sys/kernel/supported exists): disabling live patch " + name + " sets the kernel's NO_SUPPORT taint (N)"
	for _, verb := range []string{"disable", "unload"} {
		res := klp(verb, name)
		p, err := readSysPatch(name)
		loaded, _ := moduleLoaded(name)
		r.expect(verb+"-refused", res.code == 1 && strings.Contains(res.stderr, warning) &&
			strings.Contains(res.stderr, "refusing to "+verb+" "+name+" without confirmation: run on a terminal, or add --yes"),
			"%s without --yes and without a terminal: warned and refused: %v", verb, res)
		r.expect(verb+"-refused-kernel", err == nil && p.enabled == 1 && p.transition == 0 && loaded && procCmdline() == cmdlineMarker && kernelTainted() == before,
			"nothing changed: %+v %v, loaded %v, /proc/cmdline %q, tainted %d (was %d)", p, err, loaded, procCmdline(), kernelTainted(), before)
		if verb == "disable" {
			r.note("refused-stderr", "%s", res.stderr)
		}
	}
	res = klp("--json", "disable", name)
	r.expect("json-refused", res.code == 1 && strings.Contains(res.stdout, `"exit_code": 1`) && strings.Contains(res.stdout, "add --yes"),
		"--json: the error document names --yes: %v", res)
	o, res := r.klpVerb("unload-confirmed", 0, []string{"removed"}, "unload", "--yes", name)
	gone := waitFor(5*time.Second, func() bool { l, _ := moduleLoaded(name); return !l })
	r.expect("unload-confirmed-kernel", gone && strings.Contains(res.stderr, warning) && kernelTainted() == before && len(o.Notes) == 0,
		"--yes: warned, unloaded (gone %v); Debian's kernel sets no taint (tainted %d, was %d), so klp notes none: %q", gone, kernelTainted(), before, o.Notes)
}
