package cli

import (
	"github.com/spf13/cobra"
)

func newSignalCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "signal",
		Short: "Signal the tasks that block the transition (kernels 4.15 to 5.0)",
		Long: `Write 1 to the signal attribute of the patch in transition, which sends a
fake signal to every task that has not switched yet. Only kernels 4.15 to
5.0 have the attribute; later kernels do this by themselves every 15
seconds, which klp says instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := opts.changer("signal")
			if err != nil {
				return err
			}
			ctx, stop := opts.interruptible()
			defer stop()
			return opts.finishChange(c.Signal(ctx))
		},
	}
}
