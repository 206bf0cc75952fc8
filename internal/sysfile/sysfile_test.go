package sysfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadBytesLimit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := writeFile(t, dir, "attr", "0123456789")
	for _, tc := range []struct {
		limit   int64
		want    string
		tooMuch bool
	}{
		{10, "0123456789", false},
		{11, "0123456789", false},
		{9, "", true},
		{0, "", true},
	} {
		got, err := ReadBytes(p, tc.limit)
		if tc.tooMuch {
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("ReadBytes(limit %d) = %q, %v, want ErrTooLarge", tc.limit, got, err)
			}
			var pe *os.PathError
			if !errors.As(err, &pe) || pe.Path != p {
				t.Errorf("ReadBytes(limit %d) = %v, want an *os.PathError for %s", tc.limit, err, p)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("ReadBytes(limit %d) = %q, %v, want %q", tc.limit, got, err, tc.want)
		}
	}
}

func TestReadBytesErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := ReadBytes(filepath.Join(dir, "missing"), 10); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadBytes(missing) = %v, want os.ErrNotExist", err)
	}
	// A directory opens but does not read: EISDIR, wrapped with the path.
	_, err := ReadBytes(dir, 10)
	if !errors.Is(err, syscall.EISDIR) || !strings.Contains(err.Error(), dir) {
		t.Errorf("ReadBytes(dir) = %v, want EISDIR naming %s", err, dir)
	}
}

// TestReadBytesPseudoFile reads a procfs file, whose size is reported as
// 0: a reader that trusts Stat would read nothing.
func TestReadBytesPseudoFile(t *testing.T) {
	t.Parallel()
	fi, err := os.Stat("/proc/self/stat")
	if err != nil {
		t.Skipf("no procfs: %v", err)
	}
	if fi.Size() != 0 {
		t.Fatalf("/proc/self/stat has size %d; the test needs a pseudo-file of size 0", fi.Size())
	}
	b, err := ReadBytes("/proc/self/stat", MaxAttrSize)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), ") ") {
		t.Errorf("ReadBytes(/proc/self/stat) = %q, want a stat line", b)
	}
	s, err := ReadString("/proc/self/comm")
	if err != nil || s == "" || strings.ContainsAny(s, "\n ") {
		t.Errorf("ReadString(/proc/self/comm) = %q, %v, want a trimmed name", s, err)
	}
}

func TestReadString(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for in, want := range map[string]string{
		"1\n": "1", "  spaced \n\n": "spaced", "": "", "always [madvise] never\n": "always [madvise] never",
	} {
		got, err := ReadString(writeFile(t, dir, "f", in))
		if err != nil || got != want {
			t.Errorf("ReadString(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
}

func TestReadInt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for in, want := range map[string]int{"0\n": 0, "1\n": 1, "-1\n": -1, " 42 \n": 42, "3": 3, "+5\n": 5} {
		got, err := ReadInt(writeFile(t, dir, "n", in))
		if err != nil || got != want {
			t.Errorf("ReadInt(%q) = %d, %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"banana\n", "", "\n", "1 2\n", "0x10\n", "1.0\n", "99999999999999999999\n"} {
		p := writeFile(t, dir, "bad", in)
		_, err := ReadInt(p)
		if !errors.Is(err, ErrParse) {
			t.Errorf("ReadInt(%q) = %v, want ErrParse", in, err)
			continue
		}
		var pe *os.PathError
		if !errors.As(err, &pe) || pe.Path != p {
			t.Errorf("ReadInt(%q) = %v, want an *os.PathError naming %s", in, err, p)
		}
		if want := strings.TrimSpace(in); !strings.Contains(err.Error(), want) {
			t.Errorf("ReadInt(%q) = %v, want the content in the message", in, err)
		}
	}
	if _, err := ReadInt(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrParse) {
		t.Errorf("ReadInt(missing) = %v, want os.ErrNotExist", err)
	}
}

func TestReadIntTruncatesGarbage(t *testing.T) {
	t.Parallel()
	garbage := strings.Repeat("x", 5000)
	_, err := ReadInt(writeFile(t, t.TempDir(), "huge", garbage))
	if !errors.Is(err, ErrParse) {
		t.Fatalf("ReadInt() = %v, want ErrParse", err)
	}
	if !strings.Contains(err.Error(), strings.Repeat("x", 40)+"...") || strings.Contains(err.Error(), strings.Repeat("x", 41)) {
		t.Errorf("error %q: want the content cut at 40 bytes", err)
	}
}

func TestReadBool(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for in, want := range map[string]bool{"0\n": false, "1\n": true, "1": true} {
		got, err := ReadBool(writeFile(t, dir, "b", in))
		if err != nil || got != want {
			t.Errorf("ReadBool(%q) = %v, %v, want %v", in, got, err, want)
		}
	}
	// enabled, transition and patched print only 0 or 1.
	for _, in := range []string{"2\n", "-1\n", "y\n", "true\n", "banana\n"} {
		p := writeFile(t, dir, "bad", in)
		got, err := ReadBool(p)
		if !errors.Is(err, ErrParse) || got {
			t.Errorf("ReadBool(%q) = %v, %v, want false, ErrParse", in, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), p) {
			t.Errorf("ReadBool(%q): error %q does not name the file", in, err)
		}
	}
}

func TestWriteString(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := writeFile(t, dir, "enabled", "1\n")
	if err := WriteString(p, "0"); err != nil {
		t.Fatal(err)
	}
	// The value is written as given, truncating what was there: no newline
	// is added.
	if b, _ := os.ReadFile(p); string(b) != "0" {
		t.Errorf("file holds %q after WriteString(\"0\"), want %q", b, "0")
	}
	// Attribute files are never created.
	missing := filepath.Join(dir, "force")
	if err := WriteString(missing, "1"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("WriteString(missing) = %v, want os.ErrNotExist", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("WriteString created %s", missing)
	}
}

// TestWriteStringWriteError checks that an error from write(2) (how sysfs
// refuses a value: EINVAL, EBUSY) keeps its errno reachable and names the
// file. /dev/full fails every write with ENOSPC.
func TestWriteStringWriteError(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	err := WriteString("/dev/full", "1")
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("WriteString(/dev/full) = %v, want ENOSPC", err)
	}
	if !strings.Contains(err.Error(), "/dev/full") {
		t.Errorf("error %q does not name the file", err)
	}
}

func TestExists(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := writeFile(t, dir, "force", "")
	if err := os.Chmod(file, 0o200); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		dir:                               true,
		file:                              true, // write-only attributes exist
		filepath.Join(dir, "dangling"):    true, // Lstat: the link itself
		filepath.Join(dir, "missing"):     false,
		filepath.Join(dir, "missing/sub"): false,
		// ENOTDIR is not "does not exist": the caller goes on and reports
		// the real error.
		filepath.Join(file, "sub"): true,
	} {
		if got := Exists(path); got != want {
			t.Errorf("Exists(%s) = %v, want %v", path, got, want)
		}
	}
}
