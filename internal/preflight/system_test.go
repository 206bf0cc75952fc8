package preflight

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/kmod"
	"github.com/klp-project/klp/livepatch"
	"github.com/klp-project/klp/modinfo"
)

const (
	lpDir      = "/sys/kernel/livepatch"
	procModPth = "/proc/modules"
	rel61      = "6.1.0-56-cloud-amd64"
	bootConfig = "/boot/config-" + rel61
)

func TestLivepatchSupportedFacts(t *testing.T) {
	absent := func(edit func(f *facts)) facts {
		f := facts{iface: livepatch.InterfaceNone, livepatchDir: lpDir, sysKernel: dir{path: "/sys/kernel"},
			config: bad[*kconfig]("", notFound("neither "+bootConfig+" nor /proc/config.gz exists"))}
		if edit != nil {
			edit(&f)
		}
		return f
	}
	fail := Check{Status: Fail, Reason: lpDir + " does not exist: the kernel has no live patching", Fix: "boot a kernel built with CONFIG_LIVEPATCH=y"}
	with := func(c Check, reason string, details ...string) Check {
		c.Reason += reason
		c.Details = details
		return c
	}
	testCheck(t, livepatchSupported, []factCase{
		{"upstream", facts{iface: livepatch.InterfaceLivepatch, livepatchDir: lpDir},
			Check{Status: Pass, Reason: "/sys/kernel/livepatch exists"}},
		{"kgraft", facts{iface: livepatch.InterfaceKGraft, livepatchDir: lpDir, kgraftDir: "/sys/kernel/kgraft"},
			Check{Status: Warn, Reason: "this kernel has SLE 12's kGraft interface (/sys/kernel/kgraft), not the upstream live patching one that klp load and these checks assume",
				Fix: "load kGraft patches with SUSE's tools; klp status, patches and blocking do read kGraft"}},
		{"sysfs not mounted", absent(func(f *facts) { f.sysKernel.empty = true }),
			Check{Status: Skip, Reason: "sysfs does not seem to be mounted: /sys/kernel is missing or empty", Fix: "mount -t sysfs sysfs /sys, or point --sysfs at a sysfs tree"}},
		{"absent, config unknown", absent(nil), fail},
		{"absent, built in", absent(func(f *facts) {
			f.config = reading[*kconfig]{v: &kconfig{values: map[string]string{"CONFIG_LIVEPATCH": "y"}, source: "/proc/config.gz"}}
		}), with(fail, "", "CONFIG_LIVEPATCH=y in /proc/config.gz, yet the directory is missing: live patching failed to initialise (see the boot log)")},
		{"absent, not built", absent(func(f *facts) {
			f.config = reading[*kconfig]{v: &kconfig{values: map[string]string{"CONFIG_LIVEPATCH": "m"}, source: bootConfig}}
		}), with(fail, "", "CONFIG_LIVEPATCH is not set in "+bootConfig)},
		{"absent, livepatch module", absent(func(f *facts) { f.module = &modinfo.Module{Livepatch: true} }),
			with(fail, " and refuses livepatch modules (ENOEXEC)")},
		{"absent, ordinary module", absent(func(f *facts) { f.module = &modinfo.Module{} }), fail},
	})
}

