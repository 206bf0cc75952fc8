package kmod

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseModules(t *testing.T) {
	const procModules = `test_klp_livepatch 16384 1 - Live 0xffffffffc0a00000 (OEK)
nf_conntrack 176128 3 nft_ct,nf_nat,xt_conntrack, Live 0x0000000000000000
kvm 1142784 0 [permanent], Live 0xffffffffc0b00000
going_mod 8192 0 - Unloading 0xffffffffc0c00000 (OE-)
coming_mod 8192 0 - Loading 0xffffffffc0d00000 (O+)
nounload 4096 - - Live 0xffffffffc0e00000

`
	got, err := parseModules(strings.NewReader(procModules))
	if err != nil {
		t.Fatal(err)
	}
	want := Modules{
		{Name: "test_klp_livepatch", Size: 16384, Refcnt: 1, State: StateLive, Address: 0xffffffffc0a00000, Taints: "OEK"},
		{Name: "nf_conntrack", Size: 176128, Refcnt: 3, Holders: []string{"nft_ct", "nf_nat", "xt_conntrack"}, State: StateLive},
		{Name: "kvm", Size: 1142784, Permanent: true, State: StateLive, Address: 0xffffffffc0b00000},
		{Name: "going_mod", Size: 8192, State: StateUnloading, Address: 0xffffffffc0c00000, Taints: "OE"},
		{Name: "coming_mod", Size: 8192, State: StateLoading, Address: 0xffffffffc0d00000, Taints: "O"},
		{Name: "nounload", Size: 4096, Refcnt: -1, State: StateLive, Address: 0xffffffffc0e00000},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("unexpected diff (-want +got):\n%s", diff)
	}
	if m, ok := got.Find("test-klp-livepatch"); !ok || m.Refcnt != 1 {
		t.Errorf("Find with '-': %v %v", m, ok)
	}
}

func TestParseModulesErrors(t *testing.T) {
	for _, line := range []string{
		"short 1 2",
		"m x 0 - Live 0x0",
		"m 1 x - Live 0x0",
		"m 1 0 - Live zz",
		"m 1 0 - Live 0x0 OEK",
	} {
		if _, err := parseModules(strings.NewReader(line)); !errors.Is(err, ErrParse) {
			t.Errorf("%q: err = %v, want ErrParse", line, err)
		}
	}
}
