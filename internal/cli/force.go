package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/admin"
)

func newForceCmd(opts *rootOptions) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "force NAME",
		Short: "Force the transition of a patch to complete (dangerous)",
		Long: `Write 1 to the patch's force attribute: every task that has not switched is
marked switched without the stack check. This breaks the consistency model
the kernel otherwise guarantees: a task may run old and new code together.
The kernel then never releases a forced module (it cannot prove that no
task still runs its code), so it cannot be removed until reboot: since
Linux 5.19 that is the module being disabled, or the patches a cumulative
patch replaces; before, every loaded patch module. No file of the kernel
shows which of the two rules it follows, so klp decides by the kernel's
version and says so. Use it only with the patch vendor's agreement. klp
explains this and asks for confirmation, unless --yes is given.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: patchNameCompletion(opts),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := opts.changer("force")
			if err != nil {
				return err
			}
			plan, err := c.PlanForce(args[0])
			if err != nil {
				return &exitError{code: ExitCode(admin.ExitCode(err)), msg: err.Error()}
			}
			w := opts.env.IO.ErrOut
			fmt.Fprintf(w, "Forcing %s marks every task that still blocks it as %s without checking its stack.\n", plan.Patch, plan.Direction)
			fmt.Fprintf(w, "A task sleeping in a changed function may then mix old and new code. %s\n", plan.Consequence)
			if !yes {
				if !opts.env.IO.InTTY {
					return &exitError{code: ExitError, msg: "refusing to force without confirmation: run on a terminal, or add --yes"}
				}
				if !confirm(opts.env.IO.In, w, "Force the transition? [y/N] ") {
					return &exitError{code: ExitError, msg: "not forced"}
				}
			}
			ctx, stop := opts.interruptible()
			defer stop()
			return opts.finishChange(c.Force(ctx, plan))
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}
