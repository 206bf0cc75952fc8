package kmod

import (
	"errors"
	"github.com/klp-project/klp/kernel"
	"path/filepath"
	"testing"
)

func TestNormalizeName(t *testing.T) {
	for in, want := range map[string]string{
		"/lib/modules/6.1/extra/test-klp.ko.xz": "test_klp",
		"livepatch-fix.ko":                      "livepatch_fix",
		"foo.ko.zst":                            "foo",
		"foo.ko.gz":                             "foo",
		"already_ok":                            "already_ok",
	} {
		if got := NormalizeName(in); got != want {
			t.Errorf("NormalizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"test_klp_livepatch", "kvm-intel", "a", "x86_pkg_temp_thermal"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "../etc", "a/b", "..", ".", "foo.ko", "a,b", "a b", "a\x00", "a\n",
		"a23456789012345678901234567890123456789012345678901234567890"} {
		if err := ValidateName(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q: err = %v, want ErrInvalidName", bad, err)
		}
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	h, err := kernel.Open(kernel.Roots{Proc: dir, Sys: dir, Dev: filepath.Join(dir, "dev")})
	if err != nil {
		t.Fatal(err)
	}
	fs := New(h, Options{})
	if k, ok := fs.kmsg.(DevKmsg); !ok || k.Path != filepath.Join(dir, "dev", "kmsg") {
		t.Errorf("default kmsg %#v: want the handle's dev root", fs.kmsg)
	}
	if _, err := NewDefaultFS(); err != nil {
		t.Errorf("NewDefaultFS: %v", err)
	}
}
