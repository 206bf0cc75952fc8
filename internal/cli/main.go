// Package cli implements the klp and kgr commands.
package cli

import (
	"errors"

	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klp-project/klp/internal/admin"
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
	return Run(args, env)
}

// Run is Main with injected dependencies.
func Run(args []string, env *Env) ExitCode {
	prog := "klp"
	if len(args) > 0 && strings.HasPrefix(filepath.Base(args[0]), "kgr") {
		prog = "kgr"
	}
	root := newRootCmd(prog, env)
	root.SetArgs(args[1:])
	root.SetIn(env.IO.In)
	root.SetOut(env.IO.Out)
	root.SetErr(env.IO.ErrOut)
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintf(env.IO.ErrOut, "%s: %s\n", prog, ee.msg)
		}
		return ee.code
	}
	fmt.Fprintf(env.IO.ErrOut, "%s: %s\n", prog, err)
	var ue *usageError
	if errors.As(err, &ue) || isCobraUsageError(err) {
		fmt.Fprintf(env.IO.ErrOut, "Run '%s --help' for usage.\n", prog)
	}
	return ExitError
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

// stdoutIsTTY reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
