package preflight

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/klp-project/klp/internal/fakefs"
	"github.com/klp-project/klp/modinfo"
)

// checkCase is one check on one fake system.
type checkCase struct {
	name   string
	module string                  // file in modinfo/testdata, "" for none
	edit   func(m *modinfo.Module) // changes the parsed module
	setup  func(tr *tree)
	id     string
	want   Status
	reason string // a substring of the reason
	detail string // a substring of one of the details
}

func runCases(t *testing.T, cases []checkCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := newTree(t)
			if tc.setup != nil {
				tc.setup(tr)
			}
			var mod *modinfo.Module
			if tc.module != "" {
				mod = loadModule(t, tc.module)
				if tc.edit != nil {
					tc.edit(mod)
				}
			}
			c := tr.check(mod, tc.id)
			if c.Status != tc.want || !strings.Contains(c.Reason, tc.reason) {
				t.Errorf("%s = %s %q (fix %q), want %s with %q", tc.id, c.Status, c.Reason, c.Fix, tc.want, tc.reason)
			}
			if c.Status != Pass && c.Fix == "" {
				t.Errorf("%s: %s without a fix", tc.id, c.Status)
			}
			if c.Status == Pass && c.Fix != "" {
				t.Errorf("%s: pass with a fix %q", tc.id, c.Fix)
			}
			if tc.detail != "" && !strings.Contains(strings.Join(c.Details, "\n"), tc.detail) {
				t.Errorf("%s details %q, want one with %q", tc.id, c.Details, tc.detail)
			}
		})
	}
}

