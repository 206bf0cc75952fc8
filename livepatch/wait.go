package livepatch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/poll"
)

// ErrStalled reports a transition that did not complete within the wait's
// timeout. The transition goes on in the kernel; the caller decides whether
// to wait more, reverse it or leave it.
var ErrStalled = errors.New("transition stalled")

// WaitOptions tune [Control.WaitTransition].
type WaitOptions struct {
	// Timeout bounds the wait; 0 waits until ctx is done.
	Timeout time.Duration
	// Progress, when set, is called about every ProgressInterval (default
	// one second) while the transition runs. Callers that show progress
	// count the tasks left themselves: a task scan costs too much to run on
	// every poll.
	Progress         func(elapsed time.Duration)
	ProgressInterval time.Duration
	// SignalAfter, when positive, writes the patch's signal attribute once
	// the transition has run that long, on kernels that have one (4.15 to
	// 5.0). Later kernels signal the remaining tasks every 15 seconds by
	// themselves. OnSignal reports the attempt and its error, which wraps
	// [ErrUnsupportedAttr] on those kernels.
	SignalAfter time.Duration
	OnSignal    func(err error)
	// Poll tunes the polling back-off (default 1 ms growing to 10 ms: a
	// completion is noticed within about 10 ms at negligible CPU cost) and
	// its clock (default: the kernel handle's); Timeout above is the
	// wait's timeout.
	Poll poll.Options
}

// WaitResult says how a wait ended.
type WaitResult struct {
	// Elapsed is the time waited.
	Elapsed time.Duration
	// Enabled is the patch's enabled value when the transition ended:
	// true when it ended patched, false when unpatched (a disable, or a
	// reversed load). A patch whose directory is gone ended unpatched
	// (disabled and freed) or replaced.
	Enabled bool
	// Gone is true when the patch's directory disappeared.
	Gone bool
}

// WaitTransition waits until the named patch is no longer in transition,
// polling its transition attribute. It returns [ErrStalled] (with the
// result so far) when opts.Timeout passes first, and ctx's error when ctx
// is done. A patch that is not in transition returns at once.
func (c Control) WaitTransition(ctx context.Context, name string, opts WaitOptions) (WaitResult, error) {
	dir, err := c.PatchPath(name)
	if err != nil {
		return WaitResult{}, err
	}
	name = filepath.Base(dir)
	popts := opts.Poll
	if popts.Clock == nil {
		popts.Clock = c.live.Clock()
	}
	popts.Timeout = opts.Timeout
	clock := popts.Clock
	start := clock.Now()
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = time.Second
	}
	var res WaitResult
	nextProgress := opts.ProgressInterval
	signalled := false
	err = poll.Until(ctx, func() (bool, error) {
		elapsed := clock.Now().Sub(start)
		inTransition, err := c.k.ReadBool(filepath.Join(dir, "transition"))
		if errors.Is(err, unix.ENODEV) {
			// kernfs answers ENODEV for the attributes of a patch it is
			// removing, before the files go.
			res.Gone, res.Enabled = true, false
			return true, nil
		}
		if errors.Is(err, os.ErrNotExist) {
			// The directory goes away asynchronously after a disable
			// or a replace completes.
			if !c.k.Exists(dir) {
				res.Gone, res.Enabled = true, false
				return true, nil
			}
			// Before 4.12 there was no transition: changes are
			// immediate.
			inTransition, err = false, nil
		}
		if err != nil {
			return false, fmt.Errorf("wait for %s: %w", name, err)
		}
		if !inTransition {
			enabled, err := c.k.ReadBool(filepath.Join(dir, "enabled"))
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENODEV) {
				res.Gone = true
				return true, nil
			}
			if err != nil {
				return false, fmt.Errorf("wait for %s: %w", name, err)
			}
			res.Enabled = enabled
			return true, nil
		}
		if opts.SignalAfter > 0 && !signalled && elapsed >= opts.SignalAfter {
			// Without the attribute (5.1+) the kernel signals by itself;
			// OnSignal hears ErrUnsupportedAttr so the caller can say so.
			signalled = true
			err := c.Signal(name)
			if opts.OnSignal != nil {
				opts.OnSignal(err)
			}
		}
		if opts.Progress != nil && elapsed >= nextProgress {
			nextProgress = elapsed + opts.ProgressInterval
			opts.Progress(elapsed)
		}
		return false, nil
	}, popts)
	res.Elapsed = clock.Now().Sub(start)
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return res, fmt.Errorf("wait for %s: %w after %s", name, ErrStalled, res.Elapsed.Round(time.Millisecond))
	}
	return res, err
}
