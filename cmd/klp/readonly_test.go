package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/klp-project/klp/internal/fakefs"
)

// TestCopiedTreeIsReadOnly runs the klp binary under strace with the roots
// of a copied tree (a fixture in the middle of a blocked transition) and
// proves, at the system call level, that no command that changes live
// patches acts on this machine: no module syscall, no signal to another
// process, no file opened for writing, created, renamed or removed. Each
// refuses in one line and exits 1. It needs root (strace -f of a child)
// and strace, as make test has.
func TestCopiedTreeIsReadOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for strace; make test runs as root")
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace is not installed (make deps installs it)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "klp")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build klp: %v\n%s", err, out)
	}
	if err := os.Symlink("klp", filepath.Join(dir, "kgr")); err != nil {
		t.Fatal(err)
	}
	root := fakefs.Load(t, filepath.Join("..", "..", "testdata", "transition-blocking.txtar"))
	module := filepath.Join(dir, "livepatch-fix.ko")
	if err := os.WriteFile(module, []byte("\x7fELF"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshotTree(t, root)
	roots := []string{"--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc")}
	for _, args := range [][]string{
		{"klp", "load", module},
		{"klp", "load", "--all"},
		{"klp", "unload", "livepatch_1_160000_1_1"},
		{"klp", "unload", "--all"},
		{"klp", "disable", "livepatch_2_160000_1_1"},
		{"klp", "enable", "livepatch_2_160000_1_1"},
		{"klp", "force", "--yes", "livepatch_2_160000_1_1"},
		{"klp", "signal"},
		{"klp", "install", module},
		{"klp", "uninstall", "livepatch_fix"},
		{"klp", "wait", "--on-stall=rollback", "--timeout", "1s"},
		{"klp", "--json", "unload", "livepatch_1_160000_1_1"},
		{"klp", "-n", "downgrade"},
		{"kgr", "poke"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			trace := filepath.Join(t.TempDir(), "trace")
			argv := append([]string{"-f", "-qq", "-o", trace, "-e",
				"trace=finit_module,init_module,delete_module,kill,tkill,tgkill,open,openat,openat2,creat,truncate,ftruncate,unlink,unlinkat,rename,renameat,renameat2,mkdir,mkdirat,symlinkat,linkat",
				filepath.Join(dir, args[0])}, append(roots, args[1:]...)...)
			cmd := exec.Command(strace, argv...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			msg := stderr.String()
			if code != 1 || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "is not a sysfs mount (a copied tree is read only); nothing was changed") {
				t.Errorf("exit %d, stderr %q; want exit 1 and one line of refusal", code, msg)
			}
			b, err := os.ReadFile(trace)
			if err != nil {
				t.Fatal(err)
			}
			for _, bad := range forbiddenCalls(string(b)) {
				t.Errorf("system call made: %s", bad)
			}
		})
	}
	if after := snapshotTree(t, root); after != before {
		t.Errorf("the copied tree changed")
	}
}

var (
	traceLine = regexp.MustCompile(`^(\d+) +(\w+)\((.*)$`)
	tgkillArg = regexp.MustCompile(`^(\d+), \d+, (\w+)`)
)

// forbiddenCalls returns the calls of an strace log that act: module
// syscalls, signals other than the Go runtime's SIGURG to its own threads,
// and file system changes or opens for writing.
func forbiddenCalls(log string) []string {
	var bad []string
	pids := map[string]bool{}
	for _, l := range strings.Split(log, "\n") {
		if m := traceLine.FindStringSubmatch(l); m != nil {
			pids[m[1]] = true
		}
	}
	for _, l := range strings.Split(log, "\n") {
		m := traceLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		call, args := m[2], m[3]
		switch call {
		case "tgkill":
			a := tgkillArg.FindStringSubmatch(args)
			// The runtime preempts its own threads with SIGURG.
			if a == nil || !pids[a[1]] || a[2] != "SIGURG" {
				bad = append(bad, l)
			}
		case "open", "openat", "openat2", "creat":
			if call == "creat" || regexp.MustCompile(`O_WRONLY|O_RDWR|O_CREAT|O_TRUNC`).MatchString(args) {
				bad = append(bad, l)
			}
		default:
			bad = append(bad, l)
		}
	}
	return bad
}

// snapshotTree returns every path of the tree with its mode and content.
func snapshotTree(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p + " " + fi.Mode().String() + " " + strconv.FormatInt(fi.Size(), 10) + "\n")
		if fi.Mode().IsRegular() {
			c, err := os.ReadFile(p)
			if err == nil {
				b.Write(c)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
