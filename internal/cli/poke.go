package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/report"
)

func newPokeCmd(opts *rootOptions) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "poke",
		Short: "Obsolete command. Send STOP and CONT signals to processes that are blocking live patching",
		Long: `Send SIGSTOP and then SIGCONT to the processes whose threads block the
transition in progress. A stopped process leaves the kernel, which lets its
threads switch to the new code at once.

Some processes are never poked, and poke says which and why: kernel threads
(signals do not move them), tasks in uninterruptible sleep (state D; a
signal does not wake them), processes already stopped (state T: SIGCONT
would resume what an administrator stopped), PID 1, poke itself, its
ancestors (the shell that ran sudo) and its process group (stopping them
would interfere with the shell's job control). Linux 5.1 and later signal
blocking tasks by themselves about every 15 seconds, which is why this
command is obsolete.

The whole list is decided, and printed with -v, before the first signal.
--dry-run prints it and signals nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return pokeRun(opts, dryRun)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say which processes would be poked, and signal none")
	return cmd
}

func pokeRun(opts *rootOptions, dryRun bool) error {
	c, err := opts.changer("poke")
	if err != nil {
		return err
	}
	plan, err := c.PlanPoke()
	if err != nil {
		return err
	}
	out := opts.env.IO.Out
	if !opts.json {
		// The plan, whole, before the first signal.
		for _, t := range plan.Targets {
			switch {
			case t.Skip != "":
				fmt.Fprintf(out, "skipped %d (%s): %s\n", t.PID, printable(t.Comm), t.Skip)
			case dryRun:
				fmt.Fprintf(out, "would poke %d (%s)\n", t.PID, printable(t.Comm))
			case opts.verbose > 0:
				fmt.Fprintf(out, "poking %d (%s)\n", t.PID, printable(t.Comm))
			}
		}
	}
	var pokeErr error
	if !dryRun {
		ctx, stop := opts.interruptible()
		defer stop()
		pokeErr = c.Poke(ctx, plan)
	}
	if opts.json {
		if err := report.Write(out, report.NewPoke(plan, dryRun)); err != nil {
			return err
		}
	}
	if pokeErr != nil {
		return &exitError{code: ExitError, msg: pokeErr.Error()}
	}
	if err := plan.Blocking.Incomplete(); err != nil {
		return &exitError{code: ExitError, msg: err.Error()}
	}
	return nil
}
