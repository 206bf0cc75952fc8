package ftrace

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Lines read on Debian's 6.1 and 6.12 (docs/kernel-notes.md): a live
// patch alone, a BPF fexit program's trampoline alone, both on one
// function, and a module's function.
const (
	enabled61 = "cmdline_proc_show (1)   I  \ttramp: 0xffffffffc02b4000 (klp_ftrace_handler+0x0/0x110) ->klp_ftrace_handler+0x0/0x110\n" +
		"schedule_timeout_interruptible (1) R   D\ttramp: ftrace_regs_caller+0x0/0x58 (call_direct_funcs+0x0/0x30)\n" +
		"\tdirect-->bpf_trampoline_6442513548+0x0/0x1000\n" +
		"security_locked_down (2) R I D ->arch_ftrace_ops_list_func+0x0/0x1d0\n" +
		"\tdirect-->bpf_trampoline_6442516000+0x0/0x1000\n"
	enabled612 = "cmdline_proc_show (1)   I     M \ttramp: 0xffffffffc057e000 (klp_ftrace_handler+0x0/0x100) ->klp_ftrace_handler+0x0/0x100\n" +
		"schedule_timeout_interruptible (1) R   D   M \ttramp: ftrace_regs_caller+0x0/0x65 (call_direct_funcs+0x0/0x20)\n" +
		"\tdirect-->bpf_trampoline_6442474551+0x0/0xd8\n" +
		"security_locked_down (2) R I D   M  ->arch_ftrace_ops_list_func+0x0/0x1d0\n" +
		"klp_e2e_target_work [klp_e2e_target] (1)   I     M \ttramp: 0xffffffffc0580000 (klp_ftrace_handler+0x0/0x100) ->klp_ftrace_handler+0x0/0x100\n"
)

func TestParseEnabledFunctions(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []Entry
	}{
		{"6.1", enabled61, []Entry{
			{Func: Func{Vmlinux, "cmdline_proc_show"}, Count: 1, Flags: "I", Tramp: "tramp: 0xffffffffc02b4000 (klp_ftrace_handler+0x0/0x110) ->klp_ftrace_handler+0x0/0x110"},
			{Func: Func{Vmlinux, "schedule_timeout_interruptible"}, Count: 1, Flags: "RD", Tramp: "tramp: ftrace_regs_caller+0x0/0x58 (call_direct_funcs+0x0/0x30)",
				Direct: "bpf_trampoline_6442513548+0x0/0x1000"},
			{Func: Func{Vmlinux, "security_locked_down"}, Count: 2, Flags: "RID", Direct: "bpf_trampoline_6442516000+0x0/0x1000"},
		}},
		{"6.12", enabled612, []Entry{
			{Func: Func{Vmlinux, "cmdline_proc_show"}, Count: 1, Flags: "IM", Tramp: "tramp: 0xffffffffc057e000 (klp_ftrace_handler+0x0/0x100) ->klp_ftrace_handler+0x0/0x100"},
			{Func: Func{Vmlinux, "schedule_timeout_interruptible"}, Count: 1, Flags: "RDM", Tramp: "tramp: ftrace_regs_caller+0x0/0x65 (call_direct_funcs+0x0/0x20)",
				Direct: "bpf_trampoline_6442474551+0x0/0xd8"},
			{Func: Func{Vmlinux, "security_locked_down"}, Count: 2, Flags: "RIDM"},
			{Func: Func{"klp_e2e_target", "klp_e2e_target_work"}, Count: 1, Flags: "IM", Tramp: "tramp: 0xffffffffc0580000 (klp_ftrace_handler+0x0/0x100) ->klp_ftrace_handler+0x0/0x100"},
		}},
		{"5.5-era P flag, odd lines", "meminfo_proc_show (1) R P I\n\tdirect-->orphan\nbroken\nno_count R I\nx (y) R\n", []Entry{
			{Func: Func{Vmlinux, "meminfo_proc_show"}, Count: 1, Flags: "RPI", Direct: "orphan"},
			{Func: Func{Vmlinux, "x"}, Count: -1, Flags: "R"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseEnabledFunctions(strings.NewReader(tc.file), nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("unexpected entries (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseEnabledFunctionsWant(t *testing.T) {
	got, err := ParseEnabledFunctions(strings.NewReader(enabled61), func(n string) bool { return n == "cmdline_proc_show" })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "cmdline_proc_show" || got[0].Direct != "" {
		t.Errorf("got %+v, want cmdline_proc_show alone, without the next function's direct line", got)
	}
	if !got[0].Has(FlagIPModify) || got[0].Has(FlagDirect) {
		t.Errorf("flags %q: want I, not D", got[0].Flags)
	}
}

func TestFuncString(t *testing.T) {
	for f, want := range map[Func]string{{Vmlinux, "a"}: "a", {"", "b"}: "b", {"m", "c"}: "c [m]"} {
		if got := f.String(); got != want {
			t.Errorf("%#v: %q, want %q", f, got, want)
		}
	}
}
