package admin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"syscall"
	"time"

	"github.com/klp-project/klp/internal/audit"
)

// PokeTarget is one process kgr poke considers.
type PokeTarget struct {
	PID  int
	Comm string
	// Skip says why the process is left alone; "" for a process to poke.
	Skip string
	// Err is why signalling it failed, after Poke.
	Err error
}

// PokePlan is what kgr poke will do, decided whole before the first signal.
type PokePlan struct {
	Targets []PokeTarget // by PID
	// Blocking is the report the plan was made from.
	Blocking *BlockingReport
}

// Poke results, set on each target by [Changer.Poke].
var (
	// ErrPokeExited: the process exited before it could be signalled; it
	// no longer blocks.
	ErrPokeExited = errors.New("exited")
)

// PlanPoke decides which processes whose threads block the transition get
// SIGSTOP and SIGCONT, and why the others do not: kernel threads (signals do
// not move them), tasks in uninterruptible sleep (a signal does not wake
// them), processes already stopped (state T: an administrator stopped them,
// and SIGCONT would resume them), PID 1, klp itself, its ancestors (the
// shell that ran sudo klp is the parent's parent) and its process group.
// A process is poked only when none of its blocking threads may not be.
func (c *Changer) PlanPoke() (*PokePlan, error) {
	r, err := c.Blocking(BlockingOptions{Mode: KGraftProcesses})
	if err != nil {
		return nil, err
	}
	self, pgrp := c.cfg.Getpid(), c.cfg.Getpgrp()
	parent := c.cfg.Getppid()
	ancestors := c.ancestors(parent)
	byPID := map[int]*PokeTarget{}
	for _, t := range r.Tasks {
		p := byPID[t.PID]
		if p == nil {
			// Name the process by its leader, not by whichever of its
			// threads blocks (rsyslogd, not in:imjournal).
			comm := t.Comm
			if leader, err := c.LP.Task(t.PID, t.PID); err == nil {
				comm = leader.Comm
			}
			p = &PokeTarget{PID: t.PID, Comm: comm}
			byPID[t.PID] = p
		}
		if p.Skip != "" {
			continue
		}
		switch {
		case t.KernelThread:
			p.Skip = "kernel thread"
		case t.State == "D":
			p.Skip = "uninterruptible sleep (state D)"
		case t.State == "T" || t.State == "t":
			p.Skip = "stopped (state " + t.State + "): SIGCONT would resume it"
		case t.PID == 1:
			p.Skip = "PID 1"
		case t.PID == self:
			p.Skip = "klp itself"
		case t.PID == parent:
			p.Skip = "klp's parent process"
		case ancestors[t.PID]:
			p.Skip = "an ancestor of klp"
		case t.PGRP == pgrp:
			p.Skip = "in klp's process group"
		}
	}
	plan := &PokePlan{Blocking: r}
	for _, p := range byPID {
		plan.Targets = append(plan.Targets, *p)
	}
	sort.Slice(plan.Targets, func(i, j int) bool { return plan.Targets[i].PID < plan.Targets[j].PID })
	return plan, nil
}

// ancestors returns the ancestors of pid (pid included) up to PID 1, from
// procfs. The chain ends where a process cannot be read.
func (c *Changer) ancestors(pid int) map[int]bool {
	out := map[int]bool{}
	for i := 0; pid > 1 && i < 64 && !out[pid]; i++ {
		out[pid] = true
		t, err := c.LP.Task(pid, pid)
		if err != nil {
			break
		}
		pid = t.PPID
	}
	return out
}

// Poke sends SIGSTOP, then SIGCONT, to each target of plan that is not
// skipped, one process at a time, and records the failures in the plan.
// A process exited meanwhile no longer blocks and is left out.
func (c *Changer) Poke(ctx context.Context, plan *PokePlan) error {
	start := time.Now()
	poked, failed := 0, 0
	var first error
	for i := range plan.Targets {
		t := &plan.Targets[i]
		if t.Skip != "" {
			continue
		}
		if ctx.Err() != nil {
			t.Err = ErrInterrupted
			failed++
			if first == nil {
				first = fmt.Errorf("%d (%s): %w before it was signalled", t.PID, t.Comm, ErrInterrupted)
			}
			continue
		}
		switch err := c.stopCont(t.PID); {
		case errors.Is(err, syscall.ESRCH):
			t.Err = ErrPokeExited
		case err != nil:
			t.Err = err
			failed++
			if first == nil {
				first = fmt.Errorf("%d (%s): %w", t.PID, t.Comm, err)
			}
		default:
			poked++
		}
	}
	var err error
	if failed > 0 {
		err = fmt.Errorf("could not signal %d process(es): %w", failed, first)
	}
	if c.cfg.Audit != nil {
		if a := c.cfg.Audit(); a != nil {
			a.Record(audit.Record{Action: "poke", Result: fmt.Sprintf("poked %d, failed %d", poked, failed), Elapsed: time.Since(start), Err: err})
		}
	}
	return err
}

// stopCont stops a process, waits until it has stopped (so that it really
// left the kernel), and lets it continue. SIGCONT is sent even when the wait
// gives up or the state cannot be read, so that a process is never left
// stopped.
func (c *Changer) stopCont(pid int) error {
	if err := c.Live.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("send SIGSTOP: %w", err)
	}
	for range 100 {
		t, err := c.LP.Task(pid, pid)
		if err != nil || t.State == "T" || t.State == "t" {
			break
		}
		c.cfg.Sleep(time.Millisecond)
	}
	if err := c.Live.Kill(pid, syscall.SIGCONT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("send SIGCONT: %w", err)
	}
	return nil
}
