package livepatch

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewFSMountPoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name       string
		sys, proc  string
		notExist   bool
		mentioning string
	}{
		{"missing sysfs", missing, dir, true, missing},
		{"missing procfs", dir, missing, true, missing},
		{"sysfs is a file", file, dir, false, file},
		{"procfs is a file", dir, file, false, file},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewFS(tc.sys, tc.proc)
			if !errors.Is(err, ErrMountPoint) {
				t.Fatalf("NewFS(%q, %q) = %v, want ErrMountPoint", tc.sys, tc.proc, err)
			}
			if got := errors.Is(err, os.ErrNotExist); got != tc.notExist {
				t.Errorf("errors.Is(%v, os.ErrNotExist) = %v, want %v", err, got, tc.notExist)
			}
			if !strings.Contains(err.Error(), tc.mentioning) {
				t.Errorf("error %q does not name %s", err, tc.mentioning)
			}
		})
	}
}

func TestNewFSCleansRoots(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fs, err := NewFS(dir+"/./", dir+"//")
	if err != nil {
		t.Fatal(err)
	}
	if r := fs.Kernel().Roots(); r.Sys != dir || r.Proc != dir {
		t.Errorf("roots = %q, %q, want %q", r.Sys, r.Proc, dir)
	}
	if got, want := fs.LivepatchPath(), filepath.Join(dir, "kernel/livepatch"); got != want {
		t.Errorf("LivepatchPath() = %q, want %q", got, want)
	}
	if got, want := fs.ProcPath("1", "task"), filepath.Join(dir, "1/task"); got != want {
		t.Errorf("ProcPath() = %q, want %q", got, want)
	}
}

func TestValidateName(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		"livepatch_6_150400_2_2", "klp_e2e_target_patch", "a", strings.Repeat("x", 55), "kgraft-patch", "vmlinux",
	} {
		if err := ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{
		"", ".", "..", "../etc", "a/b", "/abs", "a/../b", "a..b", "trailing/", "nul\x00", strings.Repeat("x", 56),
	} {
		if err := ValidateName(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidName", name, err)
		}
	}
}

func TestPatchPathRefusesEscapes(t *testing.T) {
	t.Parallel()
	fs, _ := fixtureFS(t, "kernel-6.1")
	for _, name := range []string{"..", "../../../etc", "lp/../../x", "a/b", ""} {
		if p, err := fs.PatchPath(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("PatchPath(%q) = %q, %v, want ErrInvalidName", name, p, err)
		}
		if _, err := fs.Patch(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Patch(%q) = %v, want ErrInvalidName", name, err)
		}
	}
	got, err := fs.PatchPath("lp_6_1_0_27_cloud_2")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(fs.LivepatchPath(), "lp_6_1_0_27_cloud_2"); got != want {
		t.Errorf("PatchPath() = %q, want %q", got, want)
	}
}

func TestInterface(t *testing.T) {
	t.Parallel()
	for fixture, want := range map[string]Interface{
		"kernel-4.12":         InterfaceLivepatch,
		"kernel-6.14":         InterfaceLivepatch,
		"transition-blocking": InterfaceLivepatch,
		"sle12-kgraft":        InterfaceKGraft,
		"no-livepatch":        InterfaceNone,
	} {
		t.Run(fixture, func(t *testing.T) {
			t.Parallel()
			fs, _ := fixtureFS(t, fixture)
			if got := fs.Interface(); got != want {
				t.Errorf("Interface() = %q, want %q", got, want)
			}
		})
	}
}

func TestInterfaceEmptyLivepatchDir(t *testing.T) {
	t.Parallel()
	// CONFIG_LIVEPATCH=y with no patch loaded: the directory exists, empty.
	fs, _ := archiveFS(t, "-- sys/kernel/livepatch/ --\n")
	if got := fs.Interface(); got != InterfaceLivepatch {
		t.Errorf("Interface() = %q, want %q", got, InterfaceLivepatch)
	}
	patches, err := fs.Patches()
	if err != nil {
		t.Fatal(err)
	}
	if patches == nil || len(patches) != 0 {
		t.Errorf("Patches() = %#v, want an empty, non-nil list", patches)
	}
}
