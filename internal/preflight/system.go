package preflight

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/kmod"
	"github.com/klp-project/klp/livepatch"
	"github.com/klp-project/klp/modinfo"
)

// livepatchSupported: /sys/kernel/livepatch is created by the livepatch
// core at boot, so its presence is the test. A module tagged livepatch is
// refused with ENOEXEC by a kernel without it.
func livepatchSupported(f *facts) Check {
	switch f.iface {
	case livepatch.InterfaceLivepatch:
		return Check{Status: Pass, Reason: f.livepatchDir + " exists"}
	case livepatch.InterfaceKGraft:
		return Check{Status: Warn,
			Reason: "this kernel has SLE 12's kGraft interface (" + f.kgraftDir + "), not the upstream live patching one that klp load and these checks assume",
			Fix:    "load kGraft patches with SUSE's tools; klp status, patches and blocking do read kGraft"}
	}
	if f.sysKernel.empty {
		return Check{Status: Skip,
			Reason: "sysfs does not seem to be mounted: " + f.sysKernel.path + " is missing or empty",
			Fix:    "mount -t sysfs sysfs /sys, or point --sysfs at a sysfs tree"}
	}
	c := Check{Status: Fail,
		Reason: f.livepatchDir + " does not exist: the kernel has no live patching",
		Fix:    "boot a kernel built with CONFIG_LIVEPATCH=y"}
	if f.module != nil && f.module.Livepatch {
		c.Reason += " and refuses livepatch modules (ENOEXEC)"
	}
	if cfg := f.config.v; f.config.err == nil && cfg != nil {
		if cfg.enabled("CONFIG_LIVEPATCH") {
			c.Details = append(c.Details, "CONFIG_LIVEPATCH=y in "+cfg.source+", yet the directory is missing: live patching failed to initialise (see the boot log)")
		} else {
			c.Details = append(c.Details, "CONFIG_LIVEPATCH is not set in "+cfg.source)
		}
	}
	return c
}

// modulesDisabled: kernel.modules_disabled=1 makes every load fail with
// EPERM, and cannot be undone until reboot.
func modulesDisabled(f *facts) Check {
	path, s, err := f.modulesDisabled.path, f.modulesDisabled.v, f.modulesDisabled.err
	switch {
	case errors.Is(err, fs.ErrNotExist) && !f.modulesListed && !f.procSysKernel.empty:
		// Both files come with CONFIG_MODULES.
		return Check{Status: Fail,
			Reason: "the kernel has no loadable module support (neither " + path + " nor " + f.modules.path + " exists)",
			Fix:    "boot a kernel built with CONFIG_MODULES=y and CONFIG_LIVEPATCH=y"}
	case err != nil:
		return Check{Status: Skip, Reason: why(path, err), Fix: readFixFor(err, "")}
	case s == "0":
		return Check{Status: Pass, Reason: "module loading is allowed (kernel.modules_disabled=0)"}
	case s == "1":
		return Check{Status: Fail,
			Reason: "kernel.modules_disabled is 1: the kernel refuses every module load (EPERM)",
			Fix:    "reboot; the setting cannot be turned off at run time"}
	}
	return Check{Status: Skip, Reason: fmt.Sprintf("%s holds %q, not 0 or 1", path, s), Fix: "check the --procfs tree"}
}

// ftraceEnabled: with kernel.ftrace_enabled=0 the patch's ftrace handler
// cannot be registered and klp_enable_patch returns EBUSY ("failed to
// register ftrace handler for function ...", test-ftrace.sh).
func ftraceEnabled(f *facts) Check {
	path, s, err := f.ftraceEnabled.path, f.ftraceEnabled.v, f.ftraceEnabled.err
	switch {
	case err != nil:
		c := Check{Status: Skip, Reason: why(path, err), Fix: readFixFor(err, "")}
		if errors.Is(err, fs.ErrNotExist) {
			c.Reason += " (a kernel without the function tracer cannot live patch)"
			c.Fix = "check the --procfs tree; a kernel that can live patch has this file"
		}
		return c
	case s == "1":
		return Check{Status: Pass, Reason: "kernel.ftrace_enabled is 1"}
	case s == "0":
		return Check{Status: Fail,
			Reason: "kernel.ftrace_enabled is 0: the kernel cannot register the patch's ftrace handlers and refuses the load (EBUSY)",
			Fix:    "sysctl kernel.ftrace_enabled=1"}
	}
	return Check{Status: Skip, Reason: fmt.Sprintf("%s holds %q, not 0 or 1", path, s), Fix: "check the --procfs tree"}
}

