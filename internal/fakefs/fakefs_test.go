package fakefs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/txtar"
)

// tree lists the files under dir as path -> content, directories with a
// trailing "/" and symbolic links as "-> target".
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			got[rel] = "-> " + target
		case d.IsDir():
			got[rel+"/"] = ""
		default:
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			got[rel] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestUnpack(t *testing.T) {
	t.Parallel()
	a := txtar.Parse([]byte(`# A comment line describes the fixture; it is not a directive.
this line neither
chmod 0200 sys/kernel/livepatch/lp/force
chmod 0444 sys/kernel/livepatch/lp/transition
symlink proc/self 42
symlink sys/module/lp/holders/other ../../other
-- sys/kernel/livepatch/lp/enabled --
1
-- sys/kernel/livepatch/lp/transition --
0
-- sys/kernel/livepatch/lp/force --
-- sys/kernel/livepatch/lp/vmlinux/cmdline_proc_show,1/ --
-- proc/42/cmdline --
/usr/sbin/sshd<NUL>-D<NUL>
-- proc/42/comm --
sshd
-- proc/2/cmdline --
-- proc/43/cmdline --
sshd: root@pts/0<NUL><NUL><NUL>
`))
	dir := t.TempDir()
	if err := Unpack(a, dir); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"sys/":                               "",
		"sys/kernel/":                        "",
		"sys/kernel/livepatch/":              "",
		"sys/kernel/livepatch/lp/":           "",
		"sys/kernel/livepatch/lp/enabled":    "1\n",
		"sys/kernel/livepatch/lp/transition": "0\n",
		"sys/kernel/livepatch/lp/force":      "",
		// A name ending in "/" is an empty directory.
		"sys/kernel/livepatch/lp/vmlinux/":                     "",
		"sys/kernel/livepatch/lp/vmlinux/cmdline_proc_show,1/": "",
		"sys/module/":                 "",
		"sys/module/lp/":              "",
		"sys/module/lp/holders/":      "",
		"sys/module/lp/holders/other": "-> ../../other",
		"proc/":                       "",
		"proc/self":                   "-> 42",
		"proc/2/":                     "",
		"proc/2/cmdline":              "",
		"proc/42/":                    "",
		// <NUL> is a NUL byte, and such a file loses txtar's final
		// newline, as /proc/<pid>/cmdline has none.
		"proc/42/cmdline": "/usr/sbin/sshd\x00-D\x00",
		// Other files keep it.
		"proc/42/comm":    "sshd\n",
		"proc/43/":        "",
		"proc/43/cmdline": "sshd: root@pts/0\x00\x00\x00",
	}
	if diff := cmp.Diff(want, tree(t, dir)); diff != "" {
		t.Errorf("unpacked tree: unexpected diff (-want +got):\n%s", diff)
	}
	for path, want := range map[string]os.FileMode{
		"sys/kernel/livepatch/lp/force":      0o200,
		"sys/kernel/livepatch/lp/transition": 0o444,
		"sys/kernel/livepatch/lp/enabled":    0o644,
		"sys/kernel/livepatch/lp/vmlinux":    0o755,
	} {
		if got := mode(t, filepath.Join(dir, path)); got != want {
			t.Errorf("mode of %s = %o, want %o", path, got, want)
		}
	}
}

func TestUnpackErrors(t *testing.T) {
	t.Parallel()
	for name, archive := range map[string]string{
		"file escapes":          "-- ../outside --\nx\n",
		"deep file escapes":     "-- proc/../../outside --\nx\n",
		"bad chmod mode":        "chmod 0999 f\n-- f --\nx\n",
		"chmod of missing file": "chmod 0644 missing\n",
		"symlink over a file":   "symlink f x\n-- f --\nx\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			parent := t.TempDir()
			dir := filepath.Join(parent, "tree")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := Unpack(txtar.Parse([]byte(archive)), dir); err == nil {
				t.Errorf("Unpack(%q) succeeded", archive)
			}
			if _, err := os.Lstat(filepath.Join(parent, "outside")); err == nil {
				t.Errorf("Unpack(%q) wrote outside the tree", archive)
			}
		})
	}
}

