package pkgmeta

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func requireSh(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
}

// Not parallel: it sets LC_ALL to check that Run overrides it.
func TestExecRunnerRun(t *testing.T) {
	requireSh(t)
	t.Setenv("LC_ALL", "de_DE.UTF-8")
	var r ExecRunner
	ctx := context.Background()

	out, err := r.Run(ctx, "sh", "-c", `printf '%s\n' "$LC_ALL"`)
	if err != nil || string(out) != "C\n" {
		t.Errorf("LC_ALL: %q, %v", out, err)
	}

	out, err = r.Run(ctx, "sh", "-c", `echo partial; echo "error: it broke" >&2; echo more >&2; exit 3`)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || ee.Name != "sh" {
		t.Fatalf("err = %#v", err)
	}
	if err.Error() != "sh: exit status 3: error: it broke" {
		t.Errorf("message = %q", err.Error())
	}
	if string(out) != "partial\n" {
		t.Errorf("stdout of a failed command = %q", out)
	}

	if _, err := r.Run(ctx, "/nonexistent/program"); err == nil || errors.As(err, &ee) {
		t.Errorf("missing program: %v", err)
	}

	ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	// sleep 10 would exit 0: an error says the program was stopped.
	if _, err := r.Run(ctx, "sh", "-c", "sleep 10"); err == nil || ctx.Err() == nil {
		t.Errorf("timeout did not stop the program: %v", err)
	}
}

// TestExecRunnerOrphan: a program killed at the timeout may leave a child
// that holds the output pipe open (rpm's helpers); Run returns anyway,
// instead of waiting for the child (here ten minutes: a Run that waited
// would make the test time out).
func TestExecRunnerOrphan(t *testing.T) {
	t.Parallel()
	requireSh(t)
	pidfile := filepath.Join(t.TempDir(), "pid")
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidfile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var r ExecRunner
	if _, err := r.Run(ctx, "sh", "-c", `sleep 600 & echo $! > "$1"; wait`, "sh", pidfile); err == nil || ctx.Err() == nil {
		t.Errorf("Run = %v, want the timeout's kill", err)
	}
}

func TestExecRunnerAttach(t *testing.T) {
	t.Parallel()
	requireSh(t)
	var r ExecRunner
	var out, errOut strings.Builder
	stdio := Stdio{In: strings.NewReader("y\n"), Out: &out, Err: &errOut}
	err := r.Attach(context.Background(), stdio, "sh", "-c", `read a; echo "got $a"; echo warn >&2; exit 0`)
	if err != nil || out.String() != "got y\n" || errOut.String() != "warn\n" {
		t.Errorf("out %q, err %q, %v", out.String(), errOut.String(), err)
	}
	err = r.Attach(context.Background(), stdio, "sh", "-c", "exit 8")
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 8 {
		t.Errorf("err = %v", err)
	}
	if _, err := r.LookPath("sh"); err != nil {
		t.Errorf("LookPath(sh): %v", err)
	}
}

func TestLimitedBuffer(t *testing.T) {
	t.Parallel()
	b := limitedBuffer{limit: 5}
	for _, s := range []string{"abc", "def", "ghi"} {
		if n, err := b.Write([]byte(s)); n != 3 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if b.String() != "abcde" || !b.overflow {
		t.Errorf("got %q, overflow %v", b.String(), b.overflow)
	}
	// Filled exactly: nothing dropped yet.
	full := limitedBuffer{limit: 6}
	full.Write([]byte("abc"))
	full.Write([]byte("def"))
	if full.String() != "abcdef" || full.overflow {
		t.Errorf("filled exactly: got %q, overflow %v", full.String(), full.overflow)
	}
	full.Write([]byte("g"))
	if full.String() != "abcdef" || !full.overflow {
		t.Errorf("one byte more: got %q, overflow %v", full.String(), full.overflow)
	}
}
