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
transition. A named patch that is not loaded is an error. With
--on-stall=leave (the default) a timeout exits with status 3 and a report
of the blocking tasks; --on-stall=rollback reverses a stalled load (disables
the patch and removes its module), which, like every change, needs root and
klp's lock and is recorded in the audit log. A stalled unpatching is not
rolled back: klp says so, changes nothing and exits with status 3.

Every command that waits for a transition (load, unload, disable, enable,
wait) sleeps on the kernel log (/dev/kmsg), where the kernel announces the
end of every transition, and reads the patch's transition attribute when a
live patching record arrives, and as a safety net after 1 s, then ever less
often, up to every 4 s: the end is noticed within milliseconds, at almost no
cost, however many tasks there are. Where the log
cannot be read (without CAP_SYSLOG when kernel.dmesg_restrict is 1), it reads
the attribute instead, up to ten times a second. On a terminal a progress
line shows the time waited and the tasks left: every task is counted once in
the background within a fiftieth of a CPU, then at most every 5 seconds only
those still blocking. -v says how the end was noticed.`,
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
			ctx, stop := opts.interruptible()
			defer stop()
			return opts.finishChange(c.Wait(ctx, name, wopts))
		},
	}
	wf.register(cmd, admin.StallLeave)
	return cmd
}
