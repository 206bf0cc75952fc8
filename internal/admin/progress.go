package admin

import (
	"context"
	"sync"
	"time"

	"github.com/klp-project/klp/livepatch"
)

// How the progress line counts the tasks left. A count reads every task's
// patch_state, so it costs as much as klp blocking: seconds of CPU at
// 100,000 threads under emulation. The wait itself never scans; only the
// progress line does, on a terminal, and it must not make the wait costly.
const (
	// countEvery is the least time between the end of one count and the
	// start of the next: the line's number is at most that old, plus the
	// count's own time.
	countEvery = 5 * time.Second
	// countBusy is the share of a CPU a count may take: one worker that
	// rests nine times as long as it read.
	countBusy = 0.1
)

// taskCounter counts the tasks that a transition waits for, for the
// progress line: in the background (the wait notices the end of the
// transition whatever a count is doing), one count at a time, paced to
// countBusy, stopped when the wait ends.
type taskCounter struct {
	lp     livepatch.FS
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	running bool
	next    time.Time // no count starts before
	n       int       // the last count, -1 before the first
	target  livepatch.PatchState
	now     func() time.Time
}

func newTaskCounter(ctx context.Context, lp livepatch.FS) *taskCounter {
	ctx, cancel := context.WithCancel(ctx)
	return &taskCounter{lp: lp, ctx: ctx, cancel: cancel, n: -1, now: time.Now}
}

// left returns the last count of the tasks that block a transition to
// target, -1 when there is none yet (or only one for the other direction,
// before a reverse), and starts a new count when one is due.
func (t *taskCounter) left(target livepatch.PatchState) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.running && !t.now().Before(t.next) && t.ctx.Err() == nil {
		t.running = true
		t.wg.Add(1)
		go t.count(target)
	}
	if t.n < 0 || t.target != target {
		return -1
	}
	return t.n
}

func (t *taskCounter) count(target livepatch.PatchState) {
	defer t.wg.Done()
	n, stats, err := t.lp.CountBlocking(target, livepatch.ScanOptions{Workers: 1, Context: t.ctx, Busy: countBusy})
	t.mu.Lock()
	defer t.mu.Unlock()
	t.running = false
	t.next = t.now().Add(countEvery)
	if err != nil || len(stats.Unreadable) > 0 {
		// A count that missed tasks (other users' when not root)
		// would show fewer than there are: show none.
		t.n = -1
		return
	}
	t.n, t.target = n, target
}

// stop ends the count in progress, if any, and waits for it.
func (t *taskCounter) stop() {
	t.cancel()
	t.wg.Wait()
}
