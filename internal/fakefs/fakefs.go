// Package fakefs builds fake sysfs and procfs trees for tests from txtar
// archives.
//
// An archive holds the files of a tree relative to its root, usually under
// sys/ and proc/. Conventions beyond plain txtar:
//   - a name ending in "/" is an empty directory (sysfs function directories
//     have no files);
//   - "<NUL>" in a file stands for a NUL byte, and a file holding one loses
//     the newline txtar adds at its end (/proc/<pid>/cmdline has none);
//   - lines of the archive's comment are directives:
//     "chmod MODE PATH" sets a file's mode (octal), and
//     "symlink PATH TARGET" makes PATH a symbolic link to TARGET.
package fakefs

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/klp-project/klp/kernel"
)

// Unpack writes the archive's files under dir.
func Unpack(a *txtar.Archive, dir string) error {
	inTree := func(name string) (string, error) {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if !strings.HasPrefix(path, filepath.Clean(dir)+string(filepath.Separator)) {
			return "", fmt.Errorf("unpack %s: path escapes the tree", name)
		}
		return path, nil
	}
	for _, f := range a.Files {
		path, err := inTree(f.Name)
		if err != nil {
			return err
		}
		if strings.HasSuffix(f.Name, "/") {
			if err := os.MkdirAll(path, 0o755); err != nil {
				return fmt.Errorf("unpack: %w", err)
			}
			continue
		}
		data := f.Data
		if strings.Contains(string(data), "<NUL>") {
			data = []byte(strings.TrimSuffix(strings.ReplaceAll(string(data), "<NUL>", "\x00"), "\n"))
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
	}
	for _, line := range strings.Split(string(a.Comment), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch {
		case f[0] == "chmod" && len(f) == 3:
			mode, err := strconv.ParseUint(f[1], 8, 32)
			if err != nil {
				return fmt.Errorf("unpack: directive %q: bad mode", line)
			}
			p, err := inTree(f[2])
			if err != nil {
				return err
			}
			if err := os.Chmod(p, os.FileMode(mode)); err != nil {
				return fmt.Errorf("unpack: %w", err)
			}
		case f[0] == "symlink" && len(f) == 3:
			p, err := inTree(f[1])
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return fmt.Errorf("unpack: %w", err)
			}
			if err := os.Symlink(f[2], p); err != nil {
				return fmt.Errorf("unpack: %w", err)
			}
		}
		// Other comment lines describe the fixture.
	}
	return nil
}

// Load unpacks the txtar file at path into a new temporary directory and
// returns the directory. The directory is readable by every user so that
// tests may run a command as another user against it.
func Load(tb testing.TB, path string) string {
	tb.Helper()
	a, err := txtar.ParseFile(path)
	if err != nil {
		tb.Fatalf("load fixture: %v", err)
	}
	dir := tb.TempDir()
	// t.TempDir's parent is private to the test too: open both.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	if err := Unpack(a, dir); err != nil {
		tb.Fatalf("load fixture %s: %v", path, err)
	}
	return dir
}

// Task describes one thread for WriteTasks.
type Task struct {
	PID, TID   int
	PatchState int
	Comm       string
}

// WriteTasks adds the procfs files of the given threads under procRoot:
// task/<tid>/patch_state, comm and stat, and the process's cmdline. It is
// meant for large generated trees (benchmarks, scale tests).
func WriteTasks(procRoot string, tasks []Task) error {
	for _, t := range tasks {
		dir := filepath.Join(procRoot, strconv.Itoa(t.PID), "task", strconv.Itoa(t.TID))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		comm := t.Comm
		if comm == "" {
			comm = "worker"
		}
		files := map[string]string{
			"patch_state": strconv.Itoa(t.PatchState) + "\n",
			"comm":        comm + "\n",
			"stat":        fmt.Sprintf("%d (%s) S 1 %d %d 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0\n", t.TID, comm, t.PID, t.PID),
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				return err
			}
		}
		if t.PID == t.TID {
			cmd := filepath.Join(procRoot, strconv.Itoa(t.PID), "cmdline")
			if err := os.WriteFile(cmd, []byte("/usr/bin/"+comm+"\x00--serve\x00"), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// OpenLive returns, for tests, an opener of live handles on any tree: the
// tree is read as it is and every action goes to seams (a nil seam refuses
// its actions). It stands where the CLI's kernel.OpenLive stands, which
// refuses every tree but the running kernel's.
func OpenLive(seams kernel.Seams) func(kernel.Roots) (*kernel.Live, error) {
	return func(r kernel.Roots) (*kernel.Live, error) {
		h, err := kernel.Open(r)
		if err != nil {
			return nil, err
		}
		return kernel.Simulate(h, seams), nil
	}
}

// KillFunc is a kernel.Signaller made of a function.
type KillFunc func(pid int, sig syscall.Signal) error

// Kill implements kernel.Signaller.
func (f KillFunc) Kill(pid int, sig syscall.Signal) error { return f(pid, sig) }