func TestModulesDisabledFacts(t *testing.T) {
	const path = "/proc/sys/kernel/modules_disabled"
	missing := func(listed, procEmpty bool) facts {
		return facts{modulesDisabled: bad[string](path, fs.ErrNotExist), modules: reading[kmod.Modules]{path: procModPth},
			modulesListed: listed, procSysKernel: dir{path: "/proc/sys/kernel", empty: procEmpty}}
	}
	notExist := Check{Status: Skip, Reason: path + " does not exist", Fix: "check the --sysfs and --procfs trees (the running kernel always has this file)"}
	testCheck(t, modulesDisabled, []factCase{
		{"allowed", facts{modulesDisabled: val(path, "0")},
			Check{Status: Pass, Reason: "module loading is allowed (kernel.modules_disabled=0)"}},
		{"disabled", facts{modulesDisabled: val(path, "1")},
			Check{Status: Fail, Reason: "kernel.modules_disabled is 1: the kernel refuses every module load (EPERM)", Fix: "reboot; the setting cannot be turned off at run time"}},
		{"garbage", facts{modulesDisabled: val(path, "2")},
			Check{Status: Skip, Reason: path + ` holds "2", not 0 or 1`, Fix: "check the --procfs tree"}},
		{"no module support", missing(false, false),
			Check{Status: Fail, Reason: "the kernel has no loadable module support (neither " + path + " nor /proc/modules exists)",
				Fix: "boot a kernel built with CONFIG_MODULES=y and CONFIG_LIVEPATCH=y"}},
		{"missing, modules listed", missing(true, false), notExist},
		{"missing, procfs not mounted", missing(false, true), notExist},
		{"unreadable", facts{modulesDisabled: bad[string](path, fs.ErrPermission)},
			Check{Status: Skip, Reason: path + " is not readable (permission denied)", Fix: "run as root"}},
		{"read error", facts{modulesDisabled: bad[string](path, errIO)},
			Check{Status: Skip, Reason: "cannot read " + path + ": input/output error", Fix: "check that the file is readable"}},
	})
}

func TestFtraceEnabledFacts(t *testing.T) {
	const path = "/proc/sys/kernel/ftrace_enabled"
	testCheck(t, ftraceEnabled, []factCase{
		{"on", facts{ftraceEnabled: val(path, "1")}, Check{Status: Pass, Reason: "kernel.ftrace_enabled is 1"}},
		{"off", facts{ftraceEnabled: val(path, "0")},
			Check{Status: Fail, Reason: "kernel.ftrace_enabled is 0: the kernel cannot register the patch's ftrace handlers and refuses the load (EBUSY)", Fix: "sysctl kernel.ftrace_enabled=1"}},
		{"garbage", facts{ftraceEnabled: val(path, "yes")},
			Check{Status: Skip, Reason: path + ` holds "yes", not 0 or 1`, Fix: "check the --procfs tree"}},
		{"missing", facts{ftraceEnabled: bad[string](path, fs.ErrNotExist)},
			Check{Status: Skip, Reason: path + " does not exist (a kernel without the function tracer cannot live patch)", Fix: "check the --procfs tree; a kernel that can live patch has this file"}},
		{"unreadable", facts{ftraceEnabled: bad[string](path, fs.ErrPermission)},
			Check{Status: Skip, Reason: path + " is not readable (permission denied)", Fix: "run as root"}},
		{"read error", facts{ftraceEnabled: bad[string](path, errIO)},
			Check{Status: Skip, Reason: "cannot read " + path + ": input/output error", Fix: "check that the file is readable"}},
	})
}