// reliableStacktrace: without CONFIG_HAVE_RELIABLE_STACKTRACE (and
// CONFIG_STACKTRACE) the kernel cannot check task stacks, so tasks switch
// only at kernel exit, on a signal or when idle, and a kernel thread can
// hold a transition forever. Since 5.1 the kernel only warns; 4.16 to 5.0
// refused to enable the patch (ENOSYS).
func reliableStacktrace(f *facts) Check {
	cfg, err := f.config.v, f.config.err
	if err != nil {
		rel := f.release.v
		fix := "load the configs module (modprobe configs) for /proc/config.gz, or install the kernel's config file in /boot"
		if rel != "" {
			fix = "load the configs module (modprobe configs) for /proc/config.gz, or install /boot/config-" + rel
		}
		return Check{Status: Skip, Reason: "kernel configuration not found: " + err.Error(), Fix: fix}
	}
	var missing []string
	for _, opt := range []string{"CONFIG_HAVE_RELIABLE_STACKTRACE", "CONFIG_STACKTRACE"} {
		if !cfg.enabled(opt) {
			missing = append(missing, opt)
		}
	}
	if len(missing) == 0 {
		return Check{Status: Pass, Reason: "CONFIG_HAVE_RELIABLE_STACKTRACE and CONFIG_STACKTRACE are set (" + cfg.source + ")"}
	}
	rel := f.release.v
	if !versionBefore(rel, 4, 16) && versionBefore(rel, 5, 1) {
		return Check{Status: Fail,
			Reason: strings.Join(missing, " and ") + " not set (" + cfg.source + "): kernels 4.16 to 5.0 refuse to enable a patch without reliable stack traces (ENOSYS), and this is " + rel + " (no file shows the rule: the version decides)",
			Fix:    "use a kernel with reliable stack traces"}
	}
	return Check{Status: Warn,
		Reason: strings.Join(missing, " and ") + " not set (" + cfg.source + "): tasks switch only when they leave the kernel, get a signal or go idle, so a transition may never complete",
		Fix:    "expect to wait; a stalled transition can be reversed (klp disable) or, as a last resort, forced (klp force)"}
}

// lockdownLevel returns the bracketed level of
// /sys/kernel/security/lockdown ("none [integrity] confidentiality"),
// "absent" when the lockdown LSM is not there, or an error when it cannot
// be told.
func lockdownLevel(f *facts) (string, error) {
	path, s, err := f.lockdown.path, f.lockdown.v, f.lockdown.err
	if errors.Is(err, fs.ErrNotExist) {
		// An unmounted securityfs is an empty mount point: then nothing
		// can be told. A mounted one without the file means no lockdown
		// LSM.
		if f.securityfs.empty {
			return "", errNoSecurityfs
		}
		return "absent", nil
	}
	if err != nil {
		return "", err
	}
	for _, w := range strings.Fields(s) {
		if strings.HasPrefix(w, "[") && strings.HasSuffix(w, "]") {
			return strings.Trim(w, "[]"), nil
		}
	}
	return "", fmt.Errorf("%s holds %q, with no [level]", path, s)
}

// errNoSecurityfs: /sys/kernel/security is empty, so the lockdown state
// cannot be read.
var errNoSecurityfs = notFound("securityfs is not mounted")

// isLockedDown reports whether the kernel is known to be locked down.
func isLockedDown(f *facts) (string, bool) {
	lvl, err := lockdownLevel(f)
	if err != nil || lvl == "none" || lvl == "absent" {
		return lvl, false
	}
	return lvl, true
}

// signed reports whether a module carries a signature the kernel can
// check: only PKCS#7 since 4.3; anything else counts as unsigned
// (ENOPKG, which the kernel treats like a missing signature).
func signed(m *modinfo.Module) bool {
	return m.Signature != nil && m.Signature.IDType == "pkcs7"
}

