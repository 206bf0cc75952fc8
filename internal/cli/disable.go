package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/admin"
)

func newDisableCmd(opts *rootOptions) *cobra.Command {
	var yes bool
	cmd := newSwitchCmd(opts, &cobra.Command{
		Use:   "disable NAME",
		Short: "Disable a patch (start unpatching) and wait",
		Long: `Write 0 to the patch's enabled attribute and wait until every task runs the
original code again. While the patch is still patching, this reverses the
transition. Since Linux 5.1 the kernel frees a disabled patch: its sysfs
directory disappears and the module can then be removed (klp unload). NAME
may be spelt with '-' or '_'.

On a SUSE kernel (one with SUSE's support facility: /sys/kernel/supported
or /proc/sys/kernel/unsupported exists) disabling a patch sets the kernel's
NO_SUPPORT taint (N): klp says so and asks for confirmation first; --yes
skips the question, and without a terminal to ask on klp refuses unless
--yes is given. Reversing a patch that is still patching does not taint.`,
	}, (*admin.Changer).Disable, func(c *admin.Changer, name string) error {
		return confirmTaint(opts, c.PlanDisableTaint(name), "disable", yes)
	})
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation on a SUSE kernel, where disabling taints the kernel")
	return cmd
}

// newSwitchCmd completes enable and disable, which differ only in the
// attribute value the use case writes (and disable's confirmation on a
// kernel where it taints): one patch name, the wait flags, the stall policy
// leave by default. confirm, when not nil, runs before the change and may
// refuse it.
func newSwitchCmd(opts *rootOptions, cmd *cobra.Command, run func(*admin.Changer, context.Context, string, admin.WaitOptions) (*admin.Outcome, error), confirm func(*admin.Changer, string) error) *cobra.Command {
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
		if confirm != nil {
			if err := confirm(c, args[0]); err != nil {
				return err
			}
		}
		ctx, stop := opts.interruptible()
		defer stop()
		return opts.finishChange(run(c, ctx, args[0], wopts))
	}
	wf.register(cmd, admin.StallLeave)
	return cmd
}