func TestReliableStacktraceFacts(t *testing.T) {
	config := func(release string, values ...string) facts {
		v := map[string]string{}
		for _, o := range values {
			k, val, ok := strings.Cut(o, "=")
			if !ok {
				val = "y"
			}
			v[k] = val
		}
		return facts{release: val("/proc/sys/kernel/osrelease", release), config: reading[*kconfig]{v: &kconfig{values: v, source: bootConfig}}}
	}
	warn := func(missing string) Check {
		return Check{Status: Warn,
			Reason: missing + " not set (" + bootConfig + "): tasks switch only when they leave the kernel, get a signal or go idle, so a transition may never complete",
			Fix:    "expect to wait; a stalled transition can be reversed (klp disable) or, as a last resort, forced (klp force)"}
	}
	refused := func(rel string) Check {
		return Check{Status: Fail,
			Reason: "CONFIG_HAVE_RELIABLE_STACKTRACE not set (" + bootConfig + "): kernels 4.16 to 5.0 refuse to enable a patch without reliable stack traces (ENOSYS), and this is " + rel + " (no file shows the rule: the version decides)",
			Fix:    "use a kernel with reliable stack traces"}
	}
	notFoundErr := notFound("neither " + bootConfig + " nor /proc/config.gz exists")
	testCheck(t, reliableStacktrace, []factCase{
		{"set", config(rel61, "CONFIG_HAVE_RELIABLE_STACKTRACE", "CONFIG_STACKTRACE"),
			Check{Status: Pass, Reason: "CONFIG_HAVE_RELIABLE_STACKTRACE and CONFIG_STACKTRACE are set (" + bootConfig + ")"}},
		{"no reliable stack traces on 6.1", config(rel61, "CONFIG_STACKTRACE"), warn("CONFIG_HAVE_RELIABLE_STACKTRACE")},
		{"no stack traces on 6.1", config(rel61, "CONFIG_HAVE_RELIABLE_STACKTRACE"), warn("CONFIG_STACKTRACE")},
		{"neither on 6.1", config(rel61), warn("CONFIG_HAVE_RELIABLE_STACKTRACE and CONFIG_STACKTRACE")},
		{"4.15 warns", config("4.15.0-1-amd64", "CONFIG_STACKTRACE"), warn("CONFIG_HAVE_RELIABLE_STACKTRACE")},
		{"4.16 refuses", config("4.16.0-1-amd64", "CONFIG_STACKTRACE"), refused("4.16.0-1-amd64")},
		{"4.19 refuses", config("4.19.0-27-amd64", "CONFIG_STACKTRACE"), refused("4.19.0-27-amd64")},
		{"5.0 refuses", config("5.0.0", "CONFIG_STACKTRACE"), refused("5.0.0")},
		{"5.1 warns", config("5.1.0", "CONFIG_STACKTRACE"), warn("CONFIG_HAVE_RELIABLE_STACKTRACE")},
		{"release unknown warns", facts{release: bad[string]("/proc/sys/kernel/osrelease", fs.ErrNotExist),
			config: reading[*kconfig]{v: &kconfig{values: map[string]string{"CONFIG_STACKTRACE": "y"}, source: bootConfig}}},
			warn("CONFIG_HAVE_RELIABLE_STACKTRACE")},
		{"module, not built in", config(rel61, "CONFIG_STACKTRACE", "CONFIG_HAVE_RELIABLE_STACKTRACE=m"), warn("CONFIG_HAVE_RELIABLE_STACKTRACE")},
		{"no config", facts{release: val("/proc/sys/kernel/osrelease", rel61), config: bad[*kconfig]("", notFoundErr)},
			Check{Status: Skip, Reason: "kernel configuration not found: neither " + bootConfig + " nor /proc/config.gz exists",
				Fix: "load the configs module (modprobe configs) for /proc/config.gz, or install /boot/config-" + rel61}},
		{"no config, release unknown", facts{release: bad[string]("/proc/sys/kernel/osrelease", fs.ErrNotExist),
			config: bad[*kconfig]("", fmt.Errorf("/proc/config.gz does not exist, and the kernel release is unknown: %w", fs.ErrNotExist))},
			Check{Status: Skip, Reason: "kernel configuration not found: /proc/config.gz does not exist, and the kernel release is unknown: file does not exist",
				Fix: "load the configs module (modprobe configs) for /proc/config.gz, or install the kernel's config file in /boot"}},
	})
}

const (
	lockdownPath = "/sys/kernel/security/lockdown"
	sigPath      = "/sys/module/module/parameters/sig_enforce"
)

// signedBy is a module signed by key with SHA-256.
func signedBy(key string) *modinfo.Module {
	return &modinfo.Module{Name: "p", Signature: &modinfo.Signature{IDType: "pkcs7", Signer: key, HashAlgorithm: "sha256"}}
}

