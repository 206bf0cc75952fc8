package cli

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"syscall"
	"time"

	"github.com/klp-project/klp/livepatch"
	"github.com/spf13/cobra"
)

type jsonPoke struct {
	SchemaVersion int           `json:"schema_version"`
	Poked         []jsonPokePID `json:"poked"`
	Skipped       []jsonPokePID `json:"skipped"`
	Failed        []jsonPokePID `json:"failed"`
}

type jsonPokePID struct {
	PID    int    `json:"pid"`
	Comm   string `json:"comm"`
	Reason string `json:"reason,omitempty"`
}

func newPokeCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "poke",
		Short: "Obsolete command. Send STOP and CONT signals to processes that are blocking live patching",
		Long: `Send SIGSTOP and then SIGCONT to the processes whose threads block the
transition in progress. A stopped process leaves the kernel, which lets its
threads switch to the new code at once.

Some processes are never poked, and poke says which and why: kernel threads
(signals do not move them), tasks in uninterruptible sleep (state D; a
signal does not wake them), PID 1, poke itself, and its own parent and
process group (stopping them would interfere with the shell's job control).
Linux 5.1 and later signal blocking tasks by themselves about every 15
seconds, which is why this command is obsolete.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return pokeRun(opts)
		},
	}
}

func pokeRun(opts *rootOptions) error {
	fs, err := opts.fs()
	if err != nil {
		return err
	}
	r, err := gatherBlocking(fs, kgrProcesses, false)
	if err != nil {
		return err
	}
	env := opts.env
	self, parent, pgrp := env.Getpid(), env.Getppid(), env.Getpgrp()

	// One process may have several blocking threads; poke it once, but
	// skip it if any of them may not be poked.
	type proc struct {
		pid    int
		comm   string
		reason string
	}
	procs := map[int]*proc{}
	for _, t := range r.tasks {
		p := procs[t.PID]
		if p == nil {
			// Name the process by its leader, not by whichever of its
			// threads blocks (rsyslogd, not in:imjournal).
			comm := t.Comm
			if leader, err := fs.Task(t.PID, t.PID); err == nil {
				comm = leader.Comm
			}
			p = &proc{pid: t.PID, comm: comm}
			procs[t.PID] = p
		}
		if p.reason != "" {
			continue
		}
		switch {
		case t.KernelThread:
			p.reason = "kernel thread"
		case t.State == "D":
			p.reason = "uninterruptible sleep (state D)"
		case t.PID == 1:
			p.reason = "PID 1"
		case t.PID == self:
			p.reason = "klp itself"
		case t.PID == parent:
			p.reason = "klp's parent process"
		case t.PGRP == pgrp:
			p.reason = "in klp's process group"
		}
	}
	pids := make([]int, 0, len(procs))
	for pid := range procs {
		pids = append(pids, pid)
	}
	sort.Ints(pids)

	doc := jsonPoke{SchemaVersion: SchemaVersion, Poked: []jsonPokePID{}, Skipped: []jsonPokePID{}, Failed: []jsonPokePID{}}
	for _, pid := range pids {
		p := procs[pid]
		entry := jsonPokePID{PID: p.pid, Comm: p.comm, Reason: p.reason}
		if p.reason != "" {
			doc.Skipped = append(doc.Skipped, entry)
			continue
		}
		switch err := stopCont(fs, env, pid); {
		case errors.Is(err, syscall.ESRCH):
			// It exited: it no longer blocks.
		case err != nil:
			entry.Reason = err.Error()
			doc.Failed = append(doc.Failed, entry)
		default:
			doc.Poked = append(doc.Poked, entry)
		}
	}

	if opts.json {
		if err := writeJSON(env.IO.Out, doc); err != nil {
			return err
		}
	} else {
		for _, s := range doc.Skipped {
			fmt.Fprintf(env.IO.Out, "skipped %d (%s): %s\n", s.PID, s.Comm, s.Reason)
		}
		if opts.verbose > 0 {
			for _, p := range doc.Poked {
				fmt.Fprintf(env.IO.Out, "poked %d (%s)\n", p.PID, p.Comm)
			}
		}
	}
	if len(doc.Failed) > 0 {
		f := doc.Failed[0]
		return &exitError{code: ExitError, msg: fmt.Sprintf("could not signal %d process(es): %d (%s): %s", len(doc.Failed), f.PID, f.Comm, f.Reason)}
	}
	if err := r.incomplete(opts); err != nil {
		return err
	}
	return nil
}

// stopCont stops a process, waits until it has stopped (so that it really
// left the kernel), and lets it continue. SIGCONT is sent even when the wait
// gives up, so that a process is never left stopped.
func stopCont(fs livepatch.FS, env *Env, pid int) error {
	if err := env.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("send SIGSTOP: %w", err)
	}
	for i := 0; i < 100; i++ {
		t, err := fs.Task(pid, pid)
		if err != nil || t.State == "T" || t.State == "t" {
			break
		}
		env.Sleep(time.Millisecond)
	}
	if err := env.Kill(pid, syscall.SIGCONT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("send SIGCONT: %w", err)
	}
	return nil
}