// signatureSummary describes a signature in a few words.
func signatureSummary(s *modinfo.Signature) string {
	who := s.Signer
	if who == "" {
		who = s.KeyID
	}
	if who == "" {
		who = "an unnamed key"
	} else {
		who = strconv.Quote(who)
	}
	if s.HashAlgorithm != "" {
		return "signed by " + who + " (" + s.HashAlgorithm + ")"
	}
	return "signed by " + who
}

// lockdown: under integrity or confidentiality lockdown, module_sig_check
// turns a missing (or unusable) signature into EPERM
// (security_locked_down(LOCKDOWN_MODULE_SIGNATURE)).
func lockdown(f *facts) Check {
	path := f.lockdown.path
	lvl, err := lockdownLevel(f)
	switch {
	case errors.Is(err, errNoSecurityfs):
		return Check{Status: Skip, Reason: "securityfs is not mounted (" + f.securityfs.path + " is empty), so the lockdown state is unknown",
			Fix: "mount -t securityfs securityfs /sys/kernel/security"}
	case err != nil:
		return Check{Status: Skip, Reason: why(path, err), Fix: readFixFor(err, "")}
	case lvl == "absent":
		return Check{Status: Pass, Reason: "no lockdown LSM (" + path + " does not exist)"}
	case lvl == "none":
		return Check{Status: Pass, Reason: "the kernel is not locked down (none)"}
	}
	if f.module == nil {
		return Check{Status: Pass, Reason: "locked down (" + lvl + "): only modules signed with a key the kernel trusts can be loaded"}
	}
	if !signed(f.module) {
		return Check{Status: Fail,
			Reason: "locked down (" + lvl + ") and the module has no usable signature: the kernel refuses it (EPERM, \"unsigned module loading is restricted\")",
			Fix:    "sign the module with a key the kernel trusts (built in, or enrolled with mokutil --import)"}
	}
	return Check{Status: Pass, Reason: "locked down (" + lvl + "); the module is " + signatureSummary(f.module.Signature) + " (whether the kernel trusts the key: see Module signatures)"}
}

// sigEnforcement is the state of module signature checking.
type sigEnforcement int

const (
	sigUnchecked sigEnforcement = iota // no CONFIG_MODULE_SIG
	sigOptional                        // checked, not enforced
	sigEnforced                        // module.sig_enforce=Y or MODULE_SIG_FORCE
)

// sigEnforcementState reads /sys/module/module/parameters/sig_enforce,
// which exists with CONFIG_MODULE_SIG and reads Y when signatures are
// enforced (CONFIG_MODULE_SIG_FORCE or module.sig_enforce=1).
func sigEnforcementState(f *facts) (sigEnforcement, error) {
	path, s, err := f.sigEnforce.path, f.sigEnforce.v, f.sigEnforce.err
	if errors.Is(err, fs.ErrNotExist) {
		if f.sysModule.empty {
			return 0, fmt.Errorf("%s does not exist, nor does %s: %w", path, f.sysModule.path, err)
		}
		return sigUnchecked, nil
	}
	if err != nil {
		return 0, err
	}
	switch s {
	case "Y", "y", "1":
		return sigEnforced, nil
	case "N", "n", "0":
		return sigOptional, nil
	}
	return 0, fmt.Errorf("%s holds %q, not Y or N", path, s)
}

