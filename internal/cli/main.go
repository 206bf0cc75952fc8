// Package cli implements the klp and kgr commands.
package cli

import (
	"errors"

	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/report"
)

// ExitCode is the process exit status. The SUSE-compatible commands use
// only 0 and 1 (klp(8), kgr(8)): 1 for every error, and for check "a
// transition is in progress". The commands that change live patches add the
// statuses of admin.ExitCode.
type ExitCode int

// Exit statuses (see admin.ExitCode for when each applies).
const (
	ExitOK          ExitCode = admin.ExitOK
	ExitError       ExitCode = admin.ExitError
	ExitStalled     ExitCode = admin.ExitStalled
	ExitUnsupported ExitCode = admin.ExitUnsupported
	ExitPermission  ExitCode = admin.ExitPermission
	ExitInterrupted ExitCode = admin.ExitInterrupted
)

// exitError carries an exit code that is not an error message, such as
// check's 1 for "in progress". A non-empty msg is printed to stderr.
type exitError struct {
	code ExitCode
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// usageError marks a command line that cannot be run: it is answered with
// the usage on stderr.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// Main runs klp, or kgr when args[0] names it, and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) ExitCode {
	env := DefaultEnv(stdin, stdout, stderr)
	// klp's own output to a file or a terminal skips Go's scheduler
	// (rawOutput says why, and why klp-exporter keeps the ordinary path).
	env.IO.Out, env.IO.ErrOut = output(stdout), output(stderr)
	return Run(args, env)
}

// Run is Main with injected dependencies.
func Run(args []string, env *Env) ExitCode {
	return run(args, env, newRootCmd)
}

// RunExporter runs klp-exporter: klp metrics and klp exporter, with
// env.Exporter serving them.
func RunExporter(args []string, env *Env) ExitCode {
	return run(args, env, func(_ string, env *Env, args []string) *cobra.Command {
		return newExporterRootCmd(env, args)
	})
}

func run(args []string, env *Env, newRoot func(prog string, env *Env, args []string) *cobra.Command) ExitCode {
	prog := "klp"
	if len(args) > 0 && strings.HasPrefix(filepath.Base(args[0]), "kgr") {
		prog = "kgr"
	}
	out := &countingWriter{w: env.IO.Out}
	streams := *env.IO
	streams.Out = out
	runEnv := *env
	runEnv.IO = &streams
	var rest []string
	if len(args) > 0 {
		rest = args[1:]
	}
	root := newRoot(prog, &runEnv, rest)
	root.SetArgs(rest)
	root.SetIn(env.IO.In)
	root.SetOut(out)
	root.SetErr(env.IO.ErrOut)
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	code, msg := ExitError, err.Error()
	var ee *exitError
	if errors.As(err, &ee) {
		code, msg = ee.code, ee.msg
	}
	if msg != "" {
		// Errors quote what they read (names, command lines, kernel log
		// lines): never let that reach the terminal as escape sequences
		// or extra lines.
		fmt.Fprintf(env.IO.ErrOut, "%s: %s\n", prog, printable(msg))
	}
	var ue *usageError
	if ee == nil && (errors.As(err, &ue) || isCobraUsageError(err)) {
		fmt.Fprintf(env.IO.ErrOut, "Run '%s --help' for usage.\n", prog)
	}
	// --json promises one document whatever happens: a command that failed
	// before printing its own prints the error.
	if jsonFlag, _ := root.PersistentFlags().GetBool("json"); jsonFlag && out.n == 0 && msg != "" {
		_ = report.Write(out, report.NewError(msg, int(code)))
	}
	return code
}

// countingWriter counts what a command wrote to stdout.
type countingWriter struct {
	w io.Writer
	n int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += n
	return n, err
}

// isCobraUsageError recognises cobra's own command-line errors, which it
// returns as plain errors.
func isCobraUsageError(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "accepts ", "requires at least", "requires at most", "bad flag syntax"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// isTerminal reports whether w is a terminal: it answers the terminal
// ioctl. A character device is not enough (/dev/null is one), and a
// confirmation must never be taken from a file or a pipe.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