func TestSystemChecks(t *testing.T) {
	runCases(t, []checkCase{
		{name: "livepatch/present", id: IDLivepatchSupported, want: Pass, reason: "kernel/livepatch exists"},
		{name: "livepatch/absent", id: IDLivepatchSupported, want: Fail, reason: "no live patching",
			setup:  func(tr *tree) { tr.remove("sys/kernel/livepatch") },
			detail: "CONFIG_LIVEPATCH=y in"},
		{name: "livepatch/absent with module", module: "klp_vmlinux.ko", id: IDLivepatchSupported, want: Fail, reason: "ENOEXEC",
			setup: func(tr *tree) {
				tr.remove("sys/kernel/livepatch")
				tr.write("boot/config-"+testRelease, "CONFIG_X86_64=y\n# CONFIG_LIVEPATCH is not set\n")
			},
			detail: "CONFIG_LIVEPATCH is not set"},
		{name: "livepatch/kgraft", id: IDLivepatchSupported, want: Warn, reason: "kGraft",
			setup: func(tr *tree) { tr.remove("sys/kernel/livepatch"); tr.mkdir("sys/kernel/kgraft") }},
		{name: "livepatch/no sysfs", id: IDLivepatchSupported, want: Skip, reason: "not seem to be mounted",
			setup: func(tr *tree) { tr.remove("sys/kernel") }},

		{name: "modules_disabled/0", id: IDModulesDisabled, want: Pass},
		{name: "modules_disabled/1", id: IDModulesDisabled, want: Fail, reason: "EPERM",
			setup: func(tr *tree) { tr.write("proc/sys/kernel/modules_disabled", "1\n") }},
		{name: "modules_disabled/no module support", id: IDModulesDisabled, want: Fail, reason: "no loadable module support",
			setup: func(tr *tree) { tr.remove("proc/sys/kernel/modules_disabled"); tr.remove("proc/modules") }},
		{name: "modules_disabled/missing", id: IDModulesDisabled, want: Skip, reason: "does not exist",
			setup: func(tr *tree) { tr.remove("proc/sys/kernel/modules_disabled") }},
		{name: "modules_disabled/garbage", id: IDModulesDisabled, want: Skip, reason: "not 0 or 1",
			setup: func(tr *tree) { tr.write("proc/sys/kernel/modules_disabled", "maybe\n") }},

		{name: "ftrace/1", id: IDFtraceEnabled, want: Pass},
		{name: "ftrace/0", id: IDFtraceEnabled, want: Fail, reason: "EBUSY",
			setup: func(tr *tree) { tr.write("proc/sys/kernel/ftrace_enabled", "0\n") }},
		{name: "ftrace/missing", id: IDFtraceEnabled, want: Skip, reason: "does not exist",
			setup: func(tr *tree) { tr.remove("proc/sys/kernel/ftrace_enabled") }},

		{name: "stacktrace/boot config", id: IDReliableStacktrace, want: Pass, reason: "boot/config-" + testRelease},
		{name: "stacktrace/proc config.gz first", id: IDReliableStacktrace, want: Warn, reason: "config.gz",
			setup: func(tr *tree) { tr.writeGzip("proc/config.gz", "CONFIG_LIVEPATCH=y\nCONFIG_STACKTRACE=y\n") }},
		{name: "stacktrace/missing on 6.1", id: IDReliableStacktrace, want: Warn, reason: "CONFIG_HAVE_RELIABLE_STACKTRACE not set",
			setup: func(tr *tree) { tr.write("boot/config-"+testRelease, "CONFIG_STACKTRACE=y\n") }},
		{name: "stacktrace/missing on 4.19", id: IDReliableStacktrace, want: Fail, reason: "ENOSYS",
			setup: func(tr *tree) {
				tr.write("proc/sys/kernel/osrelease", "4.19.0-27-amd64\n")
				tr.write("boot/config-4.19.0-27-amd64", "CONFIG_LIVEPATCH=y\n")
			}},
		{name: "stacktrace/no config", id: IDReliableStacktrace, want: Skip, reason: "not found",
			setup: func(tr *tree) { tr.remove("boot") }},

		{name: "lockdown/none", id: IDLockdown, want: Pass, reason: "not locked down"},
		{name: "lockdown/no LSM", id: IDLockdown, want: Pass, reason: "no lockdown LSM",
			setup: func(tr *tree) {
				tr.remove("sys/kernel/security/lockdown")
				tr.write("sys/kernel/security/apparmor/profiles", "")
			}},
		{name: "lockdown/securityfs not mounted", id: IDLockdown, want: Skip, reason: "securityfs is not mounted",
			setup: func(tr *tree) { tr.remove("sys/kernel/security/lockdown") }},
		{name: "lockdown/integrity without module", id: IDLockdown, want: Pass, reason: "locked down (integrity)",
			setup: lockedDown},
		{name: "lockdown/integrity unsigned", module: "klp_vmlinux.ko", id: IDLockdown, want: Fail, reason: "EPERM",
			setup: lockedDown},
		{name: "lockdown/integrity signed", module: "klp_replace.ko", id: IDLockdown, want: Pass, reason: "module is signed by \"klp test signing key\" (sha256)",
			setup: lockedDown},

		{name: "sig/not enforced", id: IDSigEnforce, want: Pass, reason: "not enforced"},
		{name: "sig/enforced", id: IDSigEnforce, want: Pass, reason: "enforced",
			setup: enforceSignatures},
		{name: "sig/no MODULE_SIG", id: IDSigEnforce, want: Pass, reason: "does not check module signatures",
			setup: func(tr *tree) { tr.remove("sys/module/module/parameters/sig_enforce") }},
		{name: "sig/no sysfs module dir", id: IDSigEnforce, want: Skip,
			setup: func(tr *tree) { tr.remove("sys/module") }},
		{name: "sig/enforced unsigned", module: "klp_vmlinux.ko", id: IDSigEnforce, want: Fail, reason: "EKEYREJECTED",
			setup: enforceSignatures},
		{name: "sig/unsigned", module: "klp_vmlinux.ko", id: IDSigEnforce, want: Warn, reason: "taints itself (E"},
		{name: "sig/enforced signed", module: "klp_replace.ko", id: IDSigEnforce, want: Warn, reason: "only if the kernel trusts that key",
			setup: enforceSignatures},
		{name: "sig/signed", module: "klp_replace.ko", id: IDSigEnforce, want: Pass, reason: "signed by \"klp test signing key\""},
		{name: "sig/signed under lockdown", module: "klp_replace.ko", id: IDSigEnforce, want: Warn, reason: "locked down (integrity)",
			setup: lockedDown},
		{name: "sig/enforced pgp", module: "klp_replace.ko", id: IDSigEnforce, want: Fail, reason: "ENOPKG",
			edit:  func(m *modinfo.Module) { m.Signature = &modinfo.Signature{IDType: "pgp"} },
			setup: enforceSignatures},
		{name: "sig/unparsable", module: "klp_replace.ko", id: IDSigEnforce, want: Warn, reason: "EBADMSG",
			edit: func(m *modinfo.Module) { m.Signature.Undetermined = "cannot parse PKCS#7 signature" }},

		{name: "taint/none", id: IDTaint, want: Pass, reason: "not tainted"},
		{name: "taint/OEK", id: IDTaint, want: Pass, reason: "tainted 45056: O E K (K: a live patch",
			setup:  func(tr *tree) { tr.write("proc/sys/kernel/tainted", "45056\n") },
			detail: "K (32768): kernel live patched"},
		{name: "taint/oops", id: IDTaint, want: Warn, reason: "tainted 640: D W",
			setup: func(tr *tree) { tr.write("proc/sys/kernel/tainted", "640\n") }},
		{name: "taint/unknown bit", id: IDTaint, want: Pass, reason: "bit 40",
			setup: func(tr *tree) { tr.write("proc/sys/kernel/tainted", "1099511627776\n") }},
		{name: "taint/garbage", id: IDTaint, want: Skip, reason: "not a number",
			setup: func(tr *tree) { tr.write("proc/sys/kernel/tainted", "lots\n") }},

		{name: "transition/none", id: IDTransition, want: Pass},
		{name: "transition/other patch", id: IDTransition, want: Fail, reason: "patch p1 is patching",
			setup: func(tr *tree) { tr.patch("p1", true, true, "vmlinux/meminfo_proc_show,1") }},
		{name: "transition/other patch unpatching", module: "klp_vmlinux.ko", id: IDTransition, want: Fail, reason: "patch p1 is unpatching",
			setup: func(tr *tree) { tr.patch("p1", false, true, "vmlinux/meminfo_proc_show,1") }},
		{name: "transition/this patch", module: "klp_vmlinux.ko", id: IDTransition, want: Warn, reason: "this patch (klp_vmlinux) is itself patching",
			setup: func(tr *tree) { tr.patch("klp_vmlinux", true, true, "vmlinux/cmdline_proc_show,1") }},
		{name: "transition/no livepatch", id: IDTransition, want: Skip,
			setup: func(tr *tree) { tr.remove("sys/kernel/livepatch") }},

		{name: "forced/none", id: IDForcedPatch, want: Pass},
		{name: "forced/patch module holding itself", id: IDForcedPatch, want: Warn, reason: "patch module old_fix still holds a reference",
			setup: func(tr *tree) { tr.module("old_fix", 1, "OEK") }},
		{name: "forced/replaced module", id: IDForcedPatch, want: Pass,
			setup: func(tr *tree) { tr.module("old_fix", 0, "OEK") }},
		{name: "forced/enabled patch", id: IDForcedPatch, want: Pass,
			setup: func(tr *tree) {
				tr.module("fix", 1, "OEK")
				tr.patch("fix", true, false, "vmlinux/cmdline_proc_show,1")
			}},
		{name: "forced/ordinary module", id: IDForcedPatch, want: Pass,
			setup: func(tr *tree) { tr.module("ext4", 3, "") }},
		{name: "forced/no module support", id: IDForcedPatch, want: Pass, reason: "does not exist",
			setup: func(tr *tree) { tr.remove("proc/modules") }},
	})
}