func TestLockdownFacts(t *testing.T) {
	level := func(s string, m *modinfo.Module) facts {
		return facts{lockdown: val(lockdownPath, s), module: m}
	}
	const integrity = "none [integrity] confidentiality"
	refused := func(lvl string) Check {
		return Check{Status: Fail,
			Reason: "locked down (" + lvl + ") and the module has no usable signature: the kernel refuses it (EPERM, \"unsigned module loading is restricted\")",
			Fix:    "sign the module with a key the kernel trusts (built in, or enrolled with mokutil --import)"}
	}
	testCheck(t, lockdown, []factCase{
		{"securityfs not mounted", facts{lockdown: bad[string](lockdownPath, fs.ErrNotExist), securityfs: dir{path: "/sys/kernel/security", empty: true}},
			Check{Status: Skip, Reason: "securityfs is not mounted (/sys/kernel/security is empty), so the lockdown state is unknown",
				Fix: "mount -t securityfs securityfs /sys/kernel/security"}},
		{"no lockdown LSM", facts{lockdown: bad[string](lockdownPath, fs.ErrNotExist), securityfs: dir{path: "/sys/kernel/security"}},
			Check{Status: Pass, Reason: "no lockdown LSM (" + lockdownPath + " does not exist)"}},
		{"unreadable", facts{lockdown: bad[string](lockdownPath, fs.ErrPermission)},
			Check{Status: Skip, Reason: lockdownPath + " is not readable (permission denied)", Fix: "run as root"}},
		{"no level", level("none integrity", nil),
			Check{Status: Skip, Reason: "cannot read " + lockdownPath + ": " + lockdownPath + ` holds "none integrity", with no [level]`, Fix: "check that the file is readable"}},
		{"none", level("[none] integrity confidentiality", signedBy("")),
			Check{Status: Pass, Reason: "the kernel is not locked down (none)"}},
		{"integrity, no module", level(integrity, nil),
			Check{Status: Pass, Reason: "locked down (integrity): only modules signed with a key the kernel trusts can be loaded"}},
		{"confidentiality, unsigned", level("none integrity [confidentiality]", &modinfo.Module{Name: "p"}), refused("confidentiality")},
		{"integrity, old signature format", level(integrity, &modinfo.Module{Name: "p", Signature: &modinfo.Signature{IDType: "pgp"}}), refused("integrity")},
		{"integrity, signed", level(integrity, signedBy("Build key")),
			Check{Status: Pass, Reason: `locked down (integrity); the module is signed by "Build key" (sha256) (whether the kernel trusts the key: see Module signatures)`}},
	})
}

