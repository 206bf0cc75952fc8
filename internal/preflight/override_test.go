package preflight

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/klp-project/klp/ftrace"
	"github.com/klp-project/klp/kernel"
)

func TestSilentOverrideFacts(t *testing.T) {
	p := livepatchMod("p", nil, "security_locked_down", "cmdline_proc_show")
	links := func(ls ...kernel.BPFLink) reading[[]kernel.BPFLink] {
		return reading[[]kernel.BPFLink]{path: "bpf(2)", v: ls}
	}
	noBPF := bad[[]kernel.BPFLink]("bpf(2)", errors.New("list BPF programs: not the running kernel"))
	cfg := func(opts ...string) reading[*kconfig] {
		v := map[string]string{}
		for _, o := range opts {
			v[o] = "y"
		}
		return reading[*kconfig]{v: &kconfig{values: v, source: bootConfig}}
	}
	debian := cfg("CONFIG_LIVEPATCH") // no CONFIG_BPF_KPROBE_OVERRIDE
	on := func(enabled reading[map[objFunc]string], bpf reading[[]kernel.BPFLink], edit ...func(*facts)) facts {
		f := facts{module: p, enabledFunctions: enabled, bpf: bpf, kprobes: probes(), config: debian}
		for _, e := range edit {
			e(&f)
		}
		return f
	}
	fmodRet := kernel.BPFLink{ID: 7, ProgramID: 12, Program: "klp_e2e_fmodret", Attach: kernel.AttachFmodRet,
		Object: "vmlinux", Function: "security_locked_down", Trampoline: "bpf_trampoline_6442513548"}
	fentry := kernel.BPFLink{ID: 8, ProgramID: 13, Program: "watch", Attach: kernel.AttachFentry,
		Object: "vmlinux", Function: "cmdline_proc_show", Trampoline: "bpf_trampoline_6442513549"}
	lsm := kernel.BPFLink{ID: 9, ProgramID: 14, Program: "policy", Attach: kernel.AttachLSM, Object: "vmlinux", Function: "security_locked_down"}
	override := kernel.BPFLink{ID: 10, ProgramID: 15, Program: "inject", Attach: kernel.AttachKprobe, Object: "vmlinux", Function: "cmdline_proc_show", Override: true}
	otherModule := kernel.BPFLink{ID: 11, ProgramID: 16, Program: "x", Attach: kernel.AttachFmodRet, Object: "ext4", Function: "security_locked_down"}
	const (
		overrides = ": callers would get the program's return value, the patched code would not run, and nothing would say so"
		observes  = ": it observes the calls; the patched code runs"
		detachFix = "detach the program (bpftool link; or stop its owner) or make sure its owner knows that its result, not the patch, is what callers get"
		listFix   = "run klp preflight as root on the running kernel to list the BPF programs (or bpftool link)"
		clean     = "no BPF program or other user would override the replaced functions"
	)
	ftraced := ftrace.Kprobe{Type: "k", Object: "vmlinux", Function: "cmdline_proc_show", Offset: "0x0", Flags: "[FTRACE]"}
	testCheck(t, silentOverride, append(noFunctionCases[:len(noFunctionCases):len(noFunctionCases)], []factCase{
		{"nothing readable", on(bad[map[objFunc]string](enabledPath, fs.ErrPermission), noBPF),
			Check{Status: Skip, Reason: enabledPath + " is not readable (permission denied); BPF programs not listed: list BPF programs: not the running kernel",
				Fix: "run as root, on the running kernel, with tracefs mounted"}},
		{"nobody else", on(flags(map[string]string{"cmdline_proc_show": "I"}), links()), Check{Status: Pass, Reason: clean}},
		{"fmod_ret", on(flags(map[string]string{"security_locked_down": "RD"}), links(fmodRet)),
			Check{Status: Warn, Reason: "a BPF program would override the patch of 1 function without a word: security_locked_down in vmlinux",
				Fix: detachFix, Details: []string{"security_locked_down in vmlinux: BPF fmod_ret program klp_e2e_fmodret (id 12, link 7)" + overrides}}},
		{"fmod_ret on an already patched function", on(flags(map[string]string{"security_locked_down": "RID"}), links(fmodRet)),
			Check{Status: Warn, Reason: "a BPF program would override the patch of 1 function without a word: security_locked_down in vmlinux",
				Fix: detachFix, Details: []string{"security_locked_down in vmlinux: BPF fmod_ret program klp_e2e_fmodret (id 12, link 7)" + overrides}}},
		{"LSM and kprobe override", on(flags(map[string]string{"security_locked_down": "RD", "cmdline_proc_show": "R"}), links(lsm, override)),
			Check{Status: Warn, Reason: "a BPF program would override the patch of 2 functions without a word: security_locked_down in vmlinux, cmdline_proc_show in vmlinux",
				Fix: detachFix, Details: []string{
					"security_locked_down in vmlinux: BPF LSM program policy (id 14, link 9)" + overrides,
					"cmdline_proc_show in vmlinux: BPF kprobe (bpf_override_return) program inject (id 15, link 10)" + overrides}}},
		{"fentry only", on(flags(map[string]string{"cmdline_proc_show": "RD"}), links(fentry)),
			Check{Status: Pass, Reason: clean, Details: []string{"cmdline_proc_show in vmlinux: BPF fentry program watch (id 13, link 8)" + observes}}},
		{"another module's function", on(flags(nil), links(otherModule)), Check{Status: Pass, Reason: clean}},
		{"trampoline, programs not listed", on(flags(map[string]string{"security_locked_down": "RD"}), noBPF),
			Check{Status: Warn, Reason: "1 replaced function may be overridden without a word: security_locked_down in vmlinux", Fix: listFix,
				Details: []string{"security_locked_down in vmlinux: a BPF trampoline (flag D in " + enabledPath + ") whose programs klp could not list (list BPF programs: not the running kernel): an fmod_ret or LSM program there would override the patch"}}},
		{"direct call without a link", on(flags(map[string]string{"security_locked_down": "RD"}), links()),
			Check{Status: Warn, Reason: "1 replaced function may be overridden without a word: security_locked_down in vmlinux", Fix: listFix,
				Details: []string{"security_locked_down in vmlinux: a direct call (flag D in " + enabledPath + ") that no BPF link explains (an ftrace direct-call module?): klp cannot tell whether it lets the function run"}}},
		{"kprobe, programs not listed, kernel can override", on(flags(nil), noBPF, func(f *facts) {
			f.kprobes, f.config = probes(ftraced), cfg("CONFIG_BPF_KPROBE_OVERRIDE")
		}),
			Check{Status: Warn, Reason: "1 replaced function may be overridden without a word: cmdline_proc_show in vmlinux", Fix: listFix,
				Details: []string{"cmdline_proc_show in vmlinux: kprobe at cmdline_proc_show+0x0 [FTRACE]: a BPF program on it that calls bpf_override_return() would override the patch, and klp could not list the BPF programs"}}},
		{"kprobe, programs not listed, kernel cannot override", on(flags(nil), noBPF, func(f *facts) { f.kprobes = probes(ftraced) }),
			Check{Status: Pass, Reason: clean + " (BPF programs not listed: list BPF programs: not the running kernel)"}},
		{"enabled_functions unreadable", on(bad[map[objFunc]string](enabledPath, fs.ErrNotExist), links()),
			Check{Status: Pass, Reason: clean + " (" + enabledPath + " does not exist)"}},
	}...))
}

// TestKprobesNamesFailFunction checks that an IPMODIFY user that is
// fail_function's injection is named as such.
func TestKprobesNamesFailFunction(t *testing.T) {
	p := livepatchMod("p", nil, "cmdline_proc_show")
	f := facts{module: p, kprobes: probes(), enabledFunctions: flags(map[string]string{"cmdline_proc_show": "RI"}),
		patches: patches(), release: val("/proc/sys/kernel/osrelease", rel61),
		failFunctions: reading[[]string]{path: "/sys/kernel/debug/fail_function", v: []string{"cmdline_proc_show"}}}
	c := kprobes(&f)
	want := "cmdline_proc_show in vmlinux: fail_function's error injection (fail_function/cmdline_proc_show) modifies its instruction pointer (IPMODIFY, flags \"RI\" in enabled_functions): the kernel refuses the patch (EBUSY)"
	if c.Status != Fail || len(c.Details) != 1 || c.Details[0] != want {
		t.Errorf("got %s %q, want fail with detail %q", c.Status, c.Details, want)
	}
}
