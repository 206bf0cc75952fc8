package sysfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReadAttrAsReadBytes holds ReadAttr to ReadBytes: the same content and
// the same error, word for word, for every kind of file and limit.
func TestReadAttrAsReadBytes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var paths []string
	for _, n := range []int{0, 1, 10, 4095, 4096, 4097, 9000} {
		paths = append(paths, writeFile(t, dir, "f"+strings.Repeat("x", n%7)+string(rune('a'+n%26)), strings.Repeat("7", n)))
	}
	fifo, sock, link := specialFiles(t, dir)
	noRead := writeFile(t, dir, "noread", "1\n")
	if err := os.Chmod(noRead, 0); err != nil {
		t.Fatal(err)
	}
	paths = append(paths, fifo, sock, link, noRead, dir, "/dev/zero", filepath.Join(dir, "missing"),
		filepath.Join(paths[0], "below-a-file"), "/proc/self/stat", "/proc/self/comm", "/sys/kernel/mm/transparent_hugepage/enabled", "bad\x00path")
	for _, p := range paths {
		for _, limit := range []int64{0, 1, 9, 10, 4095, 4096, 4097, 8192, MaxAttrSize} {
			want, wantErr := ReadBytes(p, limit)
			got, gotErr := ReadAttr(p, limit)
			if strings.HasPrefix(p, "/proc/self/") {
				// The reading process differs between the two reads:
				// compare the shape only.
				if (wantErr == nil) != (gotErr == nil) || (wantErr == nil && len(got) == 0) {
					t.Errorf("ReadAttr(%s, %d) = %q, %v; ReadBytes: %q, %v", p, limit, got, gotErr, want, wantErr)
				}
				continue
			}
			if string(got) != string(want) || errString(gotErr) != errString(wantErr) {
				t.Errorf("ReadAttr(%s, %d) = %.20q (%d bytes), %v; ReadBytes: %.20q (%d bytes), %v", p, limit, got, len(got), gotErr, want, len(want), wantErr)
			}
			if gotErr == nil && got == nil {
				t.Errorf("ReadAttr(%s, %d) = nil, nil; want an empty slice", p, limit)
			}
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestReadAttrErrors checks the sentinels a caller tests for.
func TestReadAttrErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	big := writeFile(t, dir, "big", "0123456789")
	for _, tc := range []struct {
		path string
		want error
	}{
		{big, ErrTooLarge},
		{filepath.Join(dir, "missing"), os.ErrNotExist},
		{dir, syscall.EISDIR},
		{"/dev/null", ErrNotRegular},
	} {
		_, err := ReadAttr(tc.path, 5)
		var pe *os.PathError
		if !errors.Is(err, tc.want) || !errors.As(err, &pe) || pe.Path != tc.path {
			t.Errorf("ReadAttr(%s) = %v, want %v in an *os.PathError naming the path", tc.path, err, tc.want)
		}
	}
}

// TestRawReadsWithoutNUL checks that RawOpenat terminates a path itself,
// in the spare capacity of a reused buffer, without changing what the
// caller's slice holds.
func TestRawReadsWithoutNUL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "a", "1\n")
	buf := make([]byte, 0, 64)
	buf = append(buf, "ab"...) // "ab" does not exist; "a" does
	if fd, err := RawOpenat(-100, append([]byte(dir+"/"), buf...), syscall.O_RDONLY); err == nil || !errors.Is(err, syscall.ENOENT) {
		RawClose(fd)
		t.Fatalf("RawOpenat(ab) = %d, %v, want ENOENT", fd, err)
	}
	path := append([]byte(dir+"/"), buf[:1]...)
	fd, err := RawOpenat(-100, path, syscall.O_RDONLY)
	if err != nil {
		t.Fatalf("RawOpenat(a) = %v", err)
	}
	defer RawClose(fd)
	if err := RawFstatRegular(fd); err != nil {
		t.Errorf("RawFstatRegular = %v", err)
	}
	b := make([]byte, 8)
	if n, err := RawRead(fd, b); err != nil || string(b[:n]) != "1\n" {
		t.Errorf("RawRead = %q, %v", b[:n], err)
	}
	if string(path) != dir+"/a" {
		t.Errorf("RawOpenat changed the caller's path to %q", path)
	}
}

func TestRawWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := bytes.Repeat([]byte("0123456789"), 100_000)
	if n, err := RawWrite(int(f.Fd()), b); n != len(b) || err != nil {
		t.Fatalf("RawWrite = %d, %v; want %d, nil", n, err, len(b))
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, b) {
		t.Errorf("the file holds %d bytes, want %d", len(got), len(b))
	}
	if n, err := RawWrite(-1, b); n != 0 || !errors.Is(err, syscall.EBADF) {
		t.Errorf("RawWrite(-1) = %d, %v; want 0, EBADF", n, err)
	}
}