func lockedDown(tr *tree) {
	tr.write("sys/kernel/security/lockdown", "none [integrity] confidentiality\n")
}

func enforceSignatures(tr *tree) { tr.write("sys/module/module/parameters/sig_enforce", "Y\n") }

func TestModuleChecks(t *testing.T) {
	runCases(t, []checkCase{
		{name: "livepatch/yes", module: "klp_twoobj.ko", id: IDLivepatchModule, want: Pass, reason: "replacing 2 functions in 2 objects"},
		{name: "livepatch/no", module: "klp_target.ko", id: IDLivepatchModule, want: Fail, reason: "not a livepatch module"},
		{name: "livepatch/no name", module: "klp_vmlinux.ko", id: IDLivepatchModule, want: Fail, reason: "names no module",
			edit: func(m *modinfo.Module) { m.Name = "" }},
		{name: "livepatch/undetermined", module: "klp_vmlinux.ko", id: IDLivepatchModule, want: Pass, reason: "cannot be determined",
			edit: undetermined},

		{name: "vermagic/match", module: "klp_vmlinux.ko", id: IDVermagic, want: Pass, reason: "built for " + testRelease},
		{name: "vermagic/other release", module: "klp_vmlinux.ko", id: IDVermagic, want: Fail, reason: "the running kernel is 6.1.0-57-cloud-amd64",
			setup: func(tr *tree) { tr.write("proc/sys/kernel/osrelease", "6.1.0-57-cloud-amd64\n") }},
		{name: "vermagic/none", module: "klp_vmlinux.ko", id: IDVermagic, want: Fail, reason: "ENOEXEC",
			edit: func(m *modinfo.Module) { m.Vermagic = "" }},
		{name: "vermagic/other machine", module: "klp_vmlinux.ko", id: IDVermagic, want: Fail, reason: "the module is for x86_64, the kernel for aarch64",
			setup: func(tr *tree) { tr.write("boot/config-"+testRelease, "CONFIG_ARM64=y\nCONFIG_LIVEPATCH=y\n") }},
		{name: "vermagic/release unknown", module: "klp_vmlinux.ko", id: IDVermagic, want: Skip,
			setup: func(tr *tree) { tr.remove("proc/sys/kernel/osrelease") }},

		{name: "loaded/no", module: "klp_vmlinux.ko", id: IDAlreadyLoaded, want: Pass},
		{name: "loaded/enabled", module: "klp_vmlinux.ko", id: IDAlreadyLoaded, want: Warn, reason: "already loaded and enabled",
			setup: func(tr *tree) {
				tr.module("klp_vmlinux", 1, "OEK")
				tr.patch("klp_vmlinux", true, false, "vmlinux/cmdline_proc_show,1")
			}},
		{name: "loaded/patching", module: "klp_vmlinux.ko", id: IDAlreadyLoaded, want: Warn, reason: "still patching",
			setup: func(tr *tree) { tr.patch("klp_vmlinux", true, true, "vmlinux/cmdline_proc_show,1") }},
		{name: "loaded/unpatching", module: "klp_vmlinux.ko", id: IDAlreadyLoaded, want: Warn, reason: "reverses",
			setup: func(tr *tree) { tr.patch("klp_vmlinux", false, true, "vmlinux/cmdline_proc_show,1") }},
		{name: "loaded/disabled pre-5.1", module: "klp_vmlinux.ko", id: IDAlreadyLoaded, want: Warn, reason: "enables it again",
			setup: func(tr *tree) { tr.patch("klp_vmlinux", false, false, "vmlinux/cmdline_proc_show,1") }},
		{name: "loaded/same build", module: "klp_vmlinux.ko", id: IDAlreadyLoaded, want: Warn, reason: "already loaded", detail: "same srcversion ABC",
			edit: withSrcversion("ABC"),
			setup: func(tr *tree) {
				tr.module("klp_vmlinux", 1, "OEK")
				tr.write("sys/module/klp_vmlinux/srcversion", "ABC\n")
				tr.patch("klp_vmlinux", true, false, "vmlinux/cmdline_proc_show,1")
			}},
		{name: "loaded/other build", module: "klp_vmlinux.ko", id: IDAlreadyLoaded, want: Fail, reason: "another build of patch klp_vmlinux is loaded (srcversion OLD is loaded, the file has NEW)",
			edit: withSrcversion("NEW"),
			setup: func(tr *tree) {
				tr.module("klp_vmlinux", 1, "OEK")
				tr.write("sys/module/klp_vmlinux/srcversion", "OLD\n")
				tr.patch("klp_vmlinux", true, false, "vmlinux/cmdline_proc_show,1")
			}},
		{name: "loaded/replaced module", module: "klp_vmlinux.ko", id: IDAlreadyLoaded, want: Warn, reason: "klp load removes it first",
			setup: func(tr *tree) { tr.module("klp_vmlinux", 0, "OEK") }},
		{name: "loaded/module holding references", module: "klp_vmlinux.ko", id: IDAlreadyLoaded, want: Fail, reason: "holds 1 reference(s)",
			setup: func(tr *tree) { tr.module("klp_vmlinux", 1, "OEK") }},

		{name: "replace/nothing to replace", module: "klp_replace.ko", id: IDReplace, want: Pass, reason: "replaces nothing"},
		{name: "replace/covers all", module: "klp_replace.ko", id: IDReplace, want: Pass, reason: "replaces p1 and patches every function",
			setup: func(tr *tree) { tr.patch("p1", true, false, "vmlinux/cmdline_proc_show,1") }},
		{name: "replace/drops functions", module: "klp_replace.ko", id: IDReplace, want: Warn, reason: "replaces p1, p2, and 1 function they patch will go back",
			setup: func(tr *tree) {
				tr.patch("p1", true, false, "vmlinux/cmdline_proc_show,1")
				tr.patch("p2", true, false, "vmlinux/meminfo_proc_show,1")
			},
			detail: "vmlinux/meminfo_proc_show,1 (from p2)"},
		{name: "replace/undetermined functions", module: "klp_replace.ko", id: IDReplace, want: Warn, reason: "cannot tell which of their functions",
			edit:  undetermined,
			setup: func(tr *tree) { tr.patch("p1", true, false, "vmlinux/cmdline_proc_show,1") }},
		{name: "replace/unknown", module: "klp_vmlinux.ko", id: IDReplace, want: Warn, reason: "if it is, it replaces p1",
			edit:  func(m *modinfo.Module) { m.Targets.Replace = nil },
			setup: func(tr *tree) { tr.patch("p1", true, false, "vmlinux/cmdline_proc_show,1") }},
		{name: "replace/klp-build alone", module: "livepatch-e2e-build.ko", id: IDReplace, want: Pass,
			reason: "a klp-build patch: atomic replace unless it was built with klp-build --no-replace, which the file does not record; no other patch is loaded"},
		{name: "replace/klp-build covers all", module: "livepatch-e2e-build.ko", id: IDReplace, want: Warn, reason: "does not record; if it is, it replaces p1",
			setup: func(tr *tree) { tr.patch("p1", true, false, "vmlinux/cmdline_proc_show,1") }},
		{name: "replace/klp-build drops functions", module: "livepatch-e2e-no-replace.ko", id: IDReplace, want: Warn,
			reason: "if it is, it replaces p1, and 1 function they patch will go back to the original code",
			setup: func(tr *tree) {
				tr.patch("p1", true, false, "vmlinux/cmdline_proc_show,1", "vmlinux/meminfo_proc_show,1")
			},
			detail: "vmlinux/meminfo_proc_show,1 (from p1)"},
		{name: "replace/klp-build undetermined functions", module: "livepatch-e2e-build.ko", id: IDReplace, want: Warn, reason: "if it is, it replaces p1",
			edit:  undetermined,
			setup: func(tr *tree) { tr.patch("p1", true, false, "vmlinux/meminfo_proc_show,1") }},
		{name: "replace/stacks", module: "klp_vmlinux.ko", id: IDReplace, want: Pass, reason: "adds to p1; for 1 function they patch too, this newest patch takes precedence",
			setup:  func(tr *tree) { tr.patch("p1", true, false, "vmlinux/cmdline_proc_show,1") },
			detail: "vmlinux/cmdline_proc_show,1 (also patched by p1)"},
		{name: "replace/alone", module: "klp_vmlinux.ko", id: IDReplace, want: Pass, reason: "no other patch is loaded"},
		{name: "replace/not livepatch", module: "klp_target.ko", id: IDReplace, want: Skip},

		{name: "targets/vmlinux only", module: "klp_vmlinux.ko", id: IDTargetModules, want: Pass, reason: "vmlinux only"},
		{name: "targets/not loaded", module: "klp_twoobj.ko", id: IDTargetModules, want: Pass, reason: "not loaded (patched when they load): klp_target"},
		{name: "targets/loaded", module: "klp_twoobj.ko", id: IDTargetModules, want: Pass, reason: "loaded: klp_target",
			setup: func(tr *tree) { tr.module("klp_target", 0, "OE") }},
		{name: "targets/built in", module: "klp_twoobj.ko", id: IDTargetModules, want: Warn, reason: "cannot be patched now: klp_target",
			setup:  func(tr *tree) { tr.write("sys/module/klp_target/parameters/answer", "42\n") },
			detail: "built into the kernel image"},
		{name: "targets/going", module: "klp_twoobj.ko", id: IDTargetModules, want: Warn,
			setup: func(tr *tree) { tr.write("sys/module/klp_target/initstate", "going\n") }},
		{name: "targets/bad name", module: "klp_twoobj.ko", id: IDTargetModules, want: Warn, detail: "cannot be a module name",
			edit: func(m *modinfo.Module) { m.Targets.Functions[1].Object = "../etc" }},
	})
}

