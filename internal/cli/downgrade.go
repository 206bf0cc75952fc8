package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klp-project/klp/livepatch"
	"github.com/spf13/cobra"
)

// Downgrader is what downgrade needs from the package manager. The
// PackageSource of a real system implements it; tests use a fake.
type Downgrader interface {
	// PlanDowngrade finds the package that owns the loaded module and the
	// newest version of it older than the installed one, and builds the
	// command that installs it. nonInteractive makes the command ask no
	// questions.
	PlanDowngrade(module string, nonInteractive bool) (*DowngradePlan, []string, error)
	// RunDowngrade runs the plan's command with the given streams. Notes
	// report informational exit statuses that still mean success.
	RunDowngrade(plan *DowngradePlan, stdin io.Reader, stdout, stderr io.Writer) ([]string, error)
}

// DowngradePlan is a downgrade about to be done.
type DowngradePlan struct {
	// Manager is "rpm" or "dpkg".
	Manager string
	// Package is the package name.
	Package string
	// From is the installed version (VERSION-RELEASE for rpm), To the
	// older version to install.
	From, To string
	// Command is the program and its arguments.
	Command []string
}

type jsonDowngrade struct {
	SchemaVersion int      `json:"schema_version"`
	Patch         string   `json:"patch"`
	Manager       string   `json:"manager"`
	Package       string   `json:"package"`
	From          string   `json:"from"`
	To            string   `json:"to"`
	Command       []string `json:"command"`
	Ran           bool     `json:"ran"`
}

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
	fs, err := opts.fs()
	if err != nil {
		return err
	}
	patch, err := activePatch(fs)
	if err != nil {
		return err
	}
	dg, ok := opts.packages().(Downgrader)
	if !ok {
		return errors.New("downgrade: no package manager support in this build")
	}

	plan, notes, err := dg.PlanDowngrade(patch, opts.nonInteractive)
	printNotes(env, prog, notes)
	if err != nil {
		return fmt.Errorf("downgrade %s: %w", patch, err)
	}
	doc := jsonDowngrade{
		SchemaVersion: SchemaVersion, Patch: patch, Manager: plan.Manager, Package: plan.Package,
		From: plan.From, To: plan.To, Command: plan.Command,
	}
	// finish prints the JSON document, whatever happened after planning:
	// a script learns what would have run and whether it did.
	finish := func(err error) error {
		if opts.json {
			if jerr := writeJSON(env.IO.Out, doc); jerr != nil && err == nil {
				err = jerr
			}
		}
		return err
	}

	if !opts.json {
		fmt.Fprintf(env.IO.Out, "Downgrading %s from %s to %s:\n%s\n", plan.Package, plan.From, plan.To, shellJoin(plan.Command))
	}
	if env.Geteuid != nil && env.Geteuid() != 0 {
		return finish(fmt.Errorf("downgrade %s: root privileges are needed to run %s", patch, plan.Command[0]))
	}
	if !opts.nonInteractive {
		fmt.Fprint(env.IO.ErrOut, "Continue? [y/N] ")
		answer, err := readAnswer(env.IO.In)
		if err != nil && !errors.Is(err, io.EOF) {
			return finish(fmt.Errorf("downgrade %s: read answer: %w", patch, err))
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
	doc.Ran = true
	notes, err = dg.RunDowngrade(plan, env.IO.In, out, env.IO.ErrOut)
	printNotes(env, prog, notes)
	if err != nil {
		return finish(fmt.Errorf("downgrade %s: %w", patch, err))
	}
	return finish(nil)
}

// activePatch returns the name of the patch a downgrade replaces: the
// enabled patch. Several are enabled when patches were stacked without
// atomic replace; then the topmost wins: the highest stack_order (Linux
// 6.14+), or else the last by name, the best guess left.
//
// While a transition is in progress the kernel refuses to enable another
// patch (klp_enable_patch fails with EBUSY), so the package's scripts
// would fail after the package was already swapped; downgrade refuses
// early instead. (This is also why "the one in transition" never needs to
// be chosen among several enabled patches.)
func activePatch(fs livepatch.FS) (string, error) {
	switch fs.Interface() {
	case livepatch.InterfaceKGraft:
		inProgress, err := fs.KGraftInProgress()
		if err != nil {
			return "", err
		}
		if inProgress {
			return "", errors.New("downgrade: a kGraft patch transition is in progress; try again when 'klp status' says ready")
		}
		patches, err := fs.KGraftPatches()
		if err != nil {
			return "", err
		}
		name := ""
		for _, p := range patches {
			if p.Active {
				name = p.Name
			}
		}
		if name == "" {
			return "", errors.New("downgrade: no live patch is loaded")
		}
		return name, nil
	}

	patches, err := fs.Patches()
	if err != nil {
		return "", fmt.Errorf("downgrade: %w", err)
	}
	if tr := livepatch.TransitionOf(patches); tr != nil {
		return "", fmt.Errorf("downgrade: %s is in transition (%s); try again when 'klp status' says ready", tr.Patch, tr.Direction())
	}
	var enabled []livepatch.Patch
	for _, p := range patches {
		if p.Enabled {
			enabled = append(enabled, p)
		}
	}
	switch len(enabled) {
	case 0:
		if len(patches) > 0 {
			return "", errors.New("downgrade: no live patch is enabled")
		}
		return "", errors.New("downgrade: no live patch is loaded")
	case 1:
		return enabled[0].Name, nil
	}
	best := enabled[len(enabled)-1] // last by name: Patches() sorts by name
	allOrdered := true
	for _, p := range enabled {
		if p.StackOrder == nil {
			allOrdered = false
		}
	}
	if allOrdered {
		for _, p := range enabled {
			if *p.StackOrder > *best.StackOrder {
				best = p
			}
		}
	}
	return best.Name, nil
}

// readAnswer reads one line, one byte at a time: a buffered read would
// swallow input meant for the command run next (zypper asks its own
// question when -n is not given).
func readAnswer(r io.Reader) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	// Bounded, so that a reader returning (0, nil) cannot spin forever.
	for range 4096 {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return strings.TrimSpace(b.String()), nil
			}
			if b.Len() < 1024 {
				b.WriteByte(buf[0])
			}
		}
		if err != nil {
			return strings.TrimSpace(b.String()), err
		}
	}
	return strings.TrimSpace(b.String()), nil
}

func isYes(s string) bool {
	s = strings.ToLower(s)
	return s == "y" || s == "yes"
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
