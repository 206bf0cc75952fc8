package admin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/klp-project/klp/internal/fakefs"
	"github.com/klp-project/klp/internal/snapshot"
	"github.com/klp-project/klp/kernel"
)

// faultFiles reads the host's files, but answers the paths that end in a
// key of faults with its error (at open), and calls hook before each
// ReadDir.
type faultFiles struct {
	kernel.OSFiles
	faults map[string]error
	mu     sync.Mutex
	hook   func(path string)
}

func (f *faultFiles) Open(p string) (io.ReadCloser, error) {
	for suffix, err := range f.faults {
		if strings.HasSuffix(p, suffix) {
			return nil, &os.PathError{Op: "open", Path: p, Err: err}
		}
	}
	return f.OSFiles.Open(p)
}

func (f *faultFiles) ReadDir(p string) ([]fs.DirEntry, error) {
	if f.hook != nil {
		f.mu.Lock()
		f.hook(p)
		f.mu.Unlock()
	}
	return f.OSFiles.ReadDir(p)
}

// fixture loads a fixture tree and returns the handle on it, reading
// through files when given.
func fixture(t *testing.T, name string, files kernel.Files) (string, *kernel.Handle) {
	t.Helper()
	root := fakefs.Load(t, filepath.Join("..", "..", "testdata", name+".txtar"))
	return root, handleOn(t, root, files)
}

