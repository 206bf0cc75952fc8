package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klp-project/klp/livepatch"
)

type jsonStall struct {
	Patch      string            `json:"patch"`
	Target     string            `json:"target"`
	Functions  []string          `json:"functions"`
	Tasks      []jsonStalledTask `json:"tasks"`
	Unreadable []jsonTaskError   `json:"unreadable"`
}

// jsonStalledTask is a blocking task as blocking --json shows it, with
// what holds it back and what to do about it.
type jsonStalledTask struct {
	jsonTask
	Culprits []string `json:"culprits"`
	Advice   string   `json:"advice"`
}

func stallJSON(r *livepatch.StallReport) jsonStall {
	j := jsonStall{
		Patch: r.Transition.Patch, Target: r.Transition.Target.String(),
		Functions: nonNil(r.Functions), Tasks: []jsonStalledTask{}, Unreadable: []jsonTaskError{},
	}
	for _, t := range r.Tasks {
		jt := jsonStalledTask{
			jsonTask: newJSONTask(t.Task, t.PatchState, t.Stack, t.StackErr),
			Culprits: nonNil(t.Culprits), Advice: advice(t, r.Transition),
		}
		j.Tasks = append(j.Tasks, jt)
	}
	for _, u := range r.Stats.Unreadable {
		j.Unreadable = append(j.Unreadable, jsonTaskError{PID: u.PID, TID: u.TID, Path: u.Path, Error: errText(u.Err)})
	}
	return j
}

// advice says what the administrator can do about one blocking task.
func advice(t livepatch.StalledTask, tr livepatch.Transition) string {
	reverse := fmt.Sprintf("klp disable %s", tr.Patch)
	if tr.Target == livepatch.StateUnpatched {
		reverse = fmt.Sprintf("klp enable %s", tr.Patch)
	}
	switch {
	case t.KernelThread && len(t.Culprits) > 0:
		return fmt.Sprintf("a kernel thread sleeping in code the patch changes: signals cannot move it; wait for it to leave that function, reverse the transition (%s), or as a last resort force it (klp force %s)", reverse, tr.Patch)
	case t.KernelThread:
		return fmt.Sprintf("a kernel thread: signals cannot move it; wait, or reverse the transition (%s)", reverse)
	case t.State == "D":
		return fmt.Sprintf("in uninterruptible sleep: a signal cannot wake it; wait for its I/O, or reverse the transition (%s)", reverse)
	case len(t.Culprits) > 0:
		return fmt.Sprintf("sleeping in code the patch changes: send it SIGSTOP and SIGCONT (kgr poke) so that it leaves the kernel; if it always returns there, reverse the transition (%s)", reverse)
	}
	return "a user task: it switches on its next exit from the kernel; kgr poke (SIGSTOP and SIGCONT) makes it leave now, and Linux 5.1+ signals it every 15 seconds"
}

// printStall prints the stall report: every blocking task with what holds
// it, its stack, and the advice that fits it.
func printStall(w io.Writer, r *livepatch.StallReport, prog string) {
	fmt.Fprintf(w, "Transition of %s (%s) is blocked by %d task(s).\n", r.Transition.Patch, r.Transition.Direction(), len(r.Tasks))
	if len(r.Functions) > 0 {
		fmt.Fprintf(w, "Patched functions: %s\n", strings.Join(r.Functions, ", "))
	}
	for _, t := range r.Tasks {
		kind := "user thread"
		if t.KernelThread {
			kind = "kernel thread"
		}
		fmt.Fprintf(w, "\n  %d/%d %s (%s, state %s): %s\n", t.PID, t.TID, t.Comm, kind, t.State, t.Cmdline)
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
				fmt.Fprintf(w, "    %s %s\n", mark, f)
			}
			if len(t.Culprits) > 0 {
				names := make([]string, 0, len(t.Culprits))
				for _, c := range t.Culprits {
					names = append(names, livepatch.StackFunction(c))
				}
				fmt.Fprintf(w, "    on its stack (=>): %s\n", strings.Join(names, ", "))
			}
		}
		fmt.Fprintf(w, "    advice: %s\n", advice(t, r.Transition))
	}
	if n := len(r.Stats.Unreadable); n > 0 {
		fmt.Fprintf(w, "\n  %d task(s) could not be read (%v); run as root for the full picture.\n", n, r.Stats.Unreadable[0])
	}
	if len(r.Tasks) == 0 && len(r.Stats.Unreadable) == 0 {
		fmt.Fprintf(w, "  No task in /proc blocks it: an idle task of another CPU may still be switching; the kernel retries about every second.\n")
	}
}

// whyRun is blocking --why: the stall report of the transition in progress.
func whyRun(opts *rootOptions, fs livepatch.FS) error {
	patches, err := fs.Patches()
	if err != nil {
		return err
	}
	r, err := fs.ExplainStall(patches)
	if err != nil {
		return err
	}
	if opts.json {
		doc := struct {
			SchemaVersion int        `json:"schema_version"`
			Stall         *jsonStall `json:"stall"`
		}{SchemaVersion: SchemaVersion}
		if r != nil {
			s := stallJSON(r)
			doc.Stall = &s
		}
		return writeJSON(opts.env.IO.Out, doc)
	}
	if r == nil {
		fmt.Fprintln(opts.env.IO.Out, "no transition in progress")
		return nil
	}
	printStall(opts.env.IO.Out, r, opts.prog)
	return nil
}