func withSrcversion(v string) func(*modinfo.Module) {
	return func(m *modinfo.Module) {
		m.Info = append(m.Info, modinfo.KeyValue{Key: "srcversion", Value: v})
	}
}

// undetermined makes the module one whose functions klp could not find.
func undetermined(m *modinfo.Module) {
	m.Targets.Functions = []modinfo.Target{}
	m.Targets.Undetermined = "module has no .symtab"
}

func TestSymbolChecks(t *testing.T) {
	runCases(t, []checkCase{
		{name: "symbols/resolve", module: "klp_vmlinux.ko", id: IDSymbols, want: Pass, reason: "all 2 symbols resolve",
			detail: "function version_proc_show,2 in vmlinux: found (2 occurrences)"},
		{name: "symbols/not found", module: "klp_vmlinux.ko", id: IDSymbols, want: Fail, reason: "1 of 2 symbols cannot be resolved, so the kernel refuses the patch (EINVAL): function cmdline_proc_show,1 in vmlinux",
			setup: func(tr *tree) {
				tr.write("proc/kallsyms", "0000000000000000 T _stext\n0000000000000000 t version_proc_show\n0000000000000000 t version_proc_show\n")
			},
			detail: "symbol 'cmdline_proc_show' not found in symbol table"},
		{name: "symbols/ambiguous", module: "klp_vmlinux.ko", id: IDSymbols, want: Fail,
			setup: func(tr *tree) {
				tr.write("proc/kallsyms", "0000000000000000 t cmdline_proc_show\n0000000000000000 t cmdline_proc_show\n0000000000000000 t version_proc_show\n0000000000000000 t version_proc_show\n")
			},
			detail: "unresolvable ambiguity for symbol 'cmdline_proc_show' in object 'vmlinux'"},
		{name: "symbols/sympos past the end", module: "klp_vmlinux.ko", id: IDSymbols, want: Fail,
			setup: func(tr *tree) {
				tr.write("proc/kallsyms", "0000000000000000 t cmdline_proc_show\n0000000000000000 t version_proc_show\n")
			},
			detail: "symbol position 2 for symbol 'version_proc_show' in object 'vmlinux' not found"},
		{name: "symbols/module not loaded", module: "klp_twoobj.ko", id: IDSymbols, want: Warn, reason: "1 of 2 symbols are in modules that are not loaded",
			detail: "module klp_target is not loaded"},
		{name: "symbols/module loaded", module: "klp_twoobj.ko", id: IDSymbols, want: Pass,
			setup: func(tr *tree) {
				tr.module("klp_target", 0, "OE")
				tr.write("proc/kallsyms", "0000000000000000 t meminfo_proc_show\nffffffffc0000000 t klp_target_value\t[klp_target]\n")
			}},
		{name: "symbols/module loaded without the symbol", module: "klp_twoobj.ko", id: IDSymbols, want: Fail,
			setup: func(tr *tree) {
				tr.module("klp_target", 0, "OE")
				tr.write("proc/kallsyms", "0000000000000000 t meminfo_proc_show\nffffffffc0000000 t other_fn\t[klp_target]\n")
			},
			detail: "symbol 'klp_target_value' not found"},
		{name: "symbols/klp.sym resolves", module: "klp_klpsym.ko", id: IDSymbols, want: Pass, detail: "klp symbol klp_static_helper,2 in vmlinux: found"},
		{name: "symbols/klp.sym missing", module: "klp_klpsym.ko", id: IDSymbols, want: Fail, reason: "klp symbol klp_static_helper,2 in vmlinux",
			setup: func(tr *tree) {
				tr.write("proc/kallsyms", "0000000000000000 t cmdline_proc_show\n0000000000000000 t klp_static_helper\n")
			}},
		{name: "symbols/kallsyms unreadable", module: "klp_vmlinux.ko", id: IDSymbols, want: Skip, reason: "kallsyms does not exist",
			setup: func(tr *tree) { tr.remove("proc/kallsyms") }},
		{name: "symbols/kallsyms empty", module: "klp_vmlinux.ko", id: IDSymbols, want: Skip, reason: "lists no vmlinux symbols",
			setup: func(tr *tree) { tr.write("proc/kallsyms", "") }},
		{name: "symbols/undetermined", module: "klp_vmlinux.ko", id: IDSymbols, want: Warn, reason: "cannot be determined",
			edit: undetermined},
		{name: "symbols/not livepatch", module: "klp_target.ko", id: IDSymbols, want: Skip},

		{name: "traceable/yes", module: "klp_vmlinux.ko", id: IDTraceable, want: Pass, reason: "all 2 replaced functions can be traced"},
		{name: "traceable/notrace", module: "klp_vmlinux.ko", id: IDTraceable, want: Fail, reason: "1 function cannot be traced",
			setup:  func(tr *tree) { tr.write("sys/kernel/tracing/available_filter_functions", "version_proc_show\n") },
			detail: "failed to find location for function 'cmdline_proc_show'"},
		{name: "traceable/debugfs fallback", module: "klp_vmlinux.ko", id: IDTraceable, want: Pass,
			setup: func(tr *tree) {
				tr.remove("sys/kernel/tracing")
				tr.write("sys/kernel/debug/tracing/available_filter_functions", "cmdline_proc_show\nversion_proc_show\n")
			}},
		{name: "traceable/tracefs missing", module: "klp_vmlinux.ko", id: IDTraceable, want: Skip, reason: "available_filter_functions does not exist",
			setup: func(tr *tree) { tr.remove("sys/kernel/tracing") }},
		{name: "traceable/module not loaded", module: "klp_twoobj.ko", id: IDTraceable, want: Warn, reason: "klp_target_value in klp_target"},
		{name: "traceable/module function", module: "klp_twoobj.ko", id: IDTraceable, want: Pass,
			setup: func(tr *tree) {
				tr.module("klp_target", 0, "OE")
				tr.write("sys/kernel/tracing/available_filter_functions", "meminfo_proc_show\nklp_target_value [klp_target]\n")
			}},
		{name: "traceable/module function in another module", module: "klp_twoobj.ko", id: IDTraceable, want: Fail,
			setup: func(tr *tree) {
				tr.module("klp_target", 0, "OE")
				tr.write("sys/kernel/tracing/available_filter_functions", "meminfo_proc_show\nklp_target_value [other]\n")
			}},

		{name: "kprobes/none", module: "klp_vmlinux.ko", id: IDKprobes, want: Pass, reason: "no kprobe or other IPMODIFY"},
		{name: "kprobes/ipmodify user", module: "klp_vmlinux.ko", id: IDKprobes, want: Fail, reason: "EBUSY",
			setup: func(tr *tree) {
				tr.write("sys/kernel/tracing/enabled_functions", "cmdline_proc_show (1) R I   \ttramp: 0xffffffffc0201000 (kprobe_ftrace_handler+0x0/0x1d0) ->kprobe_ftrace_handler+0x0/0x1d0\n")
				tr.write("sys/kernel/debug/kprobes/list", "ffffffff8123a0b0  k  cmdline_proc_show+0x0    [FTRACE]\n")
			},
			detail: "IPMODIFY"},
		{name: "kprobes/another live patch", module: "klp_vmlinux.ko", id: IDKprobes, want: Pass,
			setup: func(tr *tree) {
				tr.write("sys/kernel/tracing/enabled_functions", "cmdline_proc_show (1) R I   \ttramp: 0xffffffffc0201000 (klp_ftrace_handler+0x0/0x1d0)\n")
				tr.patch("p1", true, false, "vmlinux/cmdline_proc_show,1")
			},
			detail: "already hooked by live patch p1"},
		{name: "kprobes/plain kprobe", module: "klp_vmlinux.ko", id: IDKprobes, want: Warn, reason: "kprobes on 1 replaced function: cmdline_proc_show in vmlinux",
			setup: func(tr *tree) {
				tr.write("sys/kernel/tracing/enabled_functions", "cmdline_proc_show (1) R     \ttramp: 0xffffffffc0201000 (kprobe_ftrace_handler+0x0/0x1d0)\n")
				tr.write("sys/kernel/debug/kprobes/list", "ffffffff8123a0b0  k  cmdline_proc_show+0x0    [FTRACE]\n")
			},
			detail: "it does not modify the instruction pointer, so it coexists"},
		{name: "kprobes/plain kprobe and a live patch", module: "klp_vmlinux.ko", id: IDKprobes, want: Warn,
			setup: func(tr *tree) {
				tr.write("sys/kernel/tracing/enabled_functions", "cmdline_proc_show (2) R I   \ttramp: ftrace_regs_caller+0x0/0x65 (klp_ftrace_handler+0x0/0x1d0)\n")
				tr.write("sys/kernel/debug/kprobes/list", "ffffffff8123a0b0  k  cmdline_proc_show+0x0    [FTRACE]\n")
				tr.patch("p1", true, false, "vmlinux/cmdline_proc_show,1")
			},
			detail: "so it coexists"},
		{name: "kprobes/kretprobe", module: "klp_vmlinux.ko", id: IDKprobes, want: Warn,
			setup: func(tr *tree) {
				tr.write("sys/kernel/tracing/enabled_functions", "version_proc_show (1) R    \n")
				tr.write("sys/kernel/debug/kprobes/list", "0000000000000000  r  version_proc_show+0x0    [FTRACE]\n")
			},
			detail: "kretprobe at version_proc_show+0x0"},
		{name: "kprobes/inside the function", module: "klp_vmlinux.ko", id: IDKprobes, want: Warn,
			setup: func(tr *tree) {
				tr.write("sys/kernel/debug/kprobes/list", "ffffffff8123a0c4  k  cmdline_proc_show+0x14    [OPTIMIZED]\n")
			},
			detail: "stops firing once the function is redirected"},
		{name: "kprobes/disabled", module: "klp_vmlinux.ko", id: IDKprobes, want: Warn,
			setup: func(tr *tree) {
				tr.write("sys/kernel/debug/kprobes/list", "ffffffff8123a0b0  k  cmdline_proc_show+0x0    [DISABLED][FTRACE]\n")
			},
			detail: "disabled now"},
		{name: "kprobes/gone", module: "klp_vmlinux.ko", id: IDKprobes, want: Pass,
			setup: func(tr *tree) {
				tr.write("sys/kernel/debug/kprobes/list", "ffffffff8123a0b0  k  cmdline_proc_show+0x0    [GONE]\n")
			}},
		{name: "kprobes/other module's function", module: "klp_vmlinux.ko", id: IDKprobes, want: Pass,
			setup: func(tr *tree) {
				tr.write("sys/kernel/debug/kprobes/list", "ffffffffc0a01000  k  cmdline_proc_show+0x0  other [FTRACE]\n")
			}},
		{name: "kprobes/flags unreadable", module: "klp_vmlinux.ko", id: IDKprobes, want: Warn,
			setup: func(tr *tree) {
				tr.remove("sys/kernel/tracing/enabled_functions")
				tr.write("sys/kernel/debug/kprobes/list", "ffffffff8123a0b0  k  cmdline_proc_show+0x0    [FTRACE]\n")
			},
			detail: "if it has a post_handler the kernel refuses the patch (EBUSY)"},
		{name: "kprobes/before 5.4", module: "klp_vmlinux.ko", id: IDKprobes, want: Fail,
			edit: func(m *modinfo.Module) { m.Vermagic = "4.19.0-27-amd64 SMP mod_unload modversions " },
			setup: func(tr *tree) {
				tr.write("proc/sys/kernel/osrelease", "4.19.0-27-amd64\n")
				tr.remove("sys/kernel/tracing/enabled_functions")
				tr.write("sys/kernel/debug/kprobes/list", "ffffffff8123a0b0  r  cmdline_proc_show+0x0    [FTRACE]\n")
			},
			detail: "before Linux 5.4"},
		{name: "kprobes/only enabled_functions", module: "klp_vmlinux.ko", id: IDKprobes, want: Pass, reason: "kprobes not listed",
			setup: func(tr *tree) { tr.remove("sys/kernel/debug") }},
		{name: "kprobes/only kprobes list", module: "klp_vmlinux.ko", id: IDKprobes, want: Pass, reason: "other ftrace users not checked",
			setup: func(tr *tree) { tr.remove("sys/kernel/tracing/enabled_functions") }},
		{name: "kprobes/nothing readable", module: "klp_vmlinux.ko", id: IDKprobes, want: Skip, reason: "kprobes/list does not exist",
			setup: func(tr *tree) { tr.remove("sys/kernel/debug"); tr.remove("sys/kernel/tracing") }},
	})
}

