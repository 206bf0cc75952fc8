package ftrace

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/klp-project/klp/kernel"
)

func TestClassifyBPF(t *testing.T) {
	for _, tc := range []struct {
		link kernel.BPFLink
		kind string
		eff  Effect
	}{
		{kernel.BPFLink{Attach: kernel.AttachFmodRet}, KindBPFFmodRet, Overrides},
		{kernel.BPFLink{Attach: kernel.AttachLSM}, KindBPFLSM, Overrides},
		{kernel.BPFLink{Attach: kernel.AttachFentry}, KindBPFFentry, Coexists},
		{kernel.BPFLink{Attach: kernel.AttachFexit}, KindBPFFexit, Coexists},
		{kernel.BPFLink{Attach: kernel.AttachKprobe}, KindBPFKprobe, Coexists},
		{kernel.BPFLink{Attach: kernel.AttachKprobe, Override: true}, KindBPFKprobeOverride, Overrides},
		{kernel.BPFLink{Attach: kernel.AttachKprobeMulti, Override: true}, KindBPFKprobeOverride, Overrides},
	} {
		kind, eff := ClassifyBPF(tc.link)
		if kind != tc.kind || eff != tc.eff {
			t.Errorf("%+v: %s %s, want %s %s", tc.link, kind, eff, tc.kind, tc.eff)
		}
	}
}

func TestUserString(t *testing.T) {
	for u, want := range map[User]string{
		{Kind: KindBPFFmodRet, Program: "fix", ProgramID: 12, LinkID: 7}: "BPF fmod_ret program fix (id 12, link 7)",
		{Kind: KindBPFKprobeOverride, ProgramID: 3, LinkID: 4}:           "BPF kprobe (bpf_override_return) program (unnamed) (id 3, link 4)",
		{Kind: KindDirect, Source: "flag D"}:                             "a direct call (BPF trampoline): flag D",
		{Kind: KindIPModify, Source: "flag I"}:                           "an ftrace user that changes the instruction pointer: flag I",
		{Kind: KindKprobe, Source: "kprobe at f+0x0"}:                    "kprobe: kprobe at f+0x0",
		{Kind: KindFailFunction, Source: "fail_function/f"}:              "fail_function error injection: fail_function/f",
		{Kind: "other", Source: "x"}:                                     "other: x",
	} {
		if got := u.String(); got != want {
			t.Errorf("%+v: %q, want %q", u, got, want)
		}
	}
}

func TestStateUsers(t *testing.T) {
	entries, err := ParseEnabledFunctions(strings.NewReader(enabled612), nil)
	if err != nil {
		t.Fatal(err)
	}
	fmodRet := kernel.BPFLink{ID: 7, ProgramID: 12, Program: "klp_e2e_fmodret", Attach: kernel.AttachFmodRet, Object: "vmlinux", Function: "security_locked_down"}
	fentry := kernel.BPFLink{ID: 8, ProgramID: 13, Program: "watch", Attach: kernel.AttachFentry, Object: "vmlinux", Function: "security_locked_down"}
	s := State{EnabledPath: "/sys/kernel/tracing/enabled_functions", Enabled: entries, BPF: []kernel.BPFLink{fentry, fmodRet},
		Kprobes: []Kprobe{{Type: "k", Object: "vmlinux", Function: "cmdline_proc_show", Offset: "0x0", Flags: "[FTRACE]"},
			{Type: "k", Object: "vmlinux", Function: "cmdline_proc_show", Offset: "0x0", Flags: "[GONE]"}},
		FailFunctions: []string{"klp_e2e_target_work"}}
	for _, tc := range []struct {
		name    string
		state   State
		f       Func
		patched bool
		want    []User
	}{
		{"fmod_ret and fentry on a patched function", s, Func{Vmlinux, "security_locked_down"}, true, []User{
			{Kind: KindBPFFmodRet, Effect: Overrides, Program: "klp_e2e_fmodret", ProgramID: 12, LinkID: 7, Source: "bpf(2)"},
			{Kind: KindBPFFentry, Effect: Coexists, Program: "watch", ProgramID: 13, LinkID: 8, Source: "bpf(2)"},
		}},
		{"a patched function with a kprobe", s, Func{Vmlinux, "cmdline_proc_show"}, true, []User{
			{Kind: KindKprobe, Effect: Coexists, Source: "kprobe at cmdline_proc_show+0x0 [FTRACE]"},
		}},
		{"IPMODIFY that is not a patch", s, Func{Vmlinux, "cmdline_proc_show"}, false, []User{
			{Kind: KindIPModify, Effect: Blocks, Source: "flag I in /sys/kernel/tracing/enabled_functions"},
			{Kind: KindKprobe, Effect: Coexists, Source: "kprobe at cmdline_proc_show+0x0 [FTRACE]"},
		}},
		{"fail_function", s, Func{"klp_e2e_target", "klp_e2e_target_work"}, false, []User{
			{Kind: KindFailFunction, Effect: Blocks, Source: "fail_function/klp_e2e_target_work"},
		}},
		{"trampoline without a link", s, Func{Vmlinux, "schedule_timeout_interruptible"}, false, []User{
			{Kind: KindDirect, Effect: MayOverride, Source: "flag D in /sys/kernel/tracing/enabled_functions (direct-->bpf_trampoline_6442474551+0x0/0xd8)"},
		}},
		{"programs not listed", State{EnabledPath: "ef", Enabled: entries, BPFErr: errors.New("list BPF programs: permission denied")},
			Func{Vmlinux, "security_locked_down"}, true, []User{
				{Kind: KindDirect, Effect: MayOverride, Source: "flag D in ef; BPF programs not listed: list BPF programs: permission denied"},
			}},
		{"nobody", s, Func{Vmlinux, "version_proc_show"}, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.state.Users(tc.f, tc.patched)); diff != "" {
				t.Errorf("unexpected users (-want +got):\n%s", diff)
			}
		})
	}
}