func TestSigEnforceFacts(t *testing.T) {
	state := func(s string, m *modinfo.Module) facts {
		return facts{sigEnforce: val(sigPath, s), module: m, lockdown: val(lockdownPath, "[none] integrity confidentiality")}
	}
	locked := func(f facts) facts {
		f.lockdown = val(lockdownPath, "none [integrity] confidentiality")
		return f
	}
	unsigned := &modinfo.Module{Name: "p"}
	pgp := &modinfo.Module{Name: "p", Signature: &modinfo.Signature{IDType: "pgp"}}
	unparsable := signedBy("K")
	unparsable.Signature.Undetermined = "cannot parse PKCS#7 signature"
	rejected := func(what string) Check {
		return Check{Status: Fail,
			Reason: "signatures are enforced and " + what + ": the kernel refuses it (EKEYREJECTED, \"Loading of unsigned module is rejected\")",
			Fix:    "sign the module with a key the kernel trusts (scripts/sign-file sha256 KEY CERT FILE.ko)"}
	}
	taints := func(what string) Check {
		return Check{Status: Warn,
			Reason: what + ": the kernel loads it but taints itself (E, \"module verification failed: signature and/or required key missing\")",
			Fix:    "sign the module with a key the kernel trusts to avoid the taint"}
	}
	trusted := func(sig, why string) Check {
		return Check{Status: Warn,
			Reason: "the module is " + sig + " and a trusted signature is required (" + why + "): it loads only if the kernel trusts that key, which klp cannot see",
			Fix:    "make sure the signing certificate is in the kernel's keyrings (built in, or enrolled with mokutil --import); otherwise the load fails (EKEYREJECTED or EPERM)"}
	}
	enforced := Check{Status: Pass, Reason: "enforced (module.sig_enforce=Y): only modules signed with a key the kernel trusts load"}
	optional := Check{Status: Pass, Reason: "not enforced (module.sig_enforce=N): an unsigned module loads and taints the kernel (E)"}
	const pgpWhat = "the module's signature is pgp, which kernels since 4.3 do not accept (ENOPKG)"
	testCheck(t, sigEnforce, []factCase{
		{"sysfs not mounted", facts{sigEnforce: bad[string](sigPath, fs.ErrNotExist), sysModule: dir{path: "/sys/module", empty: true}},
			Check{Status: Skip, Reason: sigPath + " does not exist, nor does /sys/module: file does not exist",
				Fix: "mount -t sysfs sysfs /sys, or point --sysfs at a sysfs tree"}},
		{"unreadable", facts{sigEnforce: bad[string](sigPath, fs.ErrPermission)},
			Check{Status: Skip, Reason: sigPath + " is not readable (permission denied)", Fix: "run as root"}},
		{"read error", facts{sigEnforce: bad[string](sigPath, errIO)},
			Check{Status: Skip, Reason: "input/output error", Fix: "check that the file is readable"}},
		{"garbage", state("maybe", nil),
			Check{Status: Skip, Reason: sigPath + ` holds "maybe", not Y or N`, Fix: "check that the file is readable"}},
		{"no MODULE_SIG", facts{sigEnforce: bad[string](sigPath, fs.ErrNotExist), sysModule: dir{path: "/sys/module"}, module: unsigned},
			Check{Status: Pass, Reason: "the kernel does not check module signatures (no module.sig_enforce parameter: built without CONFIG_MODULE_SIG)"}},
		{"Y", state("Y", nil), enforced},
		{"y", state("y", nil), enforced},
		{"1", state("1", nil), enforced},
		{"N", state("N", nil), optional},
		{"n", state("n", nil), optional},
		{"0", state("0", nil), optional},
		{"enforced, unsigned", state("Y", unsigned), rejected("the module is unsigned")},
		{"enforced, old format", state("Y", pgp), rejected(pgpWhat)},
		{"optional, unsigned", state("N", unsigned), taints("the module is unsigned")},
		{"optional, old format", state("N", pgp), taints(pgpWhat)},
		{"locked down, unsigned", locked(state("N", unsigned)), taints("the module is unsigned")},
		{"unparsable signature", state("Y", unparsable),
			Check{Status: Warn,
				Reason: "klp cannot parse the module's signature (cannot parse PKCS#7 signature); if the kernel cannot either, it refuses the module (EBADMSG) even when signatures are not enforced",
				Fix:    "sign the module again with scripts/sign-file"}},
		{"enforced, signed", state("Y", signedBy("Build key")), trusted(`signed by "Build key" (sha256)`, "module.sig_enforce=Y")},
		{"locked down, signed", locked(state("N", signedBy("Build key"))), trusted(`signed by "Build key" (sha256)`, "the kernel is locked down (integrity)")},
		{"lockdown unknown, signed", func() facts {
			f := state("N", signedBy("Build key"))
			f.lockdown = bad[string](lockdownPath, fs.ErrPermission)
			return f
		}(), Check{Status: Pass, Reason: `the module is signed by "Build key" (sha256); signatures are not enforced (a key the kernel does not trust only taints it, E)`}},
		{"no lockdown LSM, signed", func() facts {
			f := state("N", signedBy("Build key"))
			f.lockdown, f.securityfs = bad[string](lockdownPath, fs.ErrNotExist), dir{path: "/sys/kernel/security"}
			return f
		}(), Check{Status: Pass, Reason: `the module is signed by "Build key" (sha256); signatures are not enforced (a key the kernel does not trust only taints it, E)`}},
		{"optional, signed by key id", state("N", &modinfo.Module{Signature: &modinfo.Signature{IDType: "pkcs7", KeyID: "4A:2B"}}),
			Check{Status: Pass, Reason: `the module is signed by "4A:2B"; signatures are not enforced (a key the kernel does not trust only taints it, E)`}},
		{"optional, signed by no one", state("N", &modinfo.Module{Signature: &modinfo.Signature{IDType: "pkcs7", HashAlgorithm: "sha512"}}),
			Check{Status: Pass, Reason: "the module is signed by an unnamed key (sha512); signatures are not enforced (a key the kernel does not trust only taints it, E)"}},
	})
}

