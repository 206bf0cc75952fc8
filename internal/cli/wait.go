package cli

import (
	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/admin"
)

func newWaitCmd(opts *rootOptions) *cobra.Command {
	var wf waitFlags
	cmd := &cobra.Command{
		Use:   "wait [NAME]",
		Short: "Wait for the transition in progress to complete",
		Long: `Wait until the patch in transition (or the named patch) completes its
transition, polling about every 10 ms. A named patch that is not loaded is
an error. With --on-stall=leave (the default) a timeout exits with status
3 and a report of the blocking tasks; --on-stall=rollback reverses the
transition, which, like every change, needs root and klp's lock and is
recorded in the audit log.`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: patchNameCompletion(opts),
		RunE: func(cmd *cobra.Command, args []string) error {
			wopts, err := wf.options()
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			c, err := opts.changer("wait")
			if err != nil {
				return err
			}
			ctx, stop := interruptible()
			defer stop()
			return opts.finishChange(c.Wait(ctx, name, wopts))
		},
	}
	wf.register(cmd, admin.StallLeave)
	return cmd
}
