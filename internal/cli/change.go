package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/preflight"
	"github.com/klp-project/klp/internal/report"
)

// waitFlags are the options of every command that waits for a transition.
type waitFlags struct {
	timeout     time.Duration
	onStall     string
	signalAfter time.Duration
}

func (w *waitFlags) register(cmd *cobra.Command, defaultPolicy admin.StallPolicy) {
	w.onStall = string(defaultPolicy)
	f := cmd.Flags()
	f.DurationVar(&w.timeout, "timeout", 60*time.Second, "how long to wait for the transition (0: no limit)")
	f.StringVar(&w.onStall, "on-stall", w.onStall, "when the transition times out: `wait|rollback|leave`")
	f.DurationVar(&w.signalAfter, "signal-after", 15*time.Second, "on kernels with a signal attribute (4.15-5.0), signal blocking tasks after this long (0: never)")
	_ = cmd.RegisterFlagCompletionFunc("on-stall", cobra.FixedCompletions([]string{"wait", "rollback", "leave"}, cobra.ShellCompDirectiveNoFileComp))
}

func (w *waitFlags) options() (admin.WaitOptions, error) {
	policy, err := admin.ParseStallPolicy(w.onStall)
	if err != nil {
		return admin.WaitOptions{}, &usageError{err}
	}
	if w.timeout < 0 {
		return admin.WaitOptions{}, &usageError{fmt.Errorf("invalid --timeout %s: must not be negative", w.timeout)}
	}
	return admin.WaitOptions{Timeout: w.timeout, OnStall: policy, SignalAfter: w.signalAfter}, nil
}

// interruptible returns a context that Ctrl-C and SIGTERM cancel, so that
// a change can say where it left things: Env.Interruptible's, or without
// one a signal.NotifyContext, whose end gives the signals back.
func (o *rootOptions) interruptible() (context.Context, context.CancelFunc) {
	if o.env.Interruptible != nil {
		return o.env.Interruptible()
	}
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// processSignals is cancelled by the first Ctrl-C or SIGTERM klp's process
// receives; it is never stopped.
var processSignals = sync.OnceValue(func() context.Context {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	_ = stop // the process ends with its command
	return ctx
})

// processInterruptible is Env.Interruptible in klp's own process, which
// ends with its command: the signals stay with klp when a command ends.
// Giving them back (signal.Stop) hands each signal to the thread that
// holds Go's signal mask and back, which on one slow CPU cost klp wait's
// return a millisecond or two of thread switches and a new thread after
// the outcome was written (docs/performance.md). A signal after the command
// ended cancels nothing, and the process ends anyway.
func processInterruptible() (context.Context, context.CancelFunc) {
	return context.WithCancel(processSignals())
}

// finishChange prints the outcome of a change (one JSON document with
// --json, whatever happened) and turns its error into the exit status.
func (o *rootOptions) finishChange(out *admin.Outcome, err error) error {
	if o.env.ErrTTY && !o.json {
		fmt.Fprint(o.env.IO.ErrOut, "\r\033[K") // the progress line
	}
	o.printOutcome(out)
	if err != nil {
		return &exitError{code: ExitCode(admin.ExitCode(err)), msg: err.Error()}
	}
	return nil
}

func (o *rootOptions) printOutcome(out *admin.Outcome) {
	w, errOut := o.env.IO.Out, o.env.IO.ErrOut
	if o.json {
		_ = report.Write(w, report.NewOutcome(out))
		return
	}
	if o.verbose > 0 {
		for _, c := range out.Preflight {
			if c.Status == preflight.Warn || c.Status == preflight.Skip {
				fmt.Fprintf(errOut, "%s: preflight: %s  %s: %s\n", o.prog, statusLabels[c.Status], c.Title, printable(c.Reason))
			}
		}
	}
	if out.Result == admin.ResultRefused {
		for _, c := range out.Preflight {
			if c.Status == preflight.Fail {
				fmt.Fprintf(errOut, "%s: preflight: FAIL  %s: %s\n", o.prog, c.Title, printable(c.Reason))
				fmt.Fprintf(errOut, "%s: preflight:   fix: %s\n", o.prog, printable(c.Fix))
			}
		}
	}
	if out.All {
		o.printAll(out)
		return
	}
	if out.Stall != nil {
		printStall(w, out.Stall)
	}
	if out.Err != nil {
		// The error itself goes to stderr; the kernel's explanation
		// helps most with a refused load.
		for _, l := range out.KernelLog {
			fmt.Fprintf(errOut, "%s: kernel: %s\n", o.prog, printable(l))
		}
		return
	}
	switch out.Result {
	case admin.ResultAlreadyLoaded, admin.ResultReady:
		return // said already, or nothing to say
	}
	what := out.Patch
	if what == "" {
		what = out.File
	}
	fmt.Fprintf(w, "%s: %s (%s)\n", what, out.Result, out.Elapsed.Round(time.Millisecond))
}

// printAll prints the outcome of load --all or unload --all: a line per
// patch.
func (o *rootOptions) printAll(out *admin.Outcome) {
	w := o.env.IO.Out
	if out.Result == admin.ResultDisabled {
		for _, n := range out.Notes {
			fmt.Fprintf(w, "not loading patches: %s\n", n)
		}
		return
	}
	for _, s := range out.Outcomes {
		switch {
		case s.Result == admin.ResultSkipped:
			fmt.Fprintf(w, "%s: skipped: %v\n", s.Patch, s.Err)
		case s.Err != nil && s.Result != admin.ResultFailed:
			fmt.Fprintf(w, "%s: %s (%s)\n", s.Patch, s.Result, s.Elapsed.Round(time.Millisecond))
			fmt.Fprintf(w, "%s: FAILED: %v\n", s.Patch, s.Err)
		case s.Err != nil:
			fmt.Fprintf(w, "%s: FAILED: %v\n", s.Patch, s.Err)
		default:
			fmt.Fprintf(w, "%s: %s (%s)\n", s.Patch, s.Result, s.Elapsed.Round(time.Millisecond))
		}
	}
	if out.Result == admin.ResultNone {
		fmt.Fprintf(w, "no patches installed for %s\n", out.Release)
	}
}
