package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/report"
)

func newDowngradeCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "downgrade",
		Short: "Replace the current kernel live patch with its previous version",
		Long: `Replace the current kernel live patch with the previous version of its
package, by installing that version with the package manager.

downgrade finds the active patch (the enabled one; of several, the one
with the highest stack_order, or else the last by name), the package that
owns its module file (rpm -qf, or dpkg -S), and the newest version of that
package older than the installed one (zypper search -s --match-exact NAME,
in rpm's version order). It prints the command that installs that version,

    zypper in --oldpackage NAME=VERSION-RELEASE

asks "Continue? [y/N]" on standard error, and runs the command on "y",
with its output shown. The package's scripts load the older module, which
replaces the current patch (SUSE live patches are cumulative). While a
transition is in progress the kernel accepts no other patch, so downgrade
refuses to start until 'klp status' says ready.

With -n (klp -n downgrade) nothing is asked, and zypper runs with
--non-interactive. Without -n the answer is read from standard input even
when it is not a terminal, so "echo y | klp downgrade" works; end of input
counts as "no".

On Debian-family systems the versions come from apt-cache policy and the
command is apt-get install --allow-downgrades NAME=VERSION (with --yes
for -n).

With --json, one JSON document is printed at the end:
{"schema_version":1,"patch":...,"manager":...,"package":...,"from":...,
"to":...,"command":[...],"ran":true|false}; the command's own output then
goes to standard error.

Exit status: 0 when the command ran and succeeded; 1 when no live patch is
enabled, a transition is in progress, no package owns the patch module,
the repositories have no older version, zypper (or apt) is not installed,
klp does not run as root, the answer is not "y", or the command fails (its
exit status is in the message).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return downgradeRun(opts)
		},
	}
}

func downgradeRun(opts *rootOptions) error {
	env, prog := opts.env, opts.prog
	c, err := opts.changer("downgrade")
	if err != nil {
		return err
	}
	dg, ok := opts.packages().(admin.Downgrader)
	if !ok {
		return errors.New("downgrade: no package manager support in this build")
	}
	d, err := c.PlanDowngrade(dg, opts.nonInteractive)
	if d != nil {
		printNotes(env, prog, d.Notes)
	}
	if err != nil {
		return err
	}
	// finish prints the JSON document, whatever happened after planning:
	// a script learns what would have run and whether it did.
	ran := false
	finish := func(err error) error {
		if opts.json {
			if jerr := report.Write(env.IO.Out, report.NewDowngrade(d, ran)); jerr != nil && err == nil {
				err = jerr
			}
		}
		return err
	}
	plan := d.Plan
	if !opts.json {
		fmt.Fprintf(env.IO.Out, "Downgrading %s from %s to %s:\n%s\n", plan.Package, plan.From, plan.To, shellJoin(plan.Command))
	}
	if env.Geteuid != nil && env.Geteuid() != 0 {
		return finish(fmt.Errorf("downgrade %s: root privileges are needed to run %s", d.Patch, plan.Command[0]))
	}
	if !opts.nonInteractive {
		fmt.Fprint(env.IO.ErrOut, "Continue? [y/N] ")
		answer, err := readAnswer(env.IO.In)
		if err != nil && !errors.Is(err, io.EOF) {
			return finish(fmt.Errorf("downgrade %s: read answer: %w", d.Patch, err))
		}
		if !isYes(answer) {
			msg := "downgrade cancelled"
			if errors.Is(err, io.EOF) && answer == "" {
				// Nothing to read: cron, or stdin from /dev/null.
				fmt.Fprintln(env.IO.ErrOut)
				msg += " (no answer on standard input; use -n to downgrade without asking)"
			}
			return finish(&exitError{code: ExitError, msg: msg})
		}
	}

	// With --json, stdout is for the JSON document alone.
	out := env.IO.Out
	if opts.json {
		out = env.IO.ErrOut
	}
	ran = true
	notes, err := c.RunDowngrade(dg, d, env.IO.In, out, env.IO.ErrOut)
	printNotes(env, prog, notes)
	return finish(err)
}

func printNotes(env *Env, prog string, notes []string) {
	seen := map[string]bool{}
	for _, n := range notes {
		if !seen[n] {
			seen[n] = true
			fmt.Fprintf(env.IO.ErrOut, "%s: note: %s\n", prog, n)
		}
	}
}

// shellJoin formats a command so that it can be pasted into a shell.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=.,:/+@%^") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}
