package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/klp-project/klp/internal/preflight"
	"github.com/klp-project/klp/modinfo"
	"github.com/spf13/cobra"
)

func newPreflightCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "preflight [FILE.ko|NAME]",
		Short: "Check that this kernel, now, can take a live patch",
		Long: `Check the running kernel for what live patching needs: live patching
support, kernel.ftrace_enabled, reliable stack traces (from the kernel
config), lockdown, module signature enforcement, kernel taint, a transition
in progress, a patch whose transition was forced.

With a module file (or the NAME of an installed patch) also check it against
this kernel: its vermagic, that every function and symbol it names exists in
/proc/kallsyms as the kernel will look it up (an ambiguous name without a
sympos is refused), that the functions can be traced, that no kprobe or
other ftrace user would conflict, whether its target modules are loaded
(otherwise it applies when they load), whether it or a patch of the same
name is loaded already, and what an atomic replace patch would replace.

Each check passes, warns or fails, with a one-line reason and a fix; -v adds
the details. A check that cannot be made (not root, debugfs not mounted) is
skipped, with what to do. The exit status is 0 unless a check fails. klp load
runs the cheap checks before loading and refuses on a failure.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			arg := ""
			if len(args) == 1 {
				arg = args[0]
			}
			return preflightRun(opts, arg)
		},
	}
}

func preflightRun(opts *rootOptions, arg string) error {
	if _, err := opts.fs(); err != nil {
		return &exitError{code: ExitError, msg: err.Error()}
	}
	var mod *modinfo.Module
	path := ""
	if arg != "" {
		var err error
		if path, err = moduleFile(opts, "preflight", arg); err != nil {
			return &exitError{code: ExitError, msg: "preflight: " + err.Error()}
		}
		if mod, err = opts.inspectModule(path); err != nil {
			return &exitError{code: ExitError, msg: "preflight: " + err.Error()}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := preflight.Run(ctx, opts.preflightInputs(mod, false))
	if err != nil {
		return &exitError{code: ExitError, msg: "preflight: " + err.Error()}
	}
	w := opts.env.IO.Out
	if opts.json {
		if err := writeJSON(w, preflightJSON(rep, path)); err != nil {
			return err
		}
	} else {
		printPreflight(w, rep, path, opts.verbose, opts.env.IO.OutTTY)
	}
	if rep.Result() == preflight.Fail {
		return &exitError{code: ExitError}
	}
	return nil
}

func (o *rootOptions) preflightInputs(mod *modinfo.Module, cheap bool) preflight.Inputs {
	return preflight.Inputs{SysRoot: o.sysRoot, ProcRoot: o.procRoot, BootDir: o.env.BootDir, Module: mod, Cheap: cheap}
}

// statusLabels are the text forms of the statuses, all four letters wide.
var statusLabels = map[preflight.Status]string{
	preflight.Pass: "PASS", preflight.Warn: "WARN", preflight.Fail: "FAIL", preflight.Skip: "SKIP",
}

// statusColours are the ANSI colours used on a terminal.
var statusColours = map[preflight.Status]string{
	preflight.Pass: "32", preflight.Warn: "33", preflight.Fail: "31", preflight.Skip: "2",
}

func statusLabel(s preflight.Status, tty bool) string {
	l := statusLabels[s]
	if tty {
		return "\033[" + statusColours[s] + "m" + l + "\033[0m"
	}
	return l
}

// printPreflight writes one line per check ("PASS  title: reason"), an
// indented fix for the others, the details with -v, and a summary.
func printPreflight(w io.Writer, rep *preflight.Report, path string, verbose int, tty bool) {
	if rep.Module != nil {
		name := rep.Module.Name
		if name == "" {
			name = "(unnamed module)"
		}
		fmt.Fprintf(w, "%s: %s\n", printable(name), printable(path))
	}
	for _, c := range rep.Checks {
		fmt.Fprintf(w, "%s  %s: %s\n", statusLabel(c.Status, tty), c.Title, printable(c.Reason))
		if c.Status != preflight.Pass && c.Fix != "" {
			fmt.Fprintf(w, "      fix: %s\n", printable(c.Fix))
		}
		if verbose > 0 {
			for _, d := range c.Details {
				fmt.Fprintf(w, "      - %s\n", printable(d))
			}
		}
	}
	fmt.Fprintf(w, "result: %s (%d failed, %d warned, %d skipped, %d passed)\n", rep.Result(),
		rep.Count(preflight.Fail), rep.Count(preflight.Warn), rep.Count(preflight.Skip), rep.Count(preflight.Pass))
}

type jsonPreflight struct {
	SchemaVersion int                  `json:"schema_version"`
	Module        *jsonPreflightModule `json:"module"`
	Checks        []jsonCheck          `json:"checks"`
	Result        preflight.Status     `json:"result"`
}

type jsonPreflightModule struct {
	File      string           `json:"file"`
	Name      string           `json:"name"`
	Vermagic  string           `json:"vermagic"`
	Livepatch bool             `json:"livepatch"`
	Signed    bool             `json:"signed"`
	Replace   *bool            `json:"replace"`
	Functions []modinfo.Target `json:"functions"`
}

type jsonCheck struct {
	ID      string           `json:"id"`
	Title   string           `json:"title"`
	Status  preflight.Status `json:"status"`
	Reason  string           `json:"reason"`
	Fix     *string          `json:"fix"`
	Details []string         `json:"details"`
}

func checksJSON(checks []preflight.Check) []jsonCheck {
	out := make([]jsonCheck, 0, len(checks))
	for _, c := range checks {
		j := jsonCheck{ID: c.ID, Title: c.Title, Status: c.Status, Reason: c.Reason, Details: nonNil(c.Details)}
		if c.Fix != "" {
			fix := c.Fix
			j.Fix = &fix
		}
		out = append(out, j)
	}
	return out
}

func preflightJSON(rep *preflight.Report, path string) jsonPreflight {
	doc := jsonPreflight{SchemaVersion: SchemaVersion, Checks: checksJSON(rep.Checks), Result: rep.Result()}
	if m := rep.Module; m != nil {
		jm := &jsonPreflightModule{File: path, Name: m.Name, Vermagic: m.Vermagic, Livepatch: m.Livepatch,
			Signed: m.Signature != nil, Functions: []modinfo.Target{}}
		if m.Targets != nil {
			jm.Replace = m.Targets.Replace
			jm.Functions = m.Targets.Functions
		}
		doc.Module = jm
	}
	return doc
}

// preflightExit is the exit status of a load refused by a check: the one
// the kernel's own refusal would have given (see classify).
func preflightExit(id string) ExitCode {
	switch id {
	case preflight.IDLivepatchSupported:
		return ExitUnsupported
	case preflight.IDSigEnforce, preflight.IDLockdown, preflight.IDModulesDisabled:
		return ExitPermission
	}
	return ExitError
}

// jsonLoadRefused is klp load --json's document when preflight refuses:
// the usual outcome plus the checks that ran.
type jsonLoadRefused struct {
	jsonOutcome
	Preflight []jsonCheck `json:"preflight"`
}

// loadPreflight runs the cheap preflight checks before klp load loads a
// module, and refuses the load when one fails: the kernel (or klp load
// itself) would refuse it anyway, and here the refusal comes with a reason
// and a fix instead of an errno. A module that cannot be read is left to
// the load, which reports it the usual way. Warnings are shown with -v.
func loadPreflight(opts *rootOptions, path string) error {
	if opts.env.Geteuid != nil && opts.env.Geteuid() != 0 {
		// Not root: the load is refused for that (exit 5) before
		// anything else, and a check failing here would only hide it.
		return nil
	}
	mod, err := opts.inspectModule(path)
	if err != nil {
		return nil
	}
	rep, err := preflight.Run(context.Background(), opts.preflightInputs(mod, true))
	if err != nil {
		return &exitError{code: ExitError, msg: "preflight: " + err.Error()}
	}
	errOut := opts.env.IO.ErrOut
	if !opts.json && opts.verbose > 0 {
		for _, c := range rep.Checks {
			if c.Status == preflight.Warn || c.Status == preflight.Skip {
				fmt.Fprintf(errOut, "%s: preflight: %s  %s: %s\n", opts.prog, statusLabels[c.Status], c.Title, printable(c.Reason))
			}
		}
	}
	failed := rep.Failed()
	if len(failed) == 0 {
		return nil
	}
	name := mod.Name
	if name == "" {
		name = path
	}
	msg := fmt.Sprintf("load %s refused: %d preflight check(s) failed (--skip-preflight loads anyway)", name, len(failed))
	// The module loader checks permission (modules_disabled, signature,
	// lockdown) before the patch's init runs, so such a failure is what
	// the kernel would have answered: its exit status wins.
	code := ExitError
	for _, c := range failed {
		switch e := preflightExit(c.ID); {
		case e == ExitPermission:
			code = e
		case e == ExitUnsupported && code == ExitError:
			code = e
		}
	}
	if opts.json {
		doc := jsonLoadRefused{
			jsonOutcome: jsonOutcome{SchemaVersion: SchemaVersion, Action: "load", Patch: mod.Name, File: path,
				Result: "refused", Error: &msg, ExitCode: int(code), KernelLog: []string{}, Notes: []string{}},
			Preflight: checksJSON(rep.Checks),
		}
		_ = writeJSON(opts.env.IO.Out, doc)
		return &exitError{code: code, msg: msg}
	}
	for _, c := range failed {
		fmt.Fprintf(errOut, "%s: preflight: FAIL  %s: %s\n", opts.prog, c.Title, printable(c.Reason))
		fmt.Fprintf(errOut, "%s: preflight:   fix: %s\n", opts.prog, printable(c.Fix))
	}
	return &exitError{code: code, msg: msg}
}
