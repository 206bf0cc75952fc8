package ftrace

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseKprobes(t *testing.T) {
	const list = "ffffffff8123a0b0  k  cmdline_proc_show+0x0    [FTRACE]\n" +
		"0000000000000000  r  klp_target_value+0x0  klp_target [DISABLED][FTRACE]\n" +
		"ffffffff81000000  k  0xffffffff81000000 \n" + // no symbol: skipped
		"ffffffff8123a0c4  k  do_sys_open+0x14  \n" +
		"\n"
	got, err := ParseKprobes(strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	want := []Kprobe{
		{Type: "k", Object: "vmlinux", Function: "cmdline_proc_show", Offset: "0x0", Flags: "[FTRACE]"},
		{Type: "r", Object: "klp_target", Function: "klp_target_value", Offset: "0x0", Flags: "[DISABLED][FTRACE]"},
		{Type: "k", Object: "vmlinux", Function: "do_sys_open", Offset: "0x14"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("unexpected probes (-want +got):\n%s", diff)
	}
	if !got[1].Has("DISABLED") || got[0].Has("DISABLED") || got[1].Kind() != "kretprobe" || got[0].Kind() != "kprobe" {
		t.Error("flags or kind wrong")
	}
	if (Kprobe{Type: "j"}).Kind() != "jprobe" {
		t.Error("j is not a jprobe")
	}
}