// sigEnforce predicts module_sig_check: with enforcement an unsigned module
// gets EKEYREJECTED ("Loading of unsigned module is rejected"); without,
// it loads and taints the kernel (E). An unparsable signature is fatal
// even without enforcement (EBADMSG). Whether the kernel trusts the signing
// key cannot be seen from user space, so a signed module under enforcement
// or lockdown is a warning, not a pass.
func sigEnforce(f *facts) Check {
	path := f.sigEnforce.path
	state, err := sigEnforcementState(f)
	if err != nil {
		c := Check{Status: Skip, Reason: err.Error(), Fix: readFixFor(err, "mount -t sysfs sysfs /sys, or point --sysfs at a sysfs tree")}
		if errors.Is(err, fs.ErrPermission) {
			c.Reason = why(path, err)
		}
		return c
	}
	if state == sigUnchecked {
		return Check{Status: Pass, Reason: "the kernel does not check module signatures (no module.sig_enforce parameter: built without CONFIG_MODULE_SIG)"}
	}
	enforced := state == sigEnforced
	if f.module == nil {
		if enforced {
			return Check{Status: Pass, Reason: "enforced (module.sig_enforce=Y): only modules signed with a key the kernel trusts load"}
		}
		return Check{Status: Pass, Reason: "not enforced (module.sig_enforce=N): an unsigned module loads and taints the kernel (E)"}
	}
	sig := f.module.Signature
	if !signed(f.module) {
		what := "the module is unsigned"
		if sig != nil {
			what = "the module's signature is " + sig.IDType + ", which kernels since 4.3 do not accept (ENOPKG)"
		}
		if enforced {
			return Check{Status: Fail,
				Reason: "signatures are enforced and " + what + ": the kernel refuses it (EKEYREJECTED, \"Loading of unsigned module is rejected\")",
				Fix:    "sign the module with a key the kernel trusts (scripts/sign-file sha256 KEY CERT FILE.ko)"}
		}
		return Check{Status: Warn,
			Reason: what + ": the kernel loads it but taints itself (E, \"module verification failed: signature and/or required key missing\")",
			Fix:    "sign the module with a key the kernel trusts to avoid the taint"}
	}
	if sig.Undetermined != "" {
		return Check{Status: Warn,
			Reason: "klp cannot parse the module's signature (" + sig.Undetermined + "); if the kernel cannot either, it refuses the module (EBADMSG) even when signatures are not enforced",
			Fix:    "sign the module again with scripts/sign-file"}
	}
	lvl, locked := isLockedDown(f)
	if enforced || locked {
		why := "module.sig_enforce=Y"
		if !enforced {
			why = "the kernel is locked down (" + lvl + ")"
		}
		return Check{Status: Warn,
			Reason: "the module is " + signatureSummary(sig) + " and a trusted signature is required (" + why + "): it loads only if the kernel trusts that key, which klp cannot see",
			Fix:    "make sure the signing certificate is in the kernel's keyrings (built in, or enrolled with mokutil --import); otherwise the load fails (EKEYREJECTED or EPERM)"}
	}
	return Check{Status: Pass, Reason: "the module is " + signatureSummary(sig) + "; signatures are not enforced (a key the kernel does not trust only taints it, E)"}
}

// taint reports /proc/sys/kernel/tainted. No taint makes the kernel refuse
// a patch, so this never fails; it warns when the kernel oopsed, locked up,
// hit a machine check or bad page, or had a module forced in or out: such a
// kernel may have tasks stuck in the kernel that hold a transition, and
// vendors may not support patching it. K (32768) is set by the first patch
// module ever loaded and never cleared.
func taint(f *facts) Check {
	path, s, err := f.tainted.path, f.tainted.v, f.tainted.err
	if err != nil {
		return Check{Status: Skip, Reason: why(path, err), Fix: readFixFor(err, "")}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return Check{Status: Skip, Reason: fmt.Sprintf("%s holds %q, not a number", path, s), Fix: "check the --procfs tree"}
	}
	if v == 0 {
		return Check{Status: Pass, Reason: "the kernel is not tainted"}
	}
	var letters []string
	var details []string
	trouble := false
	for bit := 0; bit < 64; bit++ {
		if v&(1<<bit) == 0 {
			continue
		}
		if bit < len(kernel.TaintFlags) {
			f := kernel.TaintFlags[bit]
			letters = append(letters, string(f.Letter))
			details = append(details, fmt.Sprintf("%c (%d): %s", f.Letter, uint64(1)<<bit, f.Meaning))
			trouble = trouble || f.Trouble
		} else {
			letters = append(letters, fmt.Sprintf("bit %d", bit))
			details = append(details, fmt.Sprintf("bit %d (%d): not known to klp", bit, uint64(1)<<bit))
		}
	}
	c := Check{Status: Pass, Reason: fmt.Sprintf("tainted %d: %s", v, strings.Join(letters, " ")), Details: details}
	if v&(1<<kernel.TaintLivepatch) != 0 {
		c.Reason += " (K: a live patch module has been loaded since boot)"
	}
	if trouble {
		c.Status = Warn
		c.Reason = fmt.Sprintf("tainted %d: %s; the kernel has had a serious problem or a forced module", v, strings.Join(letters, " "))
		c.Fix = "find the cause in the kernel log (dmesg) first: tasks left stuck in the kernel can hold a transition, and vendors may not support patching such a kernel"
	}
	return c
}

