package admin

import (
	"context"
	"sync"
	"time"

	"github.com/klp-project/klp/livepatch"
)

// How the progress line counts the tasks left. A full count reads every
// task's patch_state, so it costs as much as klp blocking: seconds of CPU
// at 100,000 threads under emulation. The wait itself never scans; only
// the progress line does, on a terminal, and it must not make the wait
// costly. So the line counts every task once, slowly, and then reads again
// only the tasks that count found blocking: a task that has switched stays
// switched until the transition ends, and in a stall the tasks left are
// few.
const (
	// countEvery is the least time between the end of one count and the
	// start of the next: the line's number is at most that old, plus the
	// count's own time.
	countEvery = 5 * time.Second
	// countBusy is the share of a CPU a full count may take: one worker
	// that rests 49 times as long as it read. 100,000 tasks at 2 to 5 µs
	// each take 10 to 25 s to count.
	countBusy = 0.02
	// keepBlocking is the most blocking tasks a count keeps to read again
	// the next time; with more, the next count is a full one again.
	keepBlocking = 1000
)

// taskCounter counts the tasks that a transition waits for, for the
// progress line: in the background (the wait notices the end of the
// transition whatever a count is doing), one count at a time, stopped when
// the wait ends. The first count (and the first after a reverse) reads
// every task, paced to countBusy; the later ones read again the tasks the
// last count found blocking, when there were at most keepBlocking of them,
// and miss the tasks forked since (a child starts in its parent's state).
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
	// blocking are the tasks the last count found blocking a transition
	// to target; nil when it found more than keepBlocking (or none was
	// made).
	blocking []livepatch.TaskState
	keep     int // keepBlocking but in tests
	full     int // the full counts made, for tests
	now      func() time.Time
}

func newTaskCounter(ctx context.Context, lp livepatch.FS) *taskCounter {
	ctx, cancel := context.WithCancel(ctx)
	return &taskCounter{lp: lp, ctx: ctx, cancel: cancel, n: -1, keep: keepBlocking, now: time.Now}
}

// left returns the last count of the tasks that block a transition to
// target, -1 when there is none yet (or only one for the other direction,
// before a reverse), and starts a new count when one is due.
func (t *taskCounter) left(target livepatch.PatchState) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.running && !t.now().Before(t.next) && t.ctx.Err() == nil {
		t.running = true
		var known []livepatch.TaskState
		if t.n >= 0 && t.target == target && t.blocking != nil {
			known = t.blocking
		}
		t.wg.Add(1)
		go t.count(target, known)
	}
	if t.n < 0 || t.target != target {
		return -1
	}
	return t.n
}

// count counts the tasks blocking a transition to target: known again
// when it is not nil, else every task.
func (t *taskCounter) count(target livepatch.PatchState, known []livepatch.TaskState) {
	defer t.wg.Done()
	var blocking []livepatch.TaskState
	n, ok := 0, true
	if known != nil {
		var err error
		blocking, err = t.lp.RecountBlocking(target, known)
		n, ok = len(blocking), err == nil
		if blocking == nil {
			blocking = []livepatch.TaskState{} // none left: read none again
		}
	} else {
		blocking, n, ok = t.fullCount(target)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.running = false
	t.next = t.now().Add(countEvery)
	if known == nil {
		t.full++
	}
	if !ok {
		// A count that missed tasks (other users' when not root)
		// would show fewer than there are: show none.
		t.n, t.blocking = -1, nil
		return
	}
	t.n, t.target, t.blocking = n, target, blocking
}

// fullCount reads every task; it returns the blocking ones (nil when there
// are more than keepBlocking), their number, and whether every task could
// be read.
func (t *taskCounter) fullCount(target livepatch.PatchState) ([]livepatch.TaskState, int, bool) {
	var mu sync.Mutex
	blocking := []livepatch.TaskState{}
	n, keep := 0, t.keep
	stats, err := t.lp.ScanTasks(livepatch.ScanOptions{Workers: 1, Context: t.ctx, Busy: countBusy}, func(ts livepatch.TaskState) {
		if ts.State < 0 || ts.State == target {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		n++
		if n > keep {
			blocking = nil
		} else {
			blocking = append(blocking, ts)
		}
	})
	if err != nil || len(stats.Unreadable) > 0 {
		return nil, 0, false
	}
	return blocking, n, true
}

// stop ends the count in progress, if any, and waits for it.
func (t *taskCounter) stop() {
	t.cancel()
	t.wg.Wait()
}
