package livepatch

import (
	"os"
	"path/filepath"
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
