package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/livepatch"
)

// printStall prints the stall report: every blocking task with what holds
// it, its stack, and the advice that fits it.
func printStall(w io.Writer, r *admin.BlockingReport) {
	tr := *r.Transition
	if tr.Patch == "" { // kGraft does not name the patch in transition
		fmt.Fprintf(w, "Transition (%s) is blocked by %d task(s).\n", tr.Direction(), len(r.Tasks))
	} else {
		fmt.Fprintf(w, "Transition of %s (%s) is blocked by %d task(s).\n", printable(tr.Patch), tr.Direction(), len(r.Tasks))
	}
	if len(r.Functions) > 0 {
		fmt.Fprintf(w, "Patched functions: %s\n", printable(strings.Join(r.Functions, ", ")))
	}
	if r.Signalled != nil && *r.Signalled {
		fmt.Fprintf(w, "The kernel has signalled the blocking tasks (it does every 15 seconds).\n")
	}
	switch r.KernelReasons {
	case admin.ReasonsNotLogged:
		fmt.Fprintf(w, "The kernel does not log why it cannot switch a task; to have it log its reasons: echo '%s' > %s\n", livepatch.SwitchReasonsControl, printable(r.DynamicDebugControl))
	case admin.ReasonsUnavailable:
		fmt.Fprintf(w, "This kernel cannot log why it cannot switch a task (no dynamic debug).\n")
	}
	if r.KernelLogErr != nil {
		fmt.Fprintf(w, "The kernel log could not be read: %s\n", printable(r.KernelLogErr.Error()))
	}
	for _, t := range r.Tasks {
		kind := "user thread"
		if t.KernelThread {
			kind = "kernel thread"
		}
		fmt.Fprintf(w, "\n  %d/%d %s (%s, state %s): %s\n", t.PID, t.TID, printable(t.Comm), kind, printable(t.State), printable(t.Cmdline))
		switch {
		case t.StackErr != nil && errors.Is(t.StackErr, os.ErrPermission):
			fmt.Fprintf(w, "    stack: not readable (root is required)\n")
		case t.StackErr != nil:
			fmt.Fprintf(w, "    stack: %v\n", t.StackErr)
		default:
			culprit := map[string]bool{}
			for _, c := range t.Culprits {
				culprit[c] = true
			}
			for _, f := range t.Stack {
				mark := "  "
				if culprit[f] {
					mark = "=>"
				}
				fmt.Fprintf(w, "    %s %s\n", mark, printable(f))
			}
			if len(t.Culprits) > 0 {
				fmt.Fprintf(w, "    on its stack (=>): %s\n", printable(strings.Join(t.CulpritFunctions(), ", ")))
			}
		}
		if t.Cause != "" {
			fmt.Fprintf(w, "    cause: %s\n", printable(t.Cause.Describe()))
			for _, e := range t.Evidence {
				fmt.Fprintf(w, "      %s\n", printable(e))
			}
		}
		fmt.Fprintf(w, "    advice: %s\n", printable(t.Advice))
	}
	if n := len(r.Unreadable); n > 0 {
		fmt.Fprintf(w, "\n  %d task(s) could not be read (%v); run as root for the full picture.\n", n, r.Unreadable[0])
	}
	if len(r.Tasks) == 0 && len(r.Unreadable) == 0 {
		fmt.Fprintf(w, "  No task in /proc blocks it: an idle task of another CPU may still be switching; the kernel retries about every second.\n")
	}
}
