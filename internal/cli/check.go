package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/report"
)

func newCheckCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Indicate the overall kernel live patching status with exit code",
		Long: `Indicate the overall kernel live patching status with the exit code, for
scripts: 0 when the system is ready, 1 when patching is in progress (and 1
with a message on stderr when the state cannot be read). It prints nothing
unless -v or --json is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := opts.status()
			if err != nil {
				return err
			}
			switch {
			case opts.json:
				if err := report.Write(opts.env.IO.Out, report.NewStatus(st)); err != nil {
					return err
				}
			case opts.verbose > 0:
				fmt.Fprintln(opts.env.IO.Out, st.Word())
				printStatusVerbose(opts.env.IO.Out, st)
			}
			if st.InProgress {
				return &exitError{code: ExitError}
			}
			return nil
		},
	}
}