func TestTaintFacts(t *testing.T) {
	const path = "/proc/sys/kernel/tainted"
	tainted := func(v string) facts { return facts{tainted: val(path, v)} }
	const serious = "find the cause in the kernel log (dmesg) first: tasks left stuck in the kernel can hold a transition, and vendors may not support patching such a kernel"
	cases := []factCase{
		{"unreadable", facts{tainted: bad[string](path, fs.ErrPermission)},
			Check{Status: Skip, Reason: path + " is not readable (permission denied)", Fix: "run as root"}},
		{"garbage", tainted("lots"), Check{Status: Skip, Reason: path + ` holds "lots", not a number`, Fix: "check the --procfs tree"}},
		{"negative", tainted("-1"), Check{Status: Skip, Reason: path + ` holds "-1", not a number`, Fix: "check the --procfs tree"}},
		{"clean", tainted("0"), Check{Status: Pass, Reason: "the kernel is not tainted"}},
		{"out of tree, unsigned, live patched", tainted("45056"),
			Check{Status: Pass, Reason: "tainted 45056: O E K (K: a live patch module has been loaded since boot)",
				Details: []string{"O (4096): out-of-tree module loaded", "E (8192): unsigned module loaded", "K (32768): kernel live patched"}}},
		{"proprietary", tainted("1"), Check{Status: Pass, Reason: "tainted 1: P", Details: []string{"P (1): proprietary module loaded"}}},
		{"oops and warning", tainted("640"),
			Check{Status: Warn, Reason: "tainted 640: D W; the kernel has had a serious problem or a forced module", Fix: serious,
				Details: []string{"D (128): kernel oops or BUG", "W (512): kernel warning"}}},
		{"forced load after a patch", tainted("32770"),
			Check{Status: Warn, Reason: "tainted 32770: F K; the kernel has had a serious problem or a forced module", Fix: serious,
				Details: []string{"F (2): module force-loaded", "K (32768): kernel live patched"}}},
		{"every serious bit", tainted(fmt.Sprint(2 | 8 | 16 | 32 | 128 | 16384)),
			Check{Status: Warn, Reason: "tainted 16570: F R M B D L; the kernel has had a serious problem or a forced module", Fix: serious,
				Details: []string{"F (2): module force-loaded", "R (8): module force-unloaded", "M (16): machine check", "B (32): bad page", "D (128): kernel oops or BUG", "L (16384): soft lockup"}}},
		{"last known bit", tainted("262144"), Check{Status: Pass, Reason: "tainted 262144: N", Details: []string{"N (262144): in-kernel test"}}},
		{"first unknown bit", tainted("524288"), Check{Status: Pass, Reason: "tainted 524288: bit 19", Details: []string{"bit 19 (524288): not known to klp"}}},
		{"top bit", tainted("9223372036854775808"),
			Check{Status: Pass, Reason: "tainted 9223372036854775808: bit 63", Details: []string{"bit 63 (9223372036854775808): not known to klp"}}},
	}
	// Each serious taint alone warns; each other one alone passes.
	for bit, f := range kernel.TaintFlags {
		if f.Bit != uint(bit) {
			t.Errorf("kernel.TaintFlags[%d] is bit %d", bit, f.Bit)
		}
		v := uint64(1) << bit
		c := Check{Status: Pass, Reason: fmt.Sprintf("tainted %d: %c", v, f.Letter), Details: []string{fmt.Sprintf("%c (%d): %s", f.Letter, v, f.Meaning)}}
		if f.Trouble {
			c.Status, c.Fix = Warn, serious
			c.Reason += "; the kernel has had a serious problem or a forced module"
		} else if f.Letter == 'K' {
			c.Reason += " (K: a live patch module has been loaded since boot)"
		}
		cases = append(cases, factCase{fmt.Sprintf("only %c", f.Letter), tainted(fmt.Sprint(v)), c})
	}
	var letters, trouble []byte
	for _, f := range kernel.TaintFlags {
		letters = append(letters, f.Letter)
		if f.Trouble {
			trouble = append(trouble, f.Letter)
		}
	}
	if string(letters) != "PFSRMBUDAWCIOELKXTN" || string(trouble) != "FRMBDL" {
		t.Errorf("taint letters %q, serious %q; want the kernel's PFSRMBUDAWCIOELKXTN, serious FRMBDL", letters, trouble)
	}
	testCheck(t, taint, cases)
}

