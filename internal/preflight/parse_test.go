package preflight

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseKprobes(t *testing.T) {
	const list = "ffffffff8123a0b0  k  cmdline_proc_show+0x0    [FTRACE]\n" +
		"0000000000000000  r  klp_target_value+0x0  klp_target [DISABLED][FTRACE]\n" +
		"ffffffff81000000  k  0xffffffff81000000 \n" + // no symbol: skipped
		"ffffffff8123a0c4  k  do_sys_open+0x14  \n" +
		"\n"
	got, err := parseKprobes(strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	want := []kprobe{
		{typ: "k", object: "vmlinux", function: "cmdline_proc_show", offset: "0x0", flags: "[FTRACE]"},
		{typ: "r", object: "klp_target", function: "klp_target_value", offset: "0x0", flags: "[DISABLED][FTRACE]"},
		{typ: "k", object: "vmlinux", function: "do_sys_open", offset: "0x14"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if !got[1].has("DISABLED") || got[0].has("DISABLED") || got[1].kind() != "kretprobe" || got[0].kind() != "kprobe" {
		t.Error("flags or kind wrong")
	}
}

func TestParseEnabledFunctions(t *testing.T) {
	const file = "cmdline_proc_show (1) R I   \ttramp: 0xffffffffc0201000 (klp_ftrace_handler+0x0/0x1d0) ->klp_ftrace_handler+0x0/0x1d0\n" +
		"\tdirect-->0xffffffffc0202000\n" +
		"version_proc_show (2) R       M \ttramp: ...\n" +
		"klp_target_value [klp_target] (1)            \n" +
		"schedule (1)            \n" + // not wanted
		"meminfo_proc_show (1) R P I\n" // 5.5-era P flag
	got, err := parseEnabledFunctions(strings.NewReader(file), map[string]bool{
		"cmdline_proc_show": true, "version_proc_show": true, "klp_target_value": true, "meminfo_proc_show": true,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[objFunc]string{
		{"vmlinux", "cmdline_proc_show"}:   "RI",
		{"vmlinux", "version_proc_show"}:   "RM",
		{"klp_target", "klp_target_value"}: "",
		{"vmlinux", "meminfo_proc_show"}:   "RPI",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestParseFilterFunctions(t *testing.T) {
	got, err := parseFilterFunctions(strings.NewReader("cmdline_proc_show\nklp_target_value [klp_target]\nother\n__ftrace_invalid_address___64\n"),
		map[string]bool{"cmdline_proc_show": true, "klp_target_value": true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[objFunc]bool{{"vmlinux", "cmdline_proc_show"}: true, {"klp_target", "klp_target_value"}: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestParseConfig(t *testing.T) {
	got, err := parseConfig(strings.NewReader("#\n# Automatically generated file\n#\nCONFIG_LIVEPATCH=y\n# CONFIG_MODULE_SIG_FORCE is not set\nCONFIG_LOCALVERSION=\"-cloud\"\nCONFIG_NR_CPUS=64\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"CONFIG_LIVEPATCH": "y", "CONFIG_LOCALVERSION": "-cloud", "CONFIG_NR_CPUS": "64"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for cfg, arch := range map[string]string{
		"CONFIG_X86_64=y": "x86_64",
		"CONFIG_ARM64=y":  "aarch64",
		"CONFIG_PPC64=y\nCONFIG_CPU_LITTLE_ENDIAN=y": "ppc64le",
		"CONFIG_PPC64=y":                 "ppc64",
		"CONFIG_S390=y":                  "s390x",
		"CONFIG_RISCV=y\nCONFIG_64BIT=y": "riscv64",
		"CONFIG_X86_32=y":                "",
	} {
		v, _ := parseConfig(strings.NewReader(cfg))
		if got := (&kconfig{values: v}).machine(); got != arch {
			t.Errorf("%q: machine %q, want %q", cfg, got, arch)
		}
	}
}

func TestKernelVersion(t *testing.T) {
	for rel, want := range map[string][2]int{
		"6.1.0-56-cloud-amd64":         {6, 1},
		"6.12.38+deb12-cloud-amd64":    {6, 12},
		"4.19.0-27-amd64":              {4, 19},
		"5.14.21-150400.24.33-default": {5, 14},
		"5.4rc1":                       {5, 4},
	} {
		maj, min, ok := kernelVersion(rel)
		if !ok || maj != want[0] || min != want[1] {
			t.Errorf("kernelVersion(%q) = %d.%d %v", rel, maj, min, ok)
		}
	}
	for _, rel := range []string{"", "linux", "6", "x.1"} {
		if _, _, ok := kernelVersion(rel); ok {
			t.Errorf("kernelVersion(%q) ok", rel)
		}
	}
	if !versionBefore("5.3.0", 5, 4) || versionBefore("5.4.0", 5, 4) || versionBefore("garbage", 5, 4) {
		t.Error("versionBefore")
	}
}
