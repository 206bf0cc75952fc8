package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/report"
	"github.com/klp-project/klp/livepatch"
)

func newBlockingCmd(opts *rootOptions, name string, mode admin.BlockingMode) *cobra.Command {
	short := "List process threads that are preventing live patching from finishing"
	long := `List the threads that are preventing live patching from finishing: those whose
/proc/<pid>/task/<tid>/patch_state has not reached the target state of the
patch in transition. By default just the thread ids are listed; -v adds each
process's command line ([comm] for kernel threads), a second -v adds kernel
stack traces (which need root).

Tasks whose state cannot be read (other users' tasks, when not root) are
reported on stderr and make the exit status 1, because the list is then
incomplete.`
	if opts.prog == "kgr" {
		long += `

On SLE 12 kernels with the kGraft interface, blocking lists the processes
whose /proc/<pid>/kgr_in_progress is set, and blocking_threads lists the
PID and TID of each such thread. Elsewhere both list threads, as klp does.`
	}
	if name == "blocking_threads" {
		short = "Obsolete command. Same as kgr blocking, listing PID and TID"
	}
	var why bool
	cmd := &cobra.Command{
		Use:   name,
		Short: short,
		Long:  long,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if why {
				return whyRun(opts)
			}
			return blockingRun(opts, mode)
		},
	}
	if opts.prog == "klp" {
		cmd.Long += `

With --why, klp explains the stall instead: for each blocking task, whether
it is a user or kernel thread, its state, its stack with the frames that
run code the transition changes (a patched function, or a live patch
module's code), the cause with its evidence, and what can be done about it.
The causes: a BPF trampoline on the stack (an fexit, fmod_ret or LSM program
on a function the task sleeps in: the kernel cannot unwind through it before
the unwinder fix of December 2025, about Linux 6.19); a stack the kernel
logged as unreliable; a user task the kernel has already signalled in vain
(it signals every 15 seconds: the task does not return to user space); code
the transition changes on the stack; a kernel thread that runs without
sleeping (whether cond_resched() switches it depends on the kernel version
alone: Linux 6.4 to 6.15 do, earlier and 6.16+ do not, and the report says
so); a kernel thread; uninterruptible sleep; init; a user task.

The kernel's own reasons come from its log (/dev/kmsg), where it writes
them only with dynamic debug on: echo 'func klp_try_switch_task +p' >
/sys/kernel/debug/dynamic_debug/control. The report says when they are
off. --why needs root for the stacks, the log and the BPF programs.`
		cmd.Flags().BoolVar(&why, "why", false, "explain why each task blocks (patched functions on its stack, advice)")
	}
	return cmd
}

func blockingRun(opts *rootOptions, mode admin.BlockingMode) error {
	sys, err := opts.system()
	if err != nil {
		return err
	}
	r, err := sys.Blocking(admin.BlockingOptions{Mode: mode, Stacks: opts.verbose >= 2})
	if err != nil {
		return err
	}
	out := opts.env.IO.Out
	if opts.json {
		if err := report.Write(out, report.NewBlocking(r)); err != nil {
			return err
		}
	} else {
		printBlocking(out, r, opts.verbose)
	}
	if err := r.Incomplete(); err != nil {
		return &exitError{code: ExitError, msg: err.Error()}
	}
	return nil
}

func printBlocking(w io.Writer, r *admin.BlockingReport, verbose int) {
	if len(r.Tasks) == 0 {
		// With tasks left unread, "no threads" would be a false claim: the
		// unreadable ones may block (stderr says so, and the exit is 1).
		if verbose > 0 && r.Complete() {
			switch r.Mode {
			case admin.KGraftProcesses:
				fmt.Fprintln(w, "no processes with kgr_in_progress set")
			case admin.KGraftThreads:
				fmt.Fprintln(w, "no threads with kgr_in_progress set")
			default:
				fmt.Fprintln(w, "no threads with klp_in_progress set")
			}
		}
		return
	}
	for _, t := range r.Tasks {
		var id string
		switch r.Mode {
		case admin.KGraftProcesses:
			id = strconv.Itoa(t.PID)
		case admin.KGraftThreads:
			id = strconv.Itoa(t.PID) + " " + strconv.Itoa(t.TID)
		default:
			id = strconv.Itoa(t.TID)
		}
		if verbose == 0 {
			fmt.Fprintln(w, id)
			continue
		}
		fmt.Fprintf(w, "%s %s\n", id, printable(t.Cmdline))
		if verbose < 2 {
			continue
		}
		switch err := t.StackErr; {
		case err == nil && len(t.Stack) == 0:
			fmt.Fprintln(w, "    (empty stack)")
		case err == nil:
			for _, f := range t.Stack {
				fmt.Fprintf(w, "    %s\n", printable(f))
			}
		case errors.Is(err, livepatch.ErrStackUnavailable):
			fmt.Fprintln(w, "    (stack traces not available on this kernel)")
		case errors.Is(err, os.ErrPermission):
			fmt.Fprintln(w, "    (stack not readable: permission denied)")
		default:
			fmt.Fprintf(w, "    (stack not readable: %v)\n", err)
		}
	}
}

// whyRun is blocking --why: the stall report of the transition in progress.
func whyRun(opts *rootOptions) error {
	sys, err := opts.system()
	if err != nil {
		return err
	}
	r, err := sys.Blocking(admin.BlockingOptions{Explain: true})
	if err != nil {
		return err
	}
	if opts.json {
		if err := report.Write(opts.env.IO.Out, report.NewWhy(r)); err != nil {
			return err
		}
		if err := r.Incomplete(); err != nil && r.Transition != nil {
			return &exitError{code: ExitError, msg: err.Error()}
		}
		return nil
	}
	if r.Transition == nil {
		fmt.Fprintln(opts.env.IO.Out, "no transition in progress")
		return nil
	}
	printStall(opts.env.IO.Out, r)
	if err := r.Incomplete(); err != nil {
		// As blocking: an explanation that could not read every task
		// is not the whole story.
		return &exitError{code: ExitError, msg: err.Error()}
	}
	return nil
}