func TestSelection(t *testing.T) {
	tr := newTree(t)
	mod := loadModule(t, "klp_vmlinux.ko")
	if got, want := ids(tr.run(nil, false)), IDs(false, false); !reflect.DeepEqual(got, want) {
		t.Errorf("system checks %v, want %v", got, want)
	}
	if got, want := ids(tr.run(mod, false)), IDs(true, false); !reflect.DeepEqual(got, want) {
		t.Errorf("module checks %v, want %v", got, want)
	}
	cheap := IDs(true, true)
	want := []string{IDLivepatchSupported, IDModulesDisabled, IDFtraceEnabled, IDLockdown, IDSigEnforce, IDTransition,
		IDLivepatchModule, IDVermagic, IDAlreadyLoaded}
	if !reflect.DeepEqual(cheap, want) {
		t.Errorf("cheap checks %v, want %v", cheap, want)
	}
	// The cheap run must not touch the big files: make them unreadable
	// by replacing them with directories.
	tr.remove("proc/kallsyms")
	tr.mkdir("proc/kallsyms")
	tr.remove("sys/kernel/tracing")
	if got := ids(tr.run(mod, true)); !reflect.DeepEqual(got, want) {
		t.Errorf("cheap run %v, want %v", got, want)
	}
}

func TestResult(t *testing.T) {
	for _, tc := range []struct {
		statuses []Status
		want     Status
	}{
		{nil, Pass},
		{[]Status{Pass, Pass}, Pass},
		{[]Status{Pass, Skip}, Warn},
		{[]Status{Warn, Pass}, Warn},
		{[]Status{Warn, Fail, Skip}, Fail},
	} {
		rep := &Report{}
		for _, s := range tc.statuses {
			rep.Checks = append(rep.Checks, Check{Status: s})
		}
		if got := rep.Result(); got != tc.want {
			t.Errorf("Result(%v) = %s, want %s", tc.statuses, got, tc.want)
		}
	}
}