// transition: at most one transition runs at a time; a load during
// another patch's transition gets EBUSY (docs/kernel-notes.md).
func transition(f *facts) Check {
	patches, err := f.patches.v, f.patches.err
	if errors.Is(err, livepatch.ErrNotSupported) {
		return Check{Status: Skip, Reason: "no live patching support (see above)", Fix: "boot a kernel built with CONFIG_LIVEPATCH=y"}
	}
	if err != nil {
		return Check{Status: Skip, Reason: "cannot read the loaded patches: " + err.Error(), Fix: readFixFor(err, "")}
	}
	tr := livepatch.TransitionOf(patches)
	if tr == nil {
		return Check{Status: Pass, Reason: "no patch is in transition"}
	}
	if f.module != nil && tr.Patch == f.module.Name {
		return Check{Status: Warn,
			Reason: "this patch (" + tr.Patch + ") is itself " + tr.Direction() + "; klp load waits for that transition",
			Fix:    "klp wait " + tr.Patch}
	}
	reverse := "enable" // an unpatching transition is reversed by enabling
	if tr.Direction() == "patching" {
		reverse = "disable"
	}
	return Check{Status: Fail,
		Reason: "patch " + tr.Patch + " is " + tr.Direction() + ": the kernel runs one transition at a time and refuses a load meanwhile (EBUSY)",
		Fix:    "wait for it (klp wait " + tr.Patch + "; klp blocking shows what holds it), or reverse it (klp " + reverse + " " + tr.Patch + ")"}
}

// forcedPatch: the kernel never drops the module reference of a patch
// whose transition was forced, so on 5.1+ a live patch module (taint K)
// with no /sys/kernel/livepatch directory that still holds a reference on
// itself was forced (or is being freed right now; the free is
// asynchronous). The kernel's documentation asks for a reboot after a
// forced transition.
func forcedPatch(f *facts) Check {
	mods, err := f.modules.v, f.modules.err
	if errors.Is(err, fs.ErrNotExist) {
		return Check{Status: Pass, Reason: f.modules.path + " does not exist: no module, so no patch module, is loaded"}
	}
	if err != nil {
		return Check{Status: Skip, Reason: why(f.modules.path, err), Fix: readFixFor(err, "")}
	}
	patches, perr := f.patches.v, f.patches.err
	if perr != nil && !errors.Is(perr, livepatch.ErrNotSupported) {
		return Check{Status: Skip, Reason: "cannot read the loaded patches: " + perr.Error(), Fix: readFixFor(perr, "")}
	}
	live := map[string]bool{}
	for _, p := range patches {
		live[p.Name] = true
	}
	var forced, details []string
	for _, m := range mods {
		if !strings.Contains(m.Taints, "K") || live[m.Name] || m.State != kmod.StateLive || m.Refcnt < 0 {
			continue
		}
		// Holders (modules using this one) account for the rest of
		// the count; the self-reference is what is left.
		if self := m.Refcnt - len(m.Holders); self >= 1 {
			forced = append(forced, m.Name)
			details = append(details, fmt.Sprintf("%s: loaded, taint K, reference count %d, no %s/%s", m.Name, m.Refcnt, f.livepatchDir, m.Name))
		}
	}
	if len(forced) == 0 {
		return Check{Status: Pass, Reason: "no patch module holds on to its reference without a live patch"}
	}
	return Check{Status: Warn,
		Reason:  "patch module " + joinMax(forced, 5) + " still holds a reference on itself without a live patch: its transition was most likely forced (unless it is being freed this very moment), and then it cannot be removed until reboot",
		Fix:     "plan a reboot: after a forced transition the kernel cannot guarantee consistency, and its documentation asks for one",
		Details: details}
}
