package cli

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/admin"
)

func newUnloadCmd(opts *rootOptions) *cobra.Command {
	var wf waitFlags
	var all, yes bool
	cmd := &cobra.Command{
		Use:   "unload NAME|--all",
		Short: "Disable a patch, wait, and remove its module",
		Long: `Disable the patch, wait for the transition, wait for the module's reference
count to drop, and remove the module with delete_module(2). NAME may be
spelt with '-' or '_'. A module that an atomic replace left loaded is
simply removed. --all unloads every live patch module, newest first, in
passes (kernels before 5.1 let only the most recently enabled patch be
disabled). A patch whose transition was forced is explained rather than
retried: the kernel never releases its module.

On a SUSE kernel (one with SUSE's support facility: /sys/kernel/supported
or /proc/sys/kernel/unsupported exists) disabling a patch sets the kernel's
NO_SUPPORT taint (N): klp says so and asks for confirmation before it
disables anything; --yes skips the question, and without a terminal to ask
on klp refuses unless --yes is given. Removing a module that an atomic
replace left loaded disables nothing and asks nothing.`,
		ValidArgsFunction: patchNameCompletion(opts),
		Args: func(cmd *cobra.Command, args []string) error {
			if all != (len(args) == 0) || len(args) > 1 {
				return &usageError{errors.New("unload needs exactly one patch name, or --all")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			wopts, err := wf.options()
			if err != nil {
				return err
			}
			c, err := opts.changer("unload")
			if err != nil {
				return err
			}
			if err := confirmTaint(opts, c.PlanDisableTaint(args...), "unload", yes); err != nil {
				return err
			}
			ctx, stop := opts.interruptible()
			defer stop()
			if all {
				return opts.finishChange(c.UnloadAll(ctx, wopts))
			}
			return opts.finishChange(c.Unload(ctx, args[0], wopts))
		},
	}
	wf.register(cmd, admin.StallLeave)
	cmd.Flags().BoolVar(&all, "all", false, "unload every live patch module")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation on a SUSE kernel, where disabling taints the kernel")
	return cmd
}
