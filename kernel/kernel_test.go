package kernel

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/poll"
)

// tree makes a copied-tree layout with an osrelease file.
func tree(t *testing.T, release string) Roots {
	t.Helper()
	dir := t.TempDir()
	r := Roots{Sys: filepath.Join(dir, "sys"), Proc: filepath.Join(dir, "proc"), Dev: filepath.Join(dir, "dev"), Boot: filepath.Join(dir, "boot")}
	if err := os.MkdirAll(filepath.Join(r.Proc, "sys", "kernel"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(r.Sys, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.Proc, "sys", "kernel", "osrelease"), []byte(release), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestOpenCopiedTree(t *testing.T) {
	t.Parallel()
	r := tree(t, "6.1.0-56-cloud-amd64\n")
	h, err := Open(r)
	if err != nil {
		t.Fatal(err)
	}
	if h.KernelFS() {
		t.Errorf("a tree in a temporary directory claims to be the kernel's sysfs and procfs")
	}
	rel, err := h.Release()
	if err != nil || rel != "6.1.0-56-cloud-amd64" {
		t.Errorf("Release() = %q, %v", rel, err)
	}
	v, err := h.Version()
	if err != nil || v != (Version{6, 1, 0}) || !v.AtLeast(5, 19) || v.AtLeast(6, 2) {
		t.Errorf("Version() = %v, %v", v, err)
	}
	// Read once: a change of the file is not seen.
	if err := os.WriteFile(filepath.Join(r.Proc, "sys", "kernel", "osrelease"), []byte("9.9.9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if rel, _ := h.Release(); rel != "6.1.0-56-cloud-amd64" {
		t.Errorf("Release() read again: %q", rel)
	}
	if got := h.SysPath("kernel", "livepatch"); got != filepath.Join(r.Sys, "kernel", "livepatch") {
		t.Errorf("SysPath = %s", got)
	}
	// A copied tree cannot be acted on.
	if _, err := OpenLive(r); !errors.Is(err, ErrNotLive) {
		t.Errorf("OpenLive(copied tree) = %v, want ErrNotLive", err)
	}
}

func TestOpenBadRoots(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, r := range []Roots{{Sys: filepath.Join(dir, "missing"), Proc: dir}, {Sys: dir, Proc: file}} {
		if _, err := Open(r); !errors.Is(err, ErrMountPoint) {
			t.Errorf("Open(%+v) = %v, want ErrMountPoint", r, err)
		}
	}
}

func TestReleaseGarbage(t *testing.T) {
	t.Parallel()
	for _, rel := range []string{"", "../../etc", "6.1 evil", "\n"} {
		h, err := Open(tree(t, rel))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := h.Release(); !errors.Is(err, ErrParse) {
			t.Errorf("Release() of %q = %q, %v, want ErrParse", rel, got, err)
		}
	}
}

func TestOpenLiveRunningKernel(t *testing.T) {
	t.Parallel()
	if !runningKernelFS(t) {
		t.Skip("no sysfs at /sys and procfs at /proc here")
	}
	l, err := OpenLive(Roots{})
	if err != nil {
		t.Fatalf("OpenLive of the running kernel: %v", err)
	}
	if !l.KernelFS() || !l.HasKernelLog() {
		t.Errorf("the running kernel's handle does not know it is (KernelFS %v, HasKernelLog %v)", l.KernelFS(), l.HasKernelLog())
	}
	if _, err := l.Release(); err != nil {
		t.Errorf("Release() = %v", err)
	}
	// A path outside the roots is never written, whatever the seam.
	if err := l.WriteAttr("/etc/passwd", "x"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("WriteAttr(/etc/passwd) = %v, want ErrInvalidName", err)
	}
	if err := l.WriteAttr("/sys/../etc/passwd", "x"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("WriteAttr(/sys/../etc/passwd) = %v, want ErrInvalidName", err)
	}
}

// A path is written only when it is clean and strictly below a root: one
// that leaves and re-enters a root, or names the root itself, is refused
// before the seam; a trailing slash is not a different file.
func TestWriteAttrPaths(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		roots Roots
		path  string
		ok    bool
	}{
		{Roots{Sys: "/sys", Proc: "/proc"}, "/sys/kernel/livepatch/p/enabled", true},
		{Roots{Sys: "/sys", Proc: "/proc"}, "/sys/kernel/livepatch/p/enabled/", true},
		{Roots{Sys: "/sys", Proc: "/proc"}, "/proc/sys/kernel/x", true},
		{Roots{Sys: "/sys", Proc: "/proc"}, "/sys/kernel/../kernel/livepatch/p/enabled", false},
		{Roots{Sys: "/sys", Proc: "/proc"}, "/sys//kernel/livepatch/p/enabled", false},
		{Roots{Sys: "/sys", Proc: "/proc"}, "/sys", false},
		{Roots{Sys: "/sys", Proc: "/proc"}, "/sysfoo/x", false},
		{Roots{Sys: "/", Proc: "/proc"}, "/kernel/livepatch/p/enabled", true},
		{Roots{Sys: "/", Proc: "/proc"}, "/", false},
	} {
		rec := &recorder{}
		l := &Live{Handle: &Handle{roots: c.roots}, seams: Seams{Attr: rec}}
		err := l.WriteAttr(c.path, "1")
		if c.ok != (err == nil) || c.ok != (len(rec.calls) == 1) || !c.ok && !errors.Is(err, ErrInvalidName) {
			t.Errorf("roots %s, %s: WriteAttr = %v, seam called %d times; want written %v", c.roots.Sys, c.path, err, len(rec.calls), c.ok)
		}
	}
}

// Open tells the running kernel's mounts from a copied tree, and whether
// the kernel log can be watched: on the running kernel, or where a copied
// tree names a /dev of its own.
func TestOpenKnowsItsKernel(t *testing.T) {
	t.Parallel()
	r := tree(t, "6.1.0\n")
	withDev, filesDev := bothHandles(t, r)
	r.Dev = ""
	noDev, files := bothHandles(t, r)
	for _, c := range []struct {
		name     string
		h        *Handle
		fs, klog bool
	}{{"tree with dev", withDev, false, true}, {"tree", noDev, false, false}, {"files", files, false, false}, {"files with dev", filesDev, false, true}} {
		if c.h.KernelFS() != c.fs || c.h.HasKernelLog() != c.klog {
			t.Errorf("%s: KernelFS %v, HasKernelLog %v; want %v, %v", c.name, c.h.KernelFS(), c.h.HasKernelLog(), c.fs, c.klog)
		}
	}
	if !runningKernelFS(t) {
		return
	}
	h, err := Open(Roots{})
	if err != nil || !h.KernelFS() || !h.HasKernelLog() {
		t.Errorf("Open of the running kernel: %v; KernelFS %v, HasKernelLog %v", err, h != nil && h.KernelFS(), h != nil && h.HasKernelLog())
	}
	// sysfs is not procfs.
	if isFS("/sys", unix.PROC_SUPER_MAGIC) || !isFS("/proc", unix.PROC_SUPER_MAGIC) {
		t.Errorf("isFS does not tell /sys from /proc")
	}
}

type recorder struct{ calls []string }

func (r *recorder) WriteAttr(path, value string) error {
	r.calls = append(r.calls, "write "+path+" "+value)
	return nil
}
func (r *recorder) FinitModule(fd int, params string, flags int) error {
	r.calls = append(r.calls, "finit")
	return nil
}
func (r *recorder) InitModule(image []byte, params string) error {
	r.calls = append(r.calls, "init")
	return nil
}
func (r *recorder) DeleteModule(name string, flags int) error {
	r.calls = append(r.calls, "delete "+name)
	return nil
}
func (r *recorder) Now() time.Time { return time.Unix(0, 0) }
func (r *recorder) Sleep(context.Context, time.Duration) error {
	r.calls = append(r.calls, "sleep")
	return nil
}
func (r *recorder) Kill(pid int, sig syscall.Signal) error {
	r.calls = append(r.calls, "kill")
	return nil
}

func TestSimulate(t *testing.T) {
	t.Parallel()
	r := tree(t, "6.12.0\n")
	h, err := Open(r)
	if err != nil {
		t.Fatal(err)
	}
	// No seams: every action is refused, none reaches the host.
	none := Simulate(h, Seams{})
	if err := none.WriteAttr(h.SysPath("kernel", "x"), "1"); !errors.Is(err, ErrNotLive) {
		t.Errorf("WriteAttr without a seam = %v", err)
	}
	if err := none.FinitModule(-1, "", 0); !errors.Is(err, ErrNotLive) {
		t.Errorf("FinitModule without a seam = %v", err)
	}
	if err := none.InitModule(nil, ""); !errors.Is(err, ErrNotLive) {
		t.Errorf("InitModule without a seam = %v", err)
	}
	if err := none.DeleteModule("m", 0); !errors.Is(err, ErrNotLive) {
		t.Errorf("DeleteModule without a seam = %v", err)
	}
	if err := none.Kill(4242, syscall.SIGCONT); !errors.Is(err, ErrNotLive) {
		t.Errorf("Kill without a seam = %v", err)
	}
	// Without a clock, waits run on the system's; with one, on that.
	if none.Clock() != poll.System {
		t.Errorf("Clock without a seam = %v, want poll.System", none.Clock())
	}
	rec := &recorder{}
	l := Simulate(h, Seams{Attr: rec, Modules: rec, Signals: rec, Clock: rec})
	if l.Clock() != poll.Clock(rec) {
		t.Errorf("Clock = %v, want the seam's", l.Clock())
	}
	attr := h.SysPath("kernel", "livepatch", "p", "enabled")
	if err := l.WriteAttr(attr, "0"); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteModule("a/b", 0); !errors.Is(err, ErrInvalidName) {
		t.Errorf("DeleteModule(a/b) = %v", err)
	}
	for _, pid := range []int{0, -1, -42, 1} {
		if err := l.Kill(pid, syscall.SIGSTOP); !errors.Is(err, ErrBadSignalTarget) {
			t.Errorf("Kill(%d) = %v, want ErrBadSignalTarget", pid, err)
		}
	}
	if err := l.Kill(4242, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	want := []string{"write " + attr + " 0", "kill"}
	if len(rec.calls) != len(want) || rec.calls[0] != want[0] || rec.calls[1] != want[1] {
		t.Errorf("seam calls %q, want %q", rec.calls, want)
	}
}

func TestModuleNames(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"livepatch-fix":            "livepatch_fix",
		"lp_cmdline":               "lp_cmdline",
		"/lib/x/livepatch-a-b.ko":  "livepatch_a_b",
		"test-klp.ko.xz":           "test_klp",
		"kpatch-fix.ko.zst":        "kpatch_fix",
		"/var/lib/klp/r/m.ko.gz":   "m",
		"dir.with.dots/plain_m.ko": "plain_m",
	} {
		if got := FileModuleName(in); got != want {
			t.Errorf("FileModuleName(%q) = %q, want %q", in, got, want)
		}
	}
	if !SameModule("lp-cmdline", "lp_cmdline") || SameModule("lp_cmdline", "lp_cmdlinf") {
		t.Errorf("SameModule disagrees with the kernel's rule")
	}
	if longest := strings.Repeat("m", MaxModuleNameLen); ValidateModuleName(longest) != nil {
		t.Errorf("ValidateModuleName(%d bytes) = %v, want nil", len(longest), ValidateModuleName(longest))
	}
	for _, bad := range []string{"", "a/b", "..", "a.b", "a,b", "a b", "a\x1b[2J", "a\\b", strings.Repeat("m", MaxModuleNameLen+1), "a\xff", "a\u009b2J", "a\u00a0b"} {
		if err := ValidateModuleName(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateModuleName(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
	if got, err := CleanModuleName("livepatch-x"); err != nil || got != "livepatch_x" {
		t.Errorf("CleanModuleName = %q, %v", got, err)
	}
}

func TestParseVersion(t *testing.T) {
	t.Parallel()
	for rel, want := range map[string]Version{
		"6.1.0-56-cloud-amd64": {6, 1, 0}, "6.12.117+deb12-cloud-amd64": {6, 12, 117},
		"5.14.21-150500.55.52-default": {5, 14, 21}, "4.12": {4, 12, 0}, "7.0-rc1": {7, 0, 0},
		"6.9.9-9": {6, 9, 9}, "6.1048576": {6, 1 << 20, 0},
	} {
		if got, err := ParseVersion(rel); err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %v, %v, want %v", rel, got, err, want)
		}
	}
	for _, bad := range []string{"", "six", "6", "-1.2", "6.1048577"} {
		if _, err := ParseVersion(bad); !errors.Is(err, ErrParse) {
			t.Errorf("ParseVersion(%q) = %v, want ErrParse", bad, err)
		}
	}
}

func TestVersionAtLeast(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		v            Version
		major, minor int
		want         bool
	}{
		{Version{6, 1, 0}, 6, 1, true}, {Version{6, 1, 0}, 6, 2, false}, {Version{6, 2, 0}, 6, 1, true},
		{Version{5, 15, 0}, 6, 1, false}, {Version{7, 0, 0}, 6, 1, true}, {Version{6, 0, 0}, 5, 19, true},
	} {
		if got := c.v.AtLeast(c.major, c.minor); got != c.want {
			t.Errorf("%v.AtLeast(%d, %d) = %v, want %v", c.v, c.major, c.minor, got, c.want)
		}
	}
}

// faultFiles wraps OSFiles and fails one path: the seam a test double uses
// to inject read faults.
type faultFiles struct {
	OSFiles
	path string
	err  error
}

func (f faultFiles) Lstat(path string) (fs.FileInfo, error) {
	if path == f.path {
		return nil, f.err
	}
	return f.OSFiles.Lstat(path)
}

func (f faultFiles) Stat(path string) (fs.FileInfo, error) {
	if path == f.path {
		return nil, f.err
	}
	return f.OSFiles.Stat(path)
}

func TestNewHandleInjectedFaults(t *testing.T) {
	t.Parallel()
	r := tree(t, "6.1.0\n")
	h, err := NewHandle(r, faultFiles{path: filepath.Join(r.Sys, "x"), err: syscall.EACCES}, true)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Exists(filepath.Join(r.Sys, "x")) {
		t.Errorf("Exists() of an unreadable path is false: the caller would skip the real error")
	}
	if h.Exists(filepath.Join(r.Sys, "y")) {
		t.Errorf("Exists() of a missing path is true")
	}
	if _, err := NewHandle(r, faultFiles{path: r.Sys, err: fs.ErrNotExist}, true); !errors.Is(err, ErrMountPoint) {
		t.Errorf("NewHandle with a missing sysfs root = %v", err)
	}
}

// TestRawReadsOnlySysfs checks which reads take the raw system calls: the
// running kernel's sysfs attributes, and nothing on disk or in procfs (see
// Handle.pseudoFile); and that such a read answers as any other.
func TestRawReadsOnlySysfs(t *testing.T) {
	h := openRunning(t)
	for path, want := range map[string]bool{
		"/sys/kernel/livepatch/p/transition": true,
		"/sys/module/x/refcnt":               true,
		"/sys":                               false,
		"/sysfoo/x":                          false,
		"/proc/self/cmdline":                 false,
		"/boot/config-6.1":                   false,
		"/dev/kmsg":                          false,
	} {
		if got := h.pseudoFile(path); got != want {
			t.Errorf("running kernel: pseudoFile(%s) = %v, want %v", path, got, want)
		}
	}
	copied, err := Open(tree(t, "6.1.0-56-cloud-amd64\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p := copied.SysPath("kernel", "x"); copied.pseudoFile(p) {
		t.Errorf("copied tree: pseudoFile(%s) = true, want false", p)
	}
	// A sysfs attribute of every kernel: read raw, checked as ever.
	b, err := h.ReadBytes("/sys/kernel/uevent_seqnum", MaxAttrSize)
	if err != nil || len(b) == 0 || b[len(b)-1] != '\n' {
		t.Errorf("ReadBytes(/sys/kernel/uevent_seqnum) = %q, %v", b, err)
	}
	if _, err := h.ReadBytes("/sys/kernel", MaxAttrSize); !errors.Is(err, ErrNotRegular) {
		t.Errorf("ReadBytes(/sys/kernel) = %v, want ErrNotRegular", err)
	}
}
