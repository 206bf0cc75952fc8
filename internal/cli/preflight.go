package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/preflight"
	"github.com/klp-project/klp/internal/report"
	"github.com/klp-project/klp/modinfo"
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
other ftrace user would conflict, that no BPF program would silently
override the patch (an fmod_ret or LSM program, or a kprobe program calling
bpf_override_return(), wins over a live patch without a word; listing the
BPF programs needs root on the running kernel), whether its target modules
are loaded (otherwise it applies when they load), whether it or a patch of
the same name is loaded already, and what an atomic replace patch would
replace.

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
	sys, err := opts.system()
	if err != nil {
		return &exitError{code: ExitError, msg: err.Error()}
	}
	var mod *modinfo.Module
	path := ""
	if arg != "" {
		var err error
		if path, err = opts.moduleFile(sys, "preflight", arg); err != nil {
			return &exitError{code: ExitError, msg: "preflight: " + err.Error()}
		}
		if mod, err = opts.inspectModule(path); err != nil {
			return &exitError{code: ExitError, msg: "preflight: " + err.Error()}
		}
	}
	ctx, stop := opts.interruptible()
	defer stop()
	in := preflight.Inputs{Kernel: sys.K, Module: mod}
	if sys.K.KernelFS() {
		// The store is this machine's: it describes the loaded patches of
		// the running kernel only, not those of a copied tree or a
		// snapshot, whose patches' own files are then unknown.
		in.LoadedModule = sys.InstalledModule(opts.env.Store, opts.inspectModule)
	}
	rep, err := preflight.Run(ctx, in)
	if err != nil {
		return &exitError{code: ExitError, msg: "preflight: " + err.Error()}
	}
	w := opts.env.IO.Out
	if opts.json {
		if err := report.Write(w, report.NewPreflight(rep, path)); err != nil {
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
