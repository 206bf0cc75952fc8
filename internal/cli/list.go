package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/klp-project/klp/ftrace"
	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/report"
	"github.com/klp-project/klp/livepatch"
)

func newListCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List loaded and installed patches, and the patched functions",
		Long: `List the loaded patches with their state (enabled, disabled, patching,
unpatching; superseded: a module an atomic replace left loaded; pinned: a
module that a force keeps loaded until reboot), the
patches installed for each kernel (klp's /var/lib/klp and kpatch's
/var/lib/kpatch), and every patched function with the patch that provides
it. When several patches change one function, the newest runs: the kernel
says which with stack_order (6.14 and later); elsewhere klp infers it from
the order in which the patch modules were loaded (/proc/modules lists the
newest first) and says so: "(inferred from load order)". While that patch
is in transition ("patching", "unpatching") tasks not yet switched still
run the code of before; "(none: its patches are disabled)" when no patch
that changes it is active (kernels before 5.1 keep disabled patches).

REPLACE is yes or no (the replace attribute, 6.11 and later), "set N" on a
kernel with replace sets (the proposed replace_set attribute: patches of one
set replace each other, patches of different sets may not change the same
function), and "-" when the kernel does not say.

Last, the other users of the patched functions' entries: BPF programs
(listed with the bpf(2) system call), kprobes and direct calls
(enabled_functions). A BPF fmod_ret or LSM program, or a kprobe program that
calls bpf_override_return(), overrides the patch: callers get the program's
value and the patched code does not run, and the kernel says nothing. This
needs root on the running kernel.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return listRun(opts)
		},
	}
}

func listRun(opts *rootOptions) error {
	sys, err := opts.system()
	if err != nil {
		return err
	}
	l, err := sys.List(opts.installed())
	if err != nil {
		return err
	}
	if opts.json {
		return report.Write(opts.env.IO.Out, report.NewList(l))
	}
	w := tabwriter.NewWriter(opts.env.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "Loaded patches:")
	if len(l.Loaded) == 0 {
		fmt.Fprintln(w, "  (none)")
	} else {
		fmt.Fprintln(w, "  NAME\tSTATE\tREPLACE\tSTACK ORDER")
		for _, p := range l.Loaded {
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", p.Name, p.State, replaceText(p.Replace, p.ReplaceSet), optInt(p.StackOrder))
		}
	}
	fmt.Fprintln(w, "\nInstalled patches:")
	if len(l.Installed) == 0 {
		fmt.Fprintln(w, "  (none)")
	} else {
		fmt.Fprintln(w, "  NAME\tKERNEL\tSOURCE\tFILE")
		for _, in := range l.Installed {
			kernel := in.Release
			if in.Release == l.Release {
				kernel += " (running)"
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", in.Name, kernel, in.Source, printable(in.Path))
		}
	}
	fmt.Fprintln(w, "\nPatched functions:")
	if len(l.Functions) == 0 {
		fmt.Fprintln(w, "  (none)")
	} else {
		fmt.Fprintln(w, "  OBJECT\tFUNCTION\tPROVIDED BY\tPATCHES")
		states := map[string]admin.PatchState{}
		for _, p := range l.Loaded {
			states[p.Name] = p.State
		}
		for _, f := range l.Functions {
			by := providedByText(f, states[f.ProvidedBy])
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", printable(f.Object), printable(livepatch.Function{Name: f.Function, Sympos: f.Sympos}.DirName()), by, strings.Join(f.Patches, " "))
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	printOtherUsers(opts.env.IO.Out, l)
	return nil
}

// printOtherUsers prints who else uses the patched functions' entries,
// most harmful first: a BPF fmod_ret program makes callers get its value,
// not the patch's, and the kernel says nothing.
func printOtherUsers(w io.Writer, l *admin.List) {
	if len(l.Functions) == 0 {
		return
	}
	if l.OtherUsersErr != nil {
		fmt.Fprintf(w, "\nOther users of the patched functions: not checked (%s)\n", printable(l.OtherUsersErr.Error()))
		return
	}
	if len(l.OtherUsers) == 0 {
		return
	}
	fmt.Fprintln(w, "\nOther users of the patched functions:")
	for _, fu := range l.OtherUsers {
		for _, u := range fu.Users {
			fmt.Fprintf(w, "  %s %s: %s: %s\n", printable(fu.Object), printable(fu.Function), printable(u.String()), effectText(u.Effect))
		}
	}
}

// effectText says what another user of a function does to its patch.
func effectText(e ftrace.Effect) string {
	switch e {
	case ftrace.Overrides:
		return "OVERRIDES THE PATCH: callers get its value, the patched code does not run, and the kernel says nothing"
	case ftrace.MayOverride:
		return "may override the patch: an fmod_ret or LSM program there would (list the programs as root: bpftool link)"
	case ftrace.Blocks:
		return "changes the instruction pointer: the kernel refuses a patch of this function (EBUSY)"
	}
	return "observes the calls; the patched code runs"
}

// providedByText says which patch provides a function, that it is inferred
// when klp inferred it, and that the patch is in transition (tasks not yet
// switched run the code of before).
func providedByText(f admin.ProvidedFunction, state admin.PatchState) string {
	if f.Basis == admin.OwnerNoneActive {
		return "(none: its patches are disabled)"
	}
	if f.ProvidedBy == "" {
		return "(undetermined: neither stack_order nor the load order tells)"
	}
	var notes []string
	if f.Basis == admin.OwnerLoadOrder {
		notes = append(notes, "inferred from load order")
	}
	if state == admin.StatePatching || state == admin.StateUnpatching {
		notes = append(notes, string(state))
	}
	if len(notes) == 0 {
		return f.ProvidedBy
	}
	return f.ProvidedBy + " (" + strings.Join(notes, "; ") + ")"
}

// replaceText is the REPLACE column: the replace set where the kernel has
// them, else the replace attribute.
func replaceText(replace *bool, set *uint32) string {
	if set != nil {
		return fmt.Sprintf("set %d", *set)
	}
	return optBool(replace)
}

func optBool(b *bool) string {
	if b == nil {
		return "-"
	}
	if *b {
		return "yes"
	}
	return "no"
}

func optInt(n *int) string {
	if n == nil {
		return "-"
	}
	return fmt.Sprint(*n)
}