func TestHealthySystem(t *testing.T) {
	tr := newTree(t)
	rep := tr.run(loadModule(t, "klp_vmlinux.ko"), false)
	for _, c := range rep.Checks {
		if c.Status != Pass && c.ID != IDSigEnforce {
			t.Errorf("%s: %s %q", c.ID, c.Status, c.Reason)
		}
	}
	if rep.Result() != Warn { // the unsigned module taints the kernel
		t.Errorf("result %s, want warn", rep.Result())
	}
}

func TestRunErrors(t *testing.T) {
	tr := newTree(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Inputs{Kernel: tr.handle()}); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a cancelled context: %v", err)
	}
}

// unreadableFiles are the files TestUnreadable makes mode 0: the big scans,
// which only root may read on a real kernel (kallsyms shows zero addresses
// to others, tracefs and debugfs are mode 0700 or 0600).
var unreadableFiles = []string{"proc/kallsyms", "sys/kernel/tracing/available_filter_functions", "sys/kernel/tracing/enabled_functions", "sys/kernel/debug/kprobes/list"}

// TestUnreadable checks that files root alone can read make checks skip
// with "run as root", not fail. Root reads every file whatever its mode,
// so as root the test runs itself again as uid 65534.
func TestUnreadable(t *testing.T) {
	if root, ok := fakefs.InUnprivilegedChild(); ok {
		checkUnreadable(t, root)
		return
	}
	tr := newTree(t)
	for _, p := range unreadableFiles {
		if err := os.Chmod(tr.path(p), 0); err != nil {
			t.Fatal(err)
		}
	}
	// The child runs in another directory and may not enter this one:
	// give it the module in the tree.
	mod, err := os.ReadFile(filepath.Join("..", "..", "modinfo", "testdata", "klp_vmlinux.ko"))
	if err != nil {
		t.Fatal(err)
	}
	tr.write("klp_vmlinux.ko", string(mod))
	root := filepath.Dir(tr.sys)
	if os.Geteuid() != 0 {
		checkUnreadable(t, root)
		return
	}
	fakefs.RunUnprivileged(t, "TestUnreadable", root)
}

