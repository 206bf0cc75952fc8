package cli

import (
	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/admin"
)

func newDisableCmd(opts *rootOptions) *cobra.Command {
	var wf waitFlags
	var yes bool
	cmd := &cobra.Command{
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
			if err := confirmTaint(opts, c.PlanDisableTaint(args[0]), "disable", yes); err != nil {
				return err
			}
			ctx, stop := interruptible()
			defer stop()
			return opts.finishChange(c.Disable(ctx, args[0], wopts))
		},
	}
	wf.register(cmd, admin.StallLeave)
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation on a SUSE kernel, where disabling taints the kernel")
	return cmd
}
