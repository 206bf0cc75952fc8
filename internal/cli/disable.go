package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/admin"
)

func newDisableCmd(opts *rootOptions) *cobra.Command {
	return newSwitchCmd(opts, &cobra.Command{
		Use:   "disable NAME",
		Short: "Disable a patch (start unpatching) and wait",
		Long: `Write 0 to the patch's enabled attribute and wait until every task runs the
original code again. While the patch is still patching, this reverses the
transition. Since Linux 5.1 the kernel frees a disabled patch: its sysfs
directory disappears and the module can then be removed (klp unload). NAME
may be spelt with '-' or '_'.`,
	}, (*admin.Changer).Disable)
}

// newSwitchCmd completes enable and disable, which differ only in the
// attribute value the use case writes: one patch name, the wait flags, the
// stall policy leave by default.
func newSwitchCmd(opts *rootOptions, cmd *cobra.Command, run func(*admin.Changer, context.Context, string, admin.WaitOptions) (*admin.Outcome, error)) *cobra.Command {
	var wf waitFlags
	cmd.Args = cobra.ExactArgs(1)
	cmd.ValidArgsFunction = patchNameCompletion(opts)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		wopts, err := wf.options()
		if err != nil {
			return err
		}
		c, err := opts.changer(cmd.Name())
		if err != nil {
			return err
		}
		ctx, stop := interruptible()
		defer stop()
		return opts.finishChange(run(c, ctx, args[0], wopts))
	}
	wf.register(cmd, admin.StallLeave)
	return cmd
}
