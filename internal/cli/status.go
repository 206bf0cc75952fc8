package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/report"
	"github.com/klp-project/klp/livepatch"
)

func newStatusCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Display the overall status of kernel live patching (ready or in_progress)",
		Long: `Display the overall status of kernel live patching: "ready" when no patch is
in transition, "in_progress" while one is. A kernel without live patching
support is "ready"; with -v, klp says that it is not supported.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := opts.status()
			if err != nil {
				return err
			}
			if opts.json {
				return report.Write(opts.env.IO.Out, report.NewStatus(st))
			}
			fmt.Fprintln(opts.env.IO.Out, st.Word())
			if opts.verbose > 0 {
				printStatusVerbose(opts.env.IO.Out, st)
			}
			return nil
		},
	}
}

// status reads the status through the configured roots.
func (o *rootOptions) status() (admin.Status, error) {
	sys, err := o.system()
	if err != nil {
		return admin.Status{}, err
	}
	return sys.Status()
}

func printStatusVerbose(out io.Writer, st admin.Status) {
	switch {
	case st.Interface == livepatch.InterfaceNone:
		fmt.Fprintf(out, "kernel live patching is not supported: %s does not exist\n", st.Path)
	case st.Transition != nil && st.Transition.Patch != "":
		fmt.Fprintf(out, "patch %s is %s\n", st.Transition.Patch, st.Transition.Direction())
	case st.InProgress:
		fmt.Fprintln(out, "a kGraft patch is being applied")
	}
}
