package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/report"
)

func newPokeCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
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
command is obsolete.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return pokeRun(opts)
		},
	}
}

func pokeRun(opts *rootOptions) error {
	c, err := opts.changer("poke")
	if err != nil {
		return err
	}
	plan, err := c.PlanPoke()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pokeErr := c.Poke(ctx, plan)
	doc := report.NewPoke(plan)
	out := opts.env.IO.Out
	if opts.json {
		if err := report.Write(out, doc); err != nil {
			return err
		}
	} else {
		for _, s := range doc.Skipped {
			fmt.Fprintf(out, "skipped %d (%s): %s\n", s.PID, s.Comm, s.Reason)
		}
		if opts.verbose > 0 {
			for _, p := range doc.Poked {
				fmt.Fprintf(out, "poked %d (%s)\n", p.PID, p.Comm)
			}
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
