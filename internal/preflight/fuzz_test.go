package preflight

import (
	"bufio"
	"errors"
	"strings"
	"testing"
	"unicode"
)

// The parsers of kernel text skip what they do not understand. Each fuzz
// target appends a well-formed line to arbitrary input and checks that the
// parser still finds it (whatever came before cannot swallow it), unless a
// line was too long to scan, which is the one error a parser returns; and
// that what it returns is made of the input's pieces.

// scanOK reports whether err is nil, failing t unless it is the scanner's
// "line too long", which may then be the reason the last line was not
// reached.
func scanOK(t *testing.T, err error) bool {
	t.Helper()
	if err != nil && !errors.Is(err, bufio.ErrTooLong) {
		t.Fatalf("error %v, want nil or bufio.ErrTooLong", err)
	}
	return err == nil
}

func FuzzParseConfig(f *testing.F) {
	f.Add("#\n# Automatically generated file\n#\nCONFIG_LIVEPATCH=y\n# CONFIG_MODULE_SIG_FORCE is not set\nCONFIG_LOCALVERSION=\"-cloud\"\nCONFIG_NR_CPUS=64\n")
	f.Add("CONFIG_X86_64=y\r\nCONFIG_ARM64\nCONFIG_=\n  CONFIG_A==\"\"\n")
	f.Fuzz(func(t *testing.T, in string) {
		values, err := parseConfig(strings.NewReader(in + "\nCONFIG_KLP_FUZZ=\"y\"\n"))
		if !scanOK(t, err) {
			return
		}
		if v := values["CONFIG_KLP_FUZZ"]; v != "y" {
			t.Errorf("CONFIG_KLP_FUZZ = %q, want y", v)
		}
		for k, v := range values {
			if !strings.HasPrefix(k, "CONFIG_") || strings.Contains(k, "=") || strings.ContainsAny(k+v, "\n") {
				t.Errorf("option %q=%q is not a CONFIG_ line's", k, v)
			}
			if strings.HasPrefix(v, `"`) || strings.HasSuffix(v, `"`) {
				t.Errorf("%s=%q keeps its quotes", k, v)
			}
		}
		(&kconfig{values: values}).machine()
	})
}

func FuzzParseFilterFunctions(f *testing.F) {
	f.Add("cmdline_proc_show\nklp_target_value [klp_target]\nother\n__ftrace_invalid_address___64\n")
	f.Add("klp_fuzz_fn []\nklp_fuzz_fn [\n[klp_fuzz_fn]\n")
	want := map[string]bool{"klp_fuzz_fn": true, "cmdline_proc_show": true}
	f.Fuzz(func(t *testing.T, in string) {
		set, err := parseFilterFunctions(strings.NewReader(in+"\nklp_fuzz_fn [klp_fuzz_mod]\n"), want)
		if !scanOK(t, err) {
			return
		}
		if !set[objFunc{"klp_fuzz_mod", "klp_fuzz_fn"}] {
			t.Errorf("klp_fuzz_fn [klp_fuzz_mod] not found in %v", set)
		}
		for k := range set {
			if !want[k.name] {
				t.Errorf("%v kept, not wanted", k)
			}
			if k.object != "vmlinux" && strings.IndexFunc(k.object, unicode.IsSpace) >= 0 {
				t.Errorf("object %q is not one word", k.object)
			}
		}
	})
}
