package preflight

import (
	"reflect"
	"strings"
	"testing"
)

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