// patch is a loaded live patch for the facts.
func patch(name string, enabled bool, transition *bool, funcs ...string) livepatch.Patch {
	p := livepatch.Patch{Name: name, Enabled: enabled, Transition: transition}
	for _, f := range funcs {
		p.Objects = append(p.Objects, livepatch.Object{Name: "vmlinux", Functions: []livepatch.Function{{Name: f, Sympos: 1}}})
	}
	return p
}

func patches(ps ...livepatch.Patch) reading[[]livepatch.Patch] {
	return reading[[]livepatch.Patch]{path: lpDir, v: ps}
}

func TestTransitionFacts(t *testing.T) {
	yes, no := ptr(true), ptr(false)
	testCheck(t, transition, []factCase{
		{"no live patching", facts{patches: bad[[]livepatch.Patch](lpDir, fmt.Errorf("%w: %s does not exist", livepatch.ErrNotSupported, lpDir))},
			Check{Status: Skip, Reason: "no live patching support (see above)", Fix: "boot a kernel built with CONFIG_LIVEPATCH=y"}},
		{"unreadable", facts{patches: bad[[]livepatch.Patch](lpDir, fmt.Errorf("list patches: %w", fs.ErrPermission))},
			Check{Status: Skip, Reason: "cannot read the loaded patches: list patches: permission denied", Fix: "run as root"}},
		{"none loaded", facts{patches: patches()}, Check{Status: Pass, Reason: "no patch is in transition"}},
		{"settled", facts{patches: patches(patch("p1", true, no), patch("p0", true, nil))}, Check{Status: Pass, Reason: "no patch is in transition"}},
		{"another patching", facts{patches: patches(patch("p1", true, yes))},
			Check{Status: Fail, Reason: "patch p1 is patching: the kernel runs one transition at a time and refuses a load meanwhile (EBUSY)",
				Fix: "wait for it (klp wait p1; klp blocking shows what holds it), or reverse it (klp disable p1)"}},
		{"another unpatching", facts{patches: patches(patch("p1", false, yes)), module: &modinfo.Module{Name: "p2"}},
			Check{Status: Fail, Reason: "patch p1 is unpatching: the kernel runs one transition at a time and refuses a load meanwhile (EBUSY)",
				Fix: "wait for it (klp wait p1; klp blocking shows what holds it), or reverse it (klp enable p1)"}},
		{"this patch", facts{patches: patches(patch("p1", true, yes)), module: &modinfo.Module{Name: "p1"}},
			Check{Status: Warn, Reason: "this patch (p1) is itself patching; klp load waits for that transition", Fix: "klp wait p1"}},
	})
}

