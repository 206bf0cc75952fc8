package cli

import (
	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/admin"
)

func newEnableCmd(opts *rootOptions) *cobra.Command {
	var wf waitFlags
	cmd := &cobra.Command{
		Use:   "enable NAME",
		Short: "Re-enable a disabled patch, or reverse an unpatching transition",
		Long: `Write 1 to the patch's enabled attribute and wait. Only kernels before 5.1
keep a disabled patch registered, so only they can re-enable it; on any
kernel, enable reverses a patch that is still unpatching. NAME may be spelt
with '-' or '_'.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: patchNameCompletion(opts),
		RunE: func(cmd *cobra.Command, args []string) error {
			wopts, err := wf.options()
			if err != nil {
				return err
			}
			c, err := opts.changer("enable")
			if err != nil {
				return err
			}
			ctx, stop := interruptible()
			defer stop()
			return opts.finishChange(c.Enable(ctx, args[0], wopts))
		},
	}
	wf.register(cmd, admin.StallLeave)
	return cmd
}
