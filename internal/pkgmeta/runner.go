package pkgmeta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Runner runs the external programs pkgmeta depends on. The real one is
// [ExecRunner]; tests use a fake that answers from a table.
type Runner interface {
	// Run runs name with args and returns its standard output. A program
	// that exits with a non-zero status returns an [*ExitError] (and
	// whatever it printed on stdout, which zypper uses for its XML error
	// messages).
	Run(ctx context.Context, name string, args ...string) (stdout []byte, err error)
	// LookPath reports whether name is installed, as [exec.LookPath] does.
	LookPath(name string) (string, error)
	// Attach runs name with the user's streams attached: its output goes
	// straight to the user and it may ask the user questions. It is for
	// the command downgrade performs, which the user watches.
	Attach(ctx context.Context, stdio Stdio, name string, args ...string) error
}

// Stdio are the streams [Runner.Attach] connects to the program.
type Stdio struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// ExitError reports a program that ran and exited with a non-zero status.
type ExitError struct {
	// Name is the program that failed.
	Name string
	// Code is its exit status; -1 when it was killed by a signal.
	Code int
	// Stderr is the start of what it printed on standard error, for the
	// message.
	Stderr string
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s: exit status %d", e.Name, e.Code)
	if line := firstLine(e.Stderr); line != "" {
		msg += ": " + line
	}
	return msg
}

// exitCode returns the exit status carried by err, or false when err is not
// an [*ExitError].
func exitCode(err error) (int, bool) {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code, true
	}
	return 0, false
}

// Output caps. rpm --changelog of a kernel package is a few MiB; nothing we
// run should print more than this, and a runaway program must not exhaust
// memory.
const (
	maxStdout = 64 << 20
	maxStderr = 64 << 10
)

// ExecRunner runs programs with os/exec. The zero value is ready to use.
type ExecRunner struct{}

// LookPath implements [Runner].
func (ExecRunner) LookPath(name string) (string, error) { return exec.LookPath(name) }

// Run implements [Runner]. Programs run with LC_ALL=C because their output
// is parsed: rpm, dpkg and apt translate their messages, and apt-cache's
// "Installed:" and "Candidate:" labels with them.
func (ExecRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	// A later duplicate wins in exec.Cmd.Env, so this overrides the
	// user's LC_ALL without having to filter the environment.
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	// On timeout the program is killed, but a child it started (rpm runs
	// helpers, zypper runs rpm) may hold the output pipes open; stop
	// waiting for them a moment later.
	cmd.WaitDelay = time.Second
	var stdout, stderr limitedBuffer
	stdout.limit, stderr.limit = maxStdout, maxStderr
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if stdout.overflow {
		return nil, fmt.Errorf("run %s: output larger than %d bytes", name, maxStdout)
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return stdout.Bytes(), &ExitError{Name: name, Code: ee.ExitCode(), Stderr: stderr.String()}
		}
		return nil, fmt.Errorf("run %s: %w", name, err)
	}
	return stdout.Bytes(), nil
}

// Attach implements [Runner]. The program keeps the user's environment,
// locale included, because its output is for the user and not parsed.
//
// While it runs, klp catches SIGINT and SIGQUIT instead of dying of them.
// The terminal sends them to the whole foreground process group, so the
// program receives them too and decides itself (zypper finishes or rolls
// back its transaction); klp then reports how it exited. Dying first would
// leave the user's shell prompt under a still-running zypper.
func (ExecRunner) Attach(ctx context.Context, stdio Stdio, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.In, stdio.Out, stdio.Err
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Stop(sig)
	err := cmd.Run()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return &ExitError{Name: name, Code: ee.ExitCode()}
		}
		return fmt.Errorf("run %s: %w", name, err)
	}
	return nil
}

// limitedBuffer keeps at most limit bytes and remembers that it dropped
// some. It never fails a write, so the program is not killed by EPIPE
// halfway through a transaction.
type limitedBuffer struct {
	bytes.Buffer
	limit    int
	overflow bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.limit - b.Len(); len(p) > room {
		b.overflow = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}