func TestForcedPatchFacts(t *testing.T) {
	mods := func(ms ...kmod.Module) reading[kmod.Modules] { return reading[kmod.Modules]{path: procModPth, v: ms} }
	lp := func(name string, refcnt int, holders ...string) kmod.Module {
		return kmod.Module{Name: name, Refcnt: refcnt, Holders: holders, State: kmod.StateLive, Taints: "OEK"}
	}
	forced := func(names string, details ...string) Check {
		return Check{Status: Warn,
			Reason:  "patch module " + names + " still holds a reference on itself without a live patch: its transition was most likely forced (unless it is being freed this very moment), and then it cannot be removed until reboot",
			Fix:     "plan a reboot: after a forced transition the kernel cannot guarantee consistency, and its documentation asks for one",
			Details: details}
	}
	none := Check{Status: Pass, Reason: "no patch module holds on to its reference without a live patch"}
	detail := func(name string, refcnt int) string {
		return fmt.Sprintf("%s: loaded, taint K, reference count %d, no %s/%s", name, refcnt, lpDir, name)
	}
	going := lp("old", 1)
	going.State = kmod.StateUnloading
	var six []kmod.Module
	var sixDetails []string
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		six = append(six, lp(n, 1))
		sixDetails = append(sixDetails, detail(n, 1))
	}
	notSupported := bad[[]livepatch.Patch](lpDir, fmt.Errorf("%w: %s does not exist", livepatch.ErrNotSupported, lpDir))
	testCheck(t, forcedPatch, []factCase{
		{"no module support", facts{modules: bad[kmod.Modules](procModPth, fmt.Errorf("read %s: %w", procModPth, fs.ErrNotExist))},
			Check{Status: Pass, Reason: "/proc/modules does not exist: no module, so no patch module, is loaded"}},
		{"modules unreadable", facts{modules: bad[kmod.Modules](procModPth, fs.ErrPermission)},
			Check{Status: Skip, Reason: "/proc/modules is not readable (permission denied)", Fix: "run as root"}},
		{"patches unreadable", facts{modules: mods(), patches: bad[[]livepatch.Patch](lpDir, errIO)},
			Check{Status: Skip, Reason: "cannot read the loaded patches: input/output error", Fix: "check that the file is readable"}},
		{"nothing loaded", facts{modules: mods(), patches: patches()}, none},
		{"forced", facts{livepatchDir: lpDir, modules: mods(lp("old_fix", 1)), patches: patches()}, forced("old_fix", detail("old_fix", 1))},
		{"forced, no live patching", facts{livepatchDir: lpDir, modules: mods(lp("old_fix", 1)), patches: notSupported}, forced("old_fix", detail("old_fix", 1))},
		{"forced and used", facts{livepatchDir: lpDir, modules: mods(lp("old_fix", 2, "user")), patches: patches()}, forced("old_fix", detail("old_fix", 2))},
		{"six forced", facts{livepatchDir: lpDir, modules: mods(six...), patches: patches()}, forced("a, b, c, d, e and 1 more", sixDetails...)},
		{"enabled patch", facts{modules: mods(lp("fix", 1)), patches: patches(patch("fix", true, nil))}, none},
		{"replaced, no reference", facts{modules: mods(lp("old_fix", 0)), patches: patches()}, none},
		{"only used by others", facts{modules: mods(lp("old_fix", 1, "user")), patches: patches()}, none},
		{"no unload support", facts{modules: mods(lp("old_fix", -1)), patches: patches()}, none},
		{"being removed", facts{modules: mods(going), patches: patches()}, none},
		{"not a patch module", facts{modules: mods(kmod.Module{Name: "ext4", Refcnt: 3, State: kmod.StateLive}), patches: patches()}, none},
	})
}