// TestUnpackDirectivesStayInTree: Unpack refuses a file whose name leaves
// the tree, but the chmod and symlink directives join their PATH to the
// tree unchecked, so a fixture can change the mode of a file outside it or
// create a link there.
func TestUnpackDirectivesStayInTree(t *testing.T) {
	t.Parallel()
	for name, archive := range map[string]string{
		"chmod":   "chmod 0600 ../outside\n",
		"symlink": "symlink ../link proc\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			parent := t.TempDir()
			outside := filepath.Join(parent, "outside")
			if err := os.WriteFile(outside, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(parent, "tree")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			err := Unpack(txtar.Parse([]byte(archive)), dir)
			if err == nil {
				t.Errorf("Unpack(%q) succeeded", archive)
			}
			if got := mode(t, outside); got != 0o644 {
				t.Errorf("Unpack(%q) changed the mode of a file outside the tree to %o", archive, got)
			}
			if _, err := os.Lstat(filepath.Join(parent, "link")); err == nil {
				t.Errorf("Unpack(%q) created a link outside the tree", archive)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := Load(t, "../../testdata/kernel-6.1.txtar")
	if got := mode(t, dir); got != 0o755 {
		t.Errorf("mode of the tree = %o, want 755", got)
	}
	b, err := os.ReadFile(filepath.Join(dir, "sys/kernel/livepatch/lp_6_1_0_27_cloud_2/enabled"))
	if err != nil || string(b) != "1\n" {
		t.Errorf("enabled = %q, %v, want \"1\\n\"", b, err)
	}
}

// TestLoadReadableByOthers: Load says the tree "is readable by every user
// so that tests may run a command as another user against it", but it
// makes only the tree's own directory 0755: testing.T.TempDir creates the
// directory above it with os.MkdirTemp, mode 0700, so no other user can
// reach the tree.
func TestLoadReadableByOthers(t *testing.T) {
	t.Parallel()
	dir := Load(t, "../../testdata/kernel-6.1.txtar")
	stop := filepath.Clean(os.TempDir())
	for d := dir; d != stop && d != "/" && strings.HasPrefix(d, stop); d = filepath.Dir(d) {
		if m := mode(t, d); m&0o005 != 0o005 {
			t.Errorf("%s has mode %o: other users cannot enter it", d, m)
		}
	}
}

func TestWriteTasks(t *testing.T) {
	t.Parallel()
	proc := t.TempDir()
	err := WriteTasks(proc, []Task{
		{PID: 10, TID: 10, PatchState: 1, Comm: "nscd"},
		{PID: 10, TID: 11, PatchState: 0, Comm: "nscd"},
		{PID: 20, TID: 20, PatchState: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := tree(t, proc)
	// The stat lines follow the kernel's layout: tid (comm) state ppid
	// pgrp session tty_nr tpgid flags ...
	for path, want := range map[string]string{
		"10/task/10/patch_state": "1\n",
		"10/task/11/patch_state": "0\n",
		"20/task/20/patch_state": "-1\n",
		"10/task/10/comm":        "nscd\n",
		"20/task/20/comm":        "worker\n",
		"10/cmdline":             "/usr/bin/nscd\x00--serve\x00",
		"20/cmdline":             "/usr/bin/worker\x00--serve\x00",
	} {
		if got[path] != want {
			t.Errorf("%s = %q, want %q", path, got[path], want)
		}
	}
	for path, prefix := range map[string]string{
		"10/task/10/stat": "10 (nscd) S 1 10 10 0 -1 4194560 ",
		"10/task/11/stat": "11 (nscd) S 1 10 10 0 -1 4194560 ",
		"20/task/20/stat": "20 (worker) S 1 20 20 0 -1 4194560 ",
	} {
		if !strings.HasPrefix(got[path], prefix) || !strings.HasSuffix(got[path], "\n") {
			t.Errorf("%s = %q, want a stat line starting %q", path, got[path], prefix)
		}
	}
	// Threads that are not the leader have no cmdline of their own.
	if _, ok := got["11/cmdline"]; ok {
		t.Error("WriteTasks wrote a process directory for a thread")
	}
}
