package cli

import (
	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/admin"
)

func newDisableCmd(opts *rootOptions) *cobra.Command {
	var wf waitFlags
	cmd := &cobra.Command{
		Use:   "disable NAME",
		Short: "Disable a patch (start unpatching) and wait",
		Long: `Write 0 to the patch's enabled attribute and wait until every task runs the
original code again. While the patch is still patching, this reverses the
transition. Since Linux 5.1 the kernel frees a disabled patch: its sysfs
directory disappears and the module can then be removed (klp unload). NAME
may be spelt with '-' or '_'.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: patchNameCompletion(opts),
		RunE: func(cmd *cobra.Command, args []string) error {
			wopts, err := wf.options()
			if err != nil {
				return err
			}
			c, err := opts.changer("disable")
			if err != nil {
				return err
			}
			ctx, stop := interruptible()
			defer stop()
			return opts.finishChange(c.Disable(ctx, args[0], wopts))
		},
	}
	wf.register(cmd, admin.StallLeave)
	return cmd
}
