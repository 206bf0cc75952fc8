package livepatch

// TaintNoSupport is SUSE's NO_SUPPORT taint, bit 31 of
// /proc/sys/kernel/tainted, shown as "N" ("Unsupported modules loaded"). It
// exists only on kernels built with SUSE's support facility (see
// [FS.DisableTaints]).
const TaintNoSupport = 1 << 31

// DisableTaints reports whether disabling a live patch taints this kernel,
// and what says so. SUSE's kernels are built with their support facility
// (CONFIG_SUSE_KERNEL_SUPPORTED); there, disabling a patch (a write of 0
// to enabled that starts an unpatching transition, not one that reverses a
// patching transition) logs "livepatch: attempt to disable live patch
// <name>, setting NO_SUPPORT taint flag" and sets [TaintNoSupport], and SLE
// 12's kGraft does the same for a revert. SUSE may then decline support
// for the running kernel until reboot.
//
// The facility is detected by the two files it adds, never by the kernel's
// name: /sys/kernel/supported (read-only: "Yes", or why not) and the sysctl
// /proc/sys/kernel/unsupported (its policy for unsupported modules). The
// same configuration option guards both files and the taint on disable.
// evidence is the first of them that exists, "" when neither does (an
// upstream, Debian or Red Hat kernel).
func (fs FS) DisableTaints() (evidence string, taints bool) {
	for _, p := range []string{fs.SysPath("kernel", "supported"), fs.ProcPath("sys", "kernel", "unsupported")} {
		if fs.k.Exists(p) {
			return p, true
		}
	}
	return "", false
}
