package livepatch

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/fakefs"
)

// fixtureDir holds the fixture trees shared by every package's tests.
const fixtureDir = "../testdata"

// fixtureFS unpacks testdata/<name>.txtar and returns an FS on it and the
// tree's root.
func fixtureFS(t *testing.T, name string) (FS, string) {
	t.Helper()
	root := fakefs.Load(t, filepath.Join(fixtureDir, name+".txtar"))
	return newTestFS(t, root), root
}

// archiveFS unpacks an inline txtar archive (see package fakefs for the
// conventions) and returns an FS on it and the tree's root. The sys and proc
// directories exist even when the archive has nothing under them.
func archiveFS(t *testing.T, archive string) (FS, string) {
	t.Helper()
	root := t.TempDir()
	if err := fakefs.Unpack(txtar.Parse([]byte(archive)), root); err != nil {
		t.Fatal(err)
	}
	return newTestFS(t, root), root
}

// memDir returns a new temporary directory on a memory file system when
// one is available (the temporary directory itself, or /dev/shm), and
// t.TempDir() otherwise. procfs lives in memory; on a disk-backed /tmp the
// 65,000 files of the scale test can take minutes to create.
func memDir(t *testing.T) string {
	t.Helper()
	for _, base := range []string{os.TempDir(), "/dev/shm"} {
		var st unix.Statfs_t
		if unix.Statfs(base, &st) != nil || st.Type != unix.TMPFS_MAGIC {
			continue
		}
		dir, err := os.MkdirTemp(base, "klp-test-")
		if err != nil {
			continue
		}
		t.Cleanup(func() {
			if err := os.RemoveAll(dir); err != nil {
				t.Error(err)
			}
		})
		return dir
	}
	return t.TempDir()
}

func newTestFS(t *testing.T, root string) FS {
	t.Helper()
	for _, d := range []string{"sys", "proc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := NewFS(filepath.Join(root, "sys"), filepath.Join(root, "proc"))
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func ptr[T any](v T) *T { return &v }

// Re-executing the test binary as another user, for tests of permission
// errors: root reads every file whatever its mode.
const (
	// unprivilegedEnv marks the child process.
	unprivilegedEnv = "KLP_LIVEPATCH_TEST_UNPRIVILEGED"
	// treeEnv passes the fixture tree to the child.
	treeEnv = "KLP_LIVEPATCH_TEST_TREE"
	// nobody is the uid and gid the child runs as.
	nobody = 65534
)

// inUnprivilegedChild reports whether this process is the child started by
// runUnprivileged, and returns the tree it was given.
func inUnprivilegedChild() (string, bool) {
	if os.Getenv(unprivilegedEnv) != "1" {
		return "", false
	}
	return os.Getenv(treeEnv), true
}

// openToOthers makes dir and every directory above it up to the temporary
// directory searchable by every user: testing.T.TempDir creates its parent
// with mode 0700.
func openToOthers(t *testing.T, dir string) {
	t.Helper()
	stop := filepath.Clean(os.TempDir())
	for d := filepath.Clean(dir); d != stop && d != "/" && strings.HasPrefix(d, stop); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// runUnprivileged runs the test named test again, in a child process of
// uid and gid 65534, with the tree at root. The go tool builds the test
// binary in a directory only root can enter, so a copy is run.
func runUnprivileged(t *testing.T, test, root string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	binDir := t.TempDir()
	openToOthers(t, binDir)
	openToOthers(t, root)
	bin := filepath.Join(binDir, filepath.Base(self))
	copyFile(t, self, bin, 0o755)

	cmd := exec.Command(bin, "-test.run=^"+test+"$", "-test.v", "-test.count=1")
	cmd.Dir = binDir
	for _, kv := range os.Environ() {
		// The child cannot write root's coverage directory.
		if !strings.HasPrefix(kv, "GOCOVERDIR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, unprivilegedEnv+"=1", treeEnv+"="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s as uid %d: %v\n%s", test, nobody, err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+test) {
		t.Fatalf("%s as uid %d did not run:\n%s", test, nobody, out)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
