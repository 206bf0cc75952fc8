package fakefs

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tests of permission errors cannot run as root, which reads every file
// whatever its mode; the test re-runs itself in a child process as Nobody.
const (
	// Nobody is the uid and gid the child runs as.
	Nobody = 65534

	unprivilegedEnv = "KLP_TEST_UNPRIVILEGED"
	treeEnv         = "KLP_TEST_TREE"
)

// InUnprivilegedChild reports whether this process is the child started by
// RunUnprivileged, and returns the tree it was given.
func InUnprivilegedChild() (string, bool) {
	if os.Getenv(unprivilegedEnv) != "1" {
		return "", false
	}
	return os.Getenv(treeEnv), true
}

// OpenToOthers makes dir and every directory above it, up to the temporary
// directory, searchable by every user: testing.T.TempDir creates its parent
// with mode 0700.
func OpenToOthers(tb testing.TB, dir string) {
	tb.Helper()
	stop := filepath.Clean(os.TempDir())
	for d := filepath.Clean(dir); d != stop && d != "/" && strings.HasPrefix(d, stop); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
}

// RunUnprivileged runs the test named test again, in a child process of
// uid and gid Nobody, with the tree at root (see InUnprivilegedChild), and
// fails tb unless the child test passed. The go tool builds the test binary
// in a directory only root can enter, so a copy is run.
func RunUnprivileged(tb testing.TB, test, root string) {
	tb.Helper()
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	binDir := tb.TempDir()
	OpenToOthers(tb, binDir)
	OpenToOthers(tb, root)
	bin := filepath.Join(binDir, filepath.Base(self))
	if err := copyExecutable(self, bin); err != nil {
		tb.Fatal(err)
	}
	env := []string{unprivilegedEnv + "=1", treeEnv + "=" + root}
	for _, kv := range os.Environ() {
		// The child cannot write root's coverage directory.
		if !strings.HasPrefix(kv, "GOCOVERDIR=") {
			env = append(env, kv)
		}
	}
	// A parallel test that forks while the copy is still open for writing
	// lends the copy's descriptor to its child until that child execs, and
	// exec of a file open for writing fails with ETXTBSY
	// (golang/go#22315): try again briefly.
	var out []byte
	for try := 0; ; try++ {
		cmd := exec.Command(bin, "-test.run=^"+test+"$", "-test.v", "-test.count=1")
		cmd.Dir, cmd.Env = binDir, env
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: Nobody, Gid: Nobody, Groups: []uint32{}}}
		out, err = cmd.CombinedOutput()
		if !errors.Is(err, syscall.ETXTBSY) || try == 20 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("%s as uid %d: %v\n%s", test, Nobody, err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+test) {
		tb.Fatalf("%s as uid %d did not run:\n%s", test, Nobody, out)
	}
}

func copyExecutable(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
