package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const release = "6.1.0-56-cloud-amd64"

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestStore(t *testing.T) {
	dir := t.TempDir()
	s := Store{Dir: filepath.Join(dir, "klp"), Kpatch: filepath.Join(dir, "kpatch")}
	src := filepath.Join(dir, "livepatch-fix.ko")
	write(t, src, "module")
	write(t, filepath.Join(s.Kpatch, release, "kpatch-old.ko"), "old")
	write(t, filepath.Join(s.Kpatch, "5.14.0", "kpatch-other.ko"), "other")

	in, err := s.Install(src, "livepatch-fix", release)
	if err != nil {
		t.Fatal(err)
	}
	if in.Path != filepath.Join(s.Dir, release, "livepatch_fix.ko") || in.Name != "livepatch_fix" {
		t.Errorf("installed %+v", in)
	}
	// Readable by all, as modules are, with the module's bytes.
	if fi, err := os.Stat(in.Path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("installed file: %v, %v; want mode 0644", fi.Mode(), err)
	}
	if b, err := os.ReadFile(in.Path); err != nil || string(b) != "module" {
		t.Errorf("installed file holds %q, %v; want the module's bytes", b, err)
	}
	if _, err := s.Install(src, "livepatch_fix", release); err == nil {
		t.Error("second install did not fail")
	}
	if _, err := s.Install(src, "x", "../etc"); err == nil {
		t.Error("a release with a slash was accepted")
	}
	all, err := s.List("")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, i := range all {
		got = append(got, i.Source+":"+i.Release+":"+i.Name)
	}
	want := "klp:" + release + ":livepatch_fix kpatch:5.14.0:kpatch_other kpatch:" + release + ":kpatch_old"
	if strings.Join(got, " ") != want {
		t.Errorf("List = %q, want %q", got, want)
	}
	if f, err := s.Find("kpatch-old", release); err != nil || f.Source != "kpatch" {
		t.Errorf("Find kpatch-old = %+v, %v", f, err)
	}
	if _, err := s.Uninstall("kpatch_old", release); err == nil || !strings.Contains(err.Error(), "kpatch uninstall") {
		t.Errorf("uninstall of kpatch's patch: %v", err)
	}
	if _, err := s.Uninstall("livepatch-fix", release); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Find("livepatch_fix", release); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("Find after uninstall: %v", err)
	}
}

// A release names a directory: at most 255 bytes, a file name's limit.
func TestValidateReleaseLength(t *testing.T) {
	if err := ValidateRelease(strings.Repeat("r", 255)); err != nil {
		t.Errorf("255 bytes: %v, want accepted", err)
	}
	if err := ValidateRelease(strings.Repeat("r", 256)); err == nil {
		t.Error("256 bytes accepted")
	}
}

// TestInstallUntrustedNames is the "paths from untrusted data" class: the
// module's own name and the release become parts of a path, so a crafted
// module or release must not write outside the store.
func TestInstallUntrustedNames(t *testing.T) {
	dir := t.TempDir()
	s := Store{Dir: filepath.Join(dir, "store", "klp")}
	src := filepath.Join(dir, "x.ko")
	write(t, src, "module")
	for _, tc := range []struct{ name, release string }{
		{"../../escape", release}, {"a/b", release}, {"..", release}, {"x\x00y", release}, {"", release},
		{"ok", "../../escape"}, {"ok", "a/b"}, {"ok", ".."}, {"ok", ""},
	} {
		if in, err := s.Install(src, tc.name, tc.release); err == nil {
			t.Errorf("Install(name %q, release %q) = %+v, want an error", tc.name, tc.release, in)
		}
	}
	var found []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			found = append(found, p)
		}
		return nil
	})
	if len(found) != 1 || found[0] != src {
		t.Errorf("files after refused installs: %q", found)
	}
	// A FIFO given as the module must not hang the install.
	fifo := filepath.Join(dir, "f.ko")
	if err := mkfifo(fifo); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Install(fifo, "f", release); err == nil {
		t.Errorf("Install(FIFO) succeeded")
	}
}

func TestBootMarkers(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	crashed, err := s.Crashed(release)
	if err != nil || len(crashed) != 0 {
		t.Fatalf("Crashed() on a fresh store = %v, %v", crashed, err)
	}
	if err := s.MarkLoading(release, "p1"); err != nil {
		t.Fatal(err)
	}
	s.DoneLoading(release)
	if crashed, _ := s.Crashed(release); len(crashed) != 0 {
		t.Errorf("a load that returned is marked crashed: %v", crashed)
	}
	// The machine goes down while p2 loads.
	if err := s.MarkLoading(release, "p2"); err != nil {
		t.Fatal(err)
	}
	crashed, err = s.Crashed(release)
	if err != nil || !crashed["p2"] || len(crashed) != 1 {
		t.Errorf("Crashed() after a crash = %v, %v", crashed, err)
	}
	// Quarantined for good: at the next boot too.
	if crashed, _ := s.Crashed(release); !crashed["p2"] {
		t.Errorf("the quarantine was lost: %v", crashed)
	}
	s.ClearCrashed(release)
	if crashed, _ := s.Crashed(release); len(crashed) != 0 {
		t.Errorf("ClearCrashed left %v", crashed)
	}
	if err := s.MarkLoading("../x", "p"); err == nil {
		t.Errorf("MarkLoading with a bad release succeeded")
	}
}

func mkfifo(path string) error { return unix.Mkfifo(path, 0o600) }
