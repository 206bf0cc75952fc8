package sysfile

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
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
	// A directory is refused: EISDIR, wrapped with the path.
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
	// Exactly 40 bytes are quoted whole.
	_, err = ReadInt(writeFile(t, t.TempDir(), "forty", strings.Repeat("y", 40)))
	if err == nil || !strings.Contains(err.Error(), strings.Repeat("y", 40)+`"`) {
		t.Errorf("error %v: want the 40 bytes quoted whole", err)
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
	// The value is written as given, without O_TRUNC: sysfs ignores it, and
	// a regular file that is not an attribute must not be emptied.
	if b, _ := os.ReadFile(p); string(b) != "0\n" {
		t.Errorf("file holds %q after WriteString(\"0\"), want %q", b, "0\n")
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

// TestWriteStringRefusesPlanted checks the writes a copied tree could trick:
// a symbolic link where the attribute should be (its target must stay
// intact), a FIFO (the open must not block), and a file on a file system
// that is not sysfs or procfs when the caller demands one.
func TestWriteStringRefusesPlanted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	victim := writeFile(t, dir, "passwd", "root:x:0:0\n")
	link := filepath.Join(dir, "force")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if err := WriteString(link, "1"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("WriteString(symlink) = %v, want ErrNotRegular", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "root:x:0:0\n" {
		t.Errorf("the link's target was changed: %q", b)
	}
	fifo := filepath.Join(dir, "enabled")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// No reader: a blocking open would wait for ever; O_NONBLOCK answers
	// ENXIO at once.
	if err := WriteString(fifo, "1"); err == nil {
		t.Errorf("WriteString(FIFO) succeeded")
	}
	plain := writeFile(t, dir, "transition", "0\n")
	err := WriteString(plain, "1", unix.SYSFS_MAGIC, unix.PROC_SUPER_MAGIC)
	if !errors.Is(err, ErrNotKernelFile) {
		t.Errorf("WriteString(tmp file, sysfs only) = %v, want ErrNotKernelFile", err)
	}
	if b, _ := os.ReadFile(plain); string(b) != "0\n" {
		t.Errorf("refused write changed the file: %q", b)
	}
}

// TestWriteStringWriteError checks that an error from write(2) (how sysfs
// refuses a value: EINVAL, EBUSY) keeps its errno reachable and names the
// file. /dev/full fails every write with ENOSPC.
func TestWriteStringWriteError(t *testing.T) {
	t.Parallel()
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	err = writeOpened(f, "/dev/full", "1")
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writeOpened(/dev/full) = %v, want ENOSPC", err)
	}
	// The message names the file and the data written, once.
	if want := `write "1" to /dev/full: no space left on device`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// TestOpenRefusesSpecialFiles is the "files that are not files" class: a
// FIFO, a device, a socket, a directory and a symbolic link where a regular
// file is expected are refused at once, without blocking, and a link is
// followed only by OpenFollow.
// specialFiles makes in dir a FIFO, a listening socket (closed when the
// test ends) and a symbolic link to a regular file holding "data".
func specialFiles(t *testing.T, dir string) (fifo, sock, link string) {
	t.Helper()
	fifo = filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock = filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	target := writeFile(t, dir, "target", "data")
	link = filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	return fifo, sock, link
}

func TestOpenRefusesSpecialFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo, sock, link := specialFiles(t, dir)
	fifoLink := filepath.Join(dir, "fifolink")
	if err := os.Symlink(fifo, fifoLink); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, "/dev/zero", sock, dir, link, fifoLink} {
		if _, err := ReadBytes(p, 10); !errors.Is(err, ErrNotRegular) {
			t.Errorf("ReadBytes(%s) = %v, want ErrNotRegular", p, err)
		}
		if _, err := ReadPrefix(p, 10); !errors.Is(err, ErrNotRegular) {
			t.Errorf("ReadPrefix(%s) = %v, want ErrNotRegular", p, err)
		}
	}
	for _, p := range []string{fifo, "/dev/zero", sock, dir, fifoLink} {
		if f, err := OpenFollow(p); !errors.Is(err, ErrNotRegular) {
			t.Errorf("OpenFollow(%s) = %v, want ErrNotRegular", p, err)
			if f != nil {
				f.Close()
			}
		}
	}
	f, err := OpenFollow(link)
	if err != nil {
		t.Fatalf("OpenFollow(link to a regular file) = %v", err)
	}
	f.Close()
	if _, err := ReadDir(fifo); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("ReadDir(FIFO) = %v, want ENOTDIR", err)
	}
	entries, err := ReadDir(dir)
	if err != nil || len(entries) != 5 || entries[0].Name() != "fifo" {
		t.Errorf("ReadDir(dir) = %v, %v; want 5 entries sorted by name", entries, err)
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
