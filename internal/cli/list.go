package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

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
it. When several patches change one function, the one with the highest
stack_order runs; kernels before 6.14 do not say which, and neither does
klp then.`,
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
	l, err := sys.List(opts.env.Store)
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
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", p.Name, p.State, optBool(p.Replace), optInt(p.StackOrder))
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
		for _, f := range l.Functions {
			by := "(undetermined: no stack_order on this kernel)"
			if f.ProvidedBy != "" {
				by = f.ProvidedBy
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", printable(f.Object), printable(livepatch.Function{Name: f.Function, Sympos: f.Sympos}.DirName()), by, strings.Join(f.Patches, " "))
		}
	}
	return w.Flush()
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
