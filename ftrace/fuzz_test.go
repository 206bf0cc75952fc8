package ftrace

import (
	"bufio"
	"errors"
	"strings"
	"testing"
)

// Each fuzz target appends a well-formed line to arbitrary input and checks
// that the parser still finds it, unless a line was too long to scan (the
// one error a parser returns), and that what it returns is made of the
// input's pieces.

func scanOK(t *testing.T, err error) bool {
	t.Helper()
	if err != nil && !errors.Is(err, bufio.ErrTooLong) {
		t.Fatalf("error %v, want nil or bufio.ErrTooLong", err)
	}
	return err == nil
}

func FuzzParseEnabledFunctions(f *testing.F) {
	f.Add(enabled61)
	f.Add(enabled612)
	f.Add("klp_fuzz_fn [klp_fuzz_mod]\nklp_fuzz_fn (\n klp_fuzz_fn (1) R\n\tdirect-->\n")
	f.Fuzz(func(t *testing.T, in string) {
		entries, err := ParseEnabledFunctions(strings.NewReader(in+"\nklp_fuzz_fn [klp_fuzz_mod] (3) R I D \ttramp: 0x0\n\tdirect-->bpf_trampoline_1+0x0/0x1\n"), nil)
		if !scanOK(t, err) {
			return
		}
		if len(entries) == 0 {
			t.Fatal("the last line was not found")
		}
		last := entries[len(entries)-1]
		if want := (Entry{Func: Func{"klp_fuzz_mod", "klp_fuzz_fn"}, Count: 3, Flags: "RID", Tramp: "tramp: 0x0", Direct: "bpf_trampoline_1+0x0/0x1"}); last != want {
			t.Errorf("last entry %+v, want %+v", last, want)
		}
		for _, e := range entries {
			if strings.ContainsAny(e.Flags, " \t\n") || strings.ContainsAny(e.Name, " \t\n") {
				t.Errorf("%+v: name or flags hold white space", e)
			}
		}
	})
}

func FuzzParseKprobes(f *testing.F) {
	f.Add("ffffffff8123a0b0  k  cmdline_proc_show+0x0    [FTRACE]\n" +
		"0000000000000000  r  klp_target_value+0x0  klp_target [DISABLED][FTRACE]\n" +
		"ffffffff81000000  k  0xffffffff81000000 \n" +
		"ffffffff8123a0c4  k  do_sys_open+0x14  \n")
	f.Add("x j a+b+c m1 m2 [GONE] [OPTIMIZED]\n+\n")
	f.Fuzz(func(t *testing.T, in string) {
		probes, err := ParseKprobes(strings.NewReader(in + "\nffffffffc0a01000  r  klp_fuzz_fn+0x10  klp_fuzz_mod [DISABLED][FTRACE]\n"))
		if !scanOK(t, err) {
			return
		}
		last := Kprobe{Type: "r", Object: "klp_fuzz_mod", Function: "klp_fuzz_fn", Offset: "0x10", Flags: "[DISABLED][FTRACE]"}
		if len(probes) == 0 || probes[len(probes)-1] != last {
			t.Fatalf("last probe not %+v: %+v", last, probes)
		}
		for _, p := range probes {
			if strings.Contains(p.Function, "+") || p.Flags != "" && !strings.HasPrefix(p.Flags, "[") {
				t.Errorf("probe %+v: function or flags malformed", p)
			}
		}
	})
}