// handleOn returns the handle on the tree at root, reading through files
// when given.
func handleOn(t *testing.T, root string, files kernel.Files) *kernel.Handle {
	t.Helper()
	roots := kernel.Roots{Sys: filepath.Join(root, "sys"), Proc: filepath.Join(root, "proc"), Dev: filepath.Join(root, "dev"), Boot: filepath.Join(root, "boot")}
	// A handle whose files inject faults is no host directory the
	// capture may open itself.
	osDirs := files == nil
	if files == nil {
		files = kernel.OSFiles{}
	}
	h, err := kernel.NewHandle(roots, files, osDirs)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// capture takes a snapshot of h and reads it back.
func captureOf(t *testing.T, h *kernel.Handle, opts SnapshotOptions) (*snapshot.Manifest, *snapshot.Archive) {
	t.Helper()
	var buf bytes.Buffer
	opts.Root = true
	m, n, err := NewSystem(h).Snapshot(context.Background(), &buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("size %d, wrote %d", n, buf.Len())
	}
	a, err := snapshot.Read(&buf, snapshot.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(*m, a.Manifest()); diff != "" {
		t.Errorf("the manifest read back differs (-returned +read):\n%s", diff)
	}
	return m, a
}

func TestRedactCmdline(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                                       "",
		"/usr/bin/python3\x00-c\x00secret=1\x00": "python3\x00",
		"sshd: alice@pts/0\x00\x00\x00":          "sshd\x00",
		"postgres: alice db [local] idle":        "postgres\x00",
		"bash":                                   "bash\x00",
		"/\x00x":                                 "?\x00",
		"\x00--password=x":                       "?\x00",
	} {
		if got := string(redactCmdline([]byte(in))); got != want {
			t.Errorf("redactCmdline(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLivepatchRecords(t *testing.T) {
	t.Parallel()
	log := "6,100,1,-;livepatch: enabling patch 'p'\n SUBSYSTEM=x\n" +
		"6,101,2,-;usb 1-1: new device\n" +
		"4,102,3,-;p: tainting kernel with TAINT_LIVEPATCH\n" +
		"4,103,4,-;other: loading out-of-tree module taints kernel.\n" +
		"6,104,5,-;kgr: patching succeeded\n" +
		"6,105,6,-;livepatch: 'p': patching complete"
	want := "6,100,1,-;livepatch: enabling patch 'p'\n4,102,3,-;p: tainting kernel with TAINT_LIVEPATCH\n" +
		"6,104,5,-;kgr: patching succeeded\n6,105,6,-;livepatch: 'p': patching complete\n"
	if got := string(livepatchRecords([]byte(log), []string{"p"})); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// TestSnapshotCaptures: what the archive of the transition-blocking tree
// holds, file by file.
func TestSnapshotCaptures(t *testing.T) {
	t.Parallel()
	root, h := fixture(t, "transition-blocking", nil)
	write(t, filepath.Join(root, "proc/kallsyms"), "ffffffffa0001000 t do_sys_poll\nffffffffc0123450 T svc_recv\t[sunrpc]\n")
	write(t, filepath.Join(root, "dev/kmsg"), "6,1,1,-;livepatch: 'livepatch_2_160000_1_1': starting patching transition\n6,2,2,-;eth0: link up\n")
	write(t, filepath.Join(root, "proc/sys/kernel/hostname"), "sles16\n")
	m, a := captureOf(t, h, SnapshotOptions{Version: "test"})
	read := func(p string) string {
		b, err := archiveFile(a, p)
		if err != nil {
			return "error: " + err.Error()
		}
		return b
	}
	for p, want := range map[string]string{
		"/proc/kallsyms":          "0000000000000000 t do_sys_poll\n0000000000000000 T svc_recv\t[sunrpc]\n",
		"/dev/kmsg":               "6,1,1,-;livepatch: 'livepatch_2_160000_1_1': starting patching transition\n",
		"/proc/812/task/846/comm": "in:imjournal\n",
		"/sys/kernel/livepatch/livepatch_2_160000_1_1/transition": "1\n",
		"/proc/812/task/812/stack":                                "error: open /proc/812/task/812/stack: no such file or directory",
	} {
		if got := read(p); got != want {
			t.Errorf("%s: %q, want %q", p, got, want)
		}
	}
	if !strings.HasPrefix(read("/proc/812/task/846/stack"), "[<0>] ") {
		t.Errorf("the blocking task's stack: %q", read("/proc/812/task/846/stack"))
	}
	if fi, err := a.Stat("/sys/kernel/livepatch/livepatch_2_160000_1_1/vmlinux/do_sys_poll,1"); err != nil || !fi.IsDir() {
		t.Errorf("an empty function directory: %v %v", fi, err)
	}
	if _, err := a.Lstat("/sys/module/nfsd/holders"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("holders (links) are left out: %v", err)
	}
	if *m.Host != "sles16" || m.Kernel.Interface != "livepatch" || m.Source != "copied tree" {
		t.Errorf("manifest %+v", m)
	}
}

// TestSnapshotErrors: files that cannot be read are recorded with their
// errors and read back failing the same way; a write-only attribute is not
// "unreadable"; a FIFO does not block the capture.
func TestSnapshotErrors(t *testing.T) {
	t.Parallel()
	files := &faultFiles{faults: map[string]error{
		"/force":                   syscall.EACCES,
		"/proc/812/task/846/stack": syscall.EACCES,
		"/proc/2050/cmdline":       syscall.EIO,
	}}
	root, h := fixture(t, "transition-blocking", files)
	if err := syscall.Mkfifo(filepath.Join(root, "proc/2311/task/2311/comm.fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(root, "proc/2311/task/2311/stat"))
	if err := syscall.Mkfifo(filepath.Join(root, "proc/2311/task/2311/stat"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(root, "sys/module/bad name"), 0o755)
	m, a := captureOf(t, h, SnapshotOptions{})
	var got []string
	for _, u := range m.Unreadable {
		got = append(got, u.Path+": "+u.Error)
	}
	want := []string{"/proc/2050/cmdline: input/output error", "/proc/2311/task/2311/stat: not a regular file (a FIFO)", "/proc/812/task/846/stack: permission denied"}
	if diff := cmp.Diff(want, got); diff != "" || m.UnreadableTotal != 3 {
		t.Errorf("unreadable (-want +got):\n%s", diff)
	}
	if _, err := a.Open("/sys/kernel/livepatch/livepatch_1_160000_1_1/force"); !errors.Is(err, syscall.EACCES) {
		t.Errorf("a write-only attribute: %v", err)
	}
	// The snapshot answers as the tree did.
	tree, err := NewSystem(h).Blocking(BlockingOptions{Stacks: true})
	if err != nil {
		t.Fatal(err)
	}
	sh, err := a.Handle()
	if err != nil {
		t.Fatal(err)
	}
	snap, err := NewSystem(sh).Blocking(BlockingOptions{Stacks: true})
	if err != nil {
		t.Fatal(err)
	}
	sameReport := func(r *BlockingReport) []string {
		var out []string
		for _, t := range r.Tasks {
			out = append(out, strings.Join([]string{t.Cmdline, t.State, strings.Join(t.Stack, "|"), errString(t.StackErr)}, " "))
		}
		for _, u := range r.Unreadable {
			out = append(out, "unreadable "+u.Error())
		}
		return out
	}
	if diff := cmp.Diff(sameReport(tree), sameReport(snap)); diff != "" {
		t.Errorf("blocking -vv (-tree +snapshot):\n%s", diff)
	}
	if want := []string{`/sys/module/"bad name": not a module name, not captured`}; !cmp.Equal(m.Notes, want) {
		t.Errorf("notes %q, want %q", m.Notes, want)
	}
}

// TestSnapshotMoved: a transition that completes during the capture is
// recorded as moved.
func TestSnapshotMoved(t *testing.T) {
	t.Parallel()
	files := &faultFiles{}
	root, h := fixture(t, "transition-blocking", files)
	files.hook = func(p string) {
		if p == h.ProcPath() {
			// The kernel finishes the transition while klp reads tasks.
			os.WriteFile(filepath.Join(root, "sys/kernel/livepatch/livepatch_2_160000_1_1/transition"), []byte("0\n"), 0o644)
		}
	}
	m, _ := captureOf(t, h, SnapshotOptions{})
	tr := m.Transition
	if !tr.Moved || tr.Before == nil || tr.After != nil || !strings.Contains(strings.Join(m.Notes, "\n"), "the transition changed during the capture") {
		t.Errorf("transition %+v, notes %q", tr, m.Notes)
	}
}

// TestSnapshotKGraft: kGraft's per-process and per-thread flags, and the
// stacks of the blocking tasks.
func TestSnapshotKGraft(t *testing.T) {
	t.Parallel()
	root, h := fixture(t, "sle12-kgraft", nil)
	// xfs is a patched object: its whole directory is captured; other
	// is neither patched nor loaded: a built-in's directory.
	write(t, filepath.Join(root, "sys/module/xfs/parameters/a"), "1\n")
	write(t, filepath.Join(root, "sys/module/other/parameters/b"), "2\n")
	m, a := captureOf(t, h, SnapshotOptions{})
	if m.Kernel.Interface != "kgraft" {
		t.Fatalf("interface %q", m.Kernel.Interface)
	}
	if b, err := archiveFile(a, "/sys/module/xfs/parameters/a"); err != nil || b != "1\n" {
		t.Errorf("a patched object's parameter: %q %v", b, err)
	}
	if _, err := a.Lstat("/sys/module/other/parameters"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a built-in's parameters: %v, want them left out", err)
	}
	if fi, err := a.Lstat("/sys/module/other"); err != nil || !fi.IsDir() {
		t.Errorf("a built-in's directory: %v %v", fi, err)
	}
	tasks := m.Captured[2]
	if want := []string{"/proc/<pid>/kgr_in_progress", "/proc/<pid>/task/<tid>/kgr_in_progress"}; tasks.What != "tasks" || !cmp.Equal(tasks.Paths[len(tasks.Paths)-2:], want) {
		t.Errorf("tasks %+v: want the kGraft files %q last", tasks, want)
	}
	sh, _ := a.Handle()
	for _, mode := range []BlockingMode{KGraftProcesses, KGraftThreads} {
		tree, err := NewSystem(h).Blocking(BlockingOptions{Mode: mode, Stacks: true})
		if err != nil {
			t.Fatal(err)
		}
		snap, err := NewSystem(sh).Blocking(BlockingOptions{Mode: mode, Stacks: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(tree.Tasks) == 0 || len(tree.Tasks) != len(snap.Tasks) {
			t.Fatalf("mode %d: %d tasks on the tree, %d on the snapshot", mode, len(tree.Tasks), len(snap.Tasks))
		}
		for i := range tree.Tasks {
			if diff := cmp.Diff(tree.Tasks[i].Stack, snap.Tasks[i].Stack); diff != "" {
				t.Errorf("mode %d task %d stack (-tree +snapshot):\n%s", mode, tree.Tasks[i].TID, diff)
			}
		}
	}
}

// TestSnapshotLinkedPatch: a copy made with cp -rs holds links where sysfs
// has directories; klp reads through them, and so does the capture.
func TestSnapshotLinkedPatch(t *testing.T) {
	t.Parallel()
	root, h := fixture(t, "kernel-6.1", nil)
	lp := filepath.Join(root, "sys/kernel/livepatch")
	ents, err := os.ReadDir(lp)
	if err != nil || len(ents) == 0 {
		t.Fatalf("%v %v", ents, err)
	}
	moved := filepath.Join(root, "elsewhere")
	if err := os.Rename(filepath.Join(lp, ents[0].Name()), moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(moved, filepath.Join(lp, ents[0].Name())); err != nil {
		t.Fatal(err)
	}
	want, err := NewSystem(h).LP.Patches()
	if err != nil {
		t.Fatal(err)
	}
	_, a := captureOf(t, h, SnapshotOptions{})
	sh, _ := a.Handle()
	got, err := NewSystem(sh).LP.Patches()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" || len(got) == 0 {
		t.Errorf("patches (-tree +snapshot):\n%s", diff)
	}
}
