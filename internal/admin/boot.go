package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// BootOptions tune [Changer.LoadAll].
type BootOptions struct {
	// Wait applies to each module; its Timeout is the per-module deadline.
	Wait WaitOptions
	// Total bounds the whole run (0: no bound), so that a stalling patch
	// cannot hold the boot for minutes per module.
	Total time.Duration
	// RetryCrashed loads a module even though the machine went down while
	// it was being loaded last time.
	RetryCrashed bool
}

// ErrSomeFailed reports a LoadAll in which some modules failed or were
// skipped; the others were loaded.
var ErrSomeFailed = errors.New("some patches were not loaded")

// LoadAll loads every patch installed for the running kernel, as the boot
// service does. It goes on past a failing module and reports each one, in
// Outcomes. "klp.enable=0" on the kernel command line turns it off. No
// preflight check runs: at boot a patch that cannot load says why itself,
// and the others must load regardless.
func (c *Changer) LoadAll(ctx context.Context, opts BootOptions) (*Outcome, error) {
	return c.change(ctx, &Outcome{Action: "load", All: true}, func(ctx context.Context, o *Outcome) error {
		return c.loadAll(ctx, o, opts)
	})
}

func (c *Changer) loadAll(ctx context.Context, o *Outcome, opts BootOptions) error {
	rel, err := c.Release()
	if err != nil {
		return err
	}
	o.Release = rel
	if cmdline, err := c.K.ReadString(c.K.ProcPath("cmdline")); err == nil {
		for _, f := range strings.Fields(cmdline) {
			if f == "klp.enable=0" {
				o.Result = ResultDisabled
				o.Notes = append(o.Notes, "klp.enable=0 is on the kernel command line")
				return nil
			}
		}
	}
	st := c.cfg.Store
	installed, err := st.List(rel)
	if err != nil {
		return err
	}
	if opts.Total > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Total)
		defer cancel()
	}
	crashed, err := st.Crashed(rel)
	if err != nil {
		return err
	}
	failed := 0
	seen := map[string]bool{}
	for _, in := range installed {
		if seen[in.Name] {
			continue // klp's copy wins over kpatch's
		}
		seen[in.Name] = true
		sub := &Outcome{Action: "load", Patch: in.Name, File: in.Path}
		o.Outcomes = append(o.Outcomes, sub)
		if crashed[in.Name] && !opts.RetryCrashed {
			sub.Result = ResultSkipped
			sub.Err = errors.New("the machine went down while this patch was loading last time; load it by hand, or use --retry-crashed")
			failed++
			continue
		}
		if ctx.Err() != nil {
			sub.Result = ResultSkipped
			sub.Err = errors.New("total deadline passed")
			failed++
			continue
		}
		if err := st.MarkLoading(rel, in.Name); err != nil {
			return err
		}
		start := time.Now()
		err := c.load(ctx, sub, LoadRequest{Path: in.Path, Wait: opts.Wait, SkipPreflight: true})
		// Removed only once the load returned: a crash leaves it.
		st.DoneLoading(rel)
		sub.Err = err
		if sub.Elapsed == 0 {
			sub.Elapsed = time.Since(start)
		}
		if err != nil {
			failed++
			if sub.Result == "" {
				sub.Result = ResultFailed
			}
		}
	}
	if opts.RetryCrashed {
		st.ClearCrashed(rel)
	}
	switch {
	case failed > 0:
		o.Result = ResultIncomplete
		skipped := 0
		for _, s := range o.Outcomes {
			if s.Result == ResultSkipped {
				skipped++
			}
		}
		return fmt.Errorf("%w: %d failed, %d skipped", ErrSomeFailed, failed-skipped, skipped)
	case len(o.Outcomes) == 0:
		o.Result = ResultNone
	default:
		o.Result = ResultLoaded
	}
	return nil
}