func checkUnreadable(t *testing.T, root string) {
	t.Helper()
	if os.Geteuid() == 0 {
		t.Fatal("running as root: permission errors cannot happen")
	}
	tr := &tree{t: t, sys: filepath.Join(root, "sys"), proc: filepath.Join(root, "proc"), boot: filepath.Join(root, "boot")}
	mod, err := modinfo.Open(filepath.Join(root, "klp_vmlinux.ko"))
	if err != nil {
		t.Fatal(err)
	}
	rep := tr.run(mod, false)
	want := map[string]string{
		IDSymbols:   tr.path("proc/kallsyms") + " is not readable (permission denied)",
		IDTraceable: tr.path("sys/kernel/tracing/available_filter_functions") + " is not readable (permission denied)",
		IDKprobes: tr.path("sys/kernel/debug/kprobes/list") + " is not readable (permission denied); " +
			tr.path("sys/kernel/tracing/enabled_functions") + " is not readable (permission denied)",
		IDSilentOverride: tr.path("sys/kernel/tracing/enabled_functions") + " is not readable (permission denied); " +
			"BPF programs not listed: list BPF programs: not the running kernel",
	}
	for _, c := range rep.Checks {
		switch c.ID {
		case IDSymbols, IDTraceable, IDKprobes, IDSilentOverride:
			if c.Status != Skip || !strings.Contains(c.Fix, "root") || c.Reason != want[c.ID] {
				t.Errorf("%s: %s %q fix %q, want skip with %q and run as root", c.ID, c.Status, c.Reason, c.Fix, want[c.ID])
			}
			delete(want, c.ID)
		default:
			if c.Status == Skip {
				t.Errorf("%s: skip %q, but its files are readable", c.ID, c.Reason)
			}
		}
	}
	if len(want) != 0 {
		t.Errorf("checks did not run: %v", want)
	}
}
