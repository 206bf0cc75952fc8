package kernel

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bothHandles opens r both ways ReadFiles reads: through one directory
// descriptor (a handle from Open) and through Files (any other handle).
func bothHandles(t *testing.T, r Roots) (osHandle, filesHandle *Handle) {
	t.Helper()
	osHandle, err := Open(r)
	if err != nil {
		t.Fatal(err)
	}
	filesHandle, err = NewHandle(r, OSFiles{}, false)
	if err != nil {
		t.Fatal(err)
	}
	return osHandle, filesHandle
}

// TestReadFiles reads a task directory's files both ways: through one
// directory descriptor (a handle from Open) and through Files (any other
// handle), with the same answers: contents, cut files, missing files,
// and links and FIFOs refused without blocking.
func TestReadFiles(t *testing.T) {
	t.Parallel()
	r := tree(t, "6.1.0\n")
	dir := filepath.Join(r.Proc, "1", "task", "1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 10000)
	for name, data := range map[string]string{"stat": "1 (init) S 0 1 1\n", "comm": "init\n", "big": big, "empty": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("stat", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	osHandle, filesHandle := bothHandles(t, r)
	names := []string{"stat", "comm", "big", "empty", "missing", "fifo", "link"}
	for _, h := range []*Handle{osHandle, filesHandle} {
		got := map[string]string{}
		errs := map[string]error{}
		err := h.ReadFiles(dir, names, 5000, func(name string, data []byte, err error) {
			got[name], errs[name] = string(data), err
		})
		if err != nil {
			t.Fatal(err)
		}
		_, osDirs := h.ProcDir()
		for name, want := range map[string]string{"stat": "1 (init) S 0 1 1\n", "comm": "init\n", "big": big[:5001], "empty": ""} {
			if got[name] != want || errs[name] != nil {
				t.Errorf("osDirs %v: %s = %d bytes, %v; want %d bytes", osDirs, name, len(got[name]), errs[name], len(want))
			}
		}
		var pe *fs.PathError
		if e := errs["missing"]; !errors.Is(e, fs.ErrNotExist) || !errors.As(e, &pe) || pe.Path != filepath.Join(dir, "missing") || pe.Op != "open" {
			t.Errorf("osDirs %v: missing: %v", osDirs, e)
		}
		for _, name := range []string{"fifo", "link"} {
			if e := errs[name]; !errors.Is(e, ErrNotRegular) {
				t.Errorf("osDirs %v: %s: %v, want ErrNotRegular", osDirs, name, e)
			}
		}
	}
	for _, h := range []*Handle{osHandle, filesHandle} {
		if err := h.ReadFiles(filepath.Join(r.Proc, "2"), names, 10, func(string, []byte, error) { t.Error("called for a missing directory") }); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing directory: %v", err)
		}
	}
}

// TestReadFilesKernel reads this process's own task files from the real
// procfs, where a short read ends a file.
func TestReadFilesKernel(t *testing.T) {
	h := openRunning(t)
	dir := h.ProcPath("self")
	got := map[string]string{}
	err := h.ReadFiles(dir, []string{"comm", "cmdline", "status"}, MaxAttrSize, func(name string, data []byte, err error) {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		got[name] = string(data)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"comm", "cmdline"} {
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got[name] != string(want) {
			t.Errorf("%s = %q, want %q", name, got[name], want)
		}
	}
	if !strings.HasPrefix(got["status"], "Name:\t") || !strings.Contains(got["status"], "\nThreads:\t") {
		t.Errorf("status = %q", got["status"])
	}
}

// ReadBytes and ReadFiles take a file of exactly limit bytes whole, and cut
// one byte longer at limit+1 (ReadFiles: the caller tells) or refuse it
// (ReadBytes), at every limit, 0 and one buffer's worth (4096) included.
func TestReadLimits(t *testing.T) {
	t.Parallel()
	r := tree(t, "6.1.0\n")
	dir := filepath.Join(r.Proc, "1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	osHandle, filesHandle := bothHandles(t, r)
	for _, limit := range []int64{0, 1, 10, 4095, 4096, 4097, 10000} {
		exact, over := strings.Repeat("e", int(limit)), strings.Repeat("o", int(limit)+1)
		for name, data := range map[string]string{"exact": exact, "over": over} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, h := range []*Handle{osHandle, filesHandle} {
			_, osDirs := h.ProcDir()
			got := map[string]string{}
			err := h.ReadFiles(dir, []string{"exact", "over"}, limit, func(name string, data []byte, err error) {
				if err != nil {
					t.Errorf("osDirs %v, limit %d: %s: %v", osDirs, limit, name, err)
				}
				got[name] = string(data)
			})
			if err != nil {
				t.Fatal(err)
			}
			if got["exact"] != exact || got["over"] != over {
				t.Errorf("osDirs %v, limit %d: ReadFiles read %d and %d bytes, want %d and %d", osDirs, limit, len(got["exact"]), len(got["over"]), len(exact), len(over))
			}
			if b, err := h.ReadBytes(filepath.Join(dir, "exact"), limit); err != nil || string(b) != exact {
				t.Errorf("osDirs %v, limit %d: ReadBytes(exact) = %d bytes, %v", osDirs, limit, len(b), err)
			}
			if b, err := h.ReadBytes(filepath.Join(dir, "over"), limit); !errors.Is(err, ErrTooLarge) {
				t.Errorf("osDirs %v, limit %d: ReadBytes(over) = %d bytes, %v; want ErrTooLarge", osDirs, limit, len(b), err)
			}
		}
	}
}

// On the running kernel a short read ends a file (see ReadFiles), and a read
// that fills the buffer does not: a command line longer than the first
// buffer (4096 bytes) is read whole.
func TestReadFilesKernelLong(t *testing.T) {
	h := openRunning(t)
	// A long interval of zeros: sleep adds it to the 60 s. Letters made
	// sleep exit at once (an invalid interval), and the test read an
	// empty command line whenever it came after that exit.
	arg := strings.Repeat("0", 6000)
	cmd := exec.Command("sleep", "60", arg)
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep(1): %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	want := "sleep\x0060\x00" + arg + "\x00"
	dir := h.ProcPath(strconv.Itoa(cmd.Process.Pid))
	var got string
	// Start returns once the exec has begun, before the new command line
	// is set up (reads give nothing until then): wait for it, bounded by
	// a minute for a loaded machine.
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		if err := h.ReadFiles(dir, []string{"cmdline"}, 1<<16, func(_ string, data []byte, err error) {
			if err != nil {
				t.Fatalf("cmdline: %v", err)
			}
			got = string(data)
		}); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(got, "sleep\x00") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got != want {
		t.Errorf("cmdline = %d bytes, want %d", len(got), len(want))
	}
}
