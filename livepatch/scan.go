package livepatch

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/sysfile"
)

// PatchState is a task's /proc/<pid>/task/<tid>/patch_state.
type PatchState int

const (
	// StateIdle (-1, KLP_TRANSITION_IDLE) means no transition is running.
	StateIdle PatchState = -1
	// StateUnpatched (0) means the task runs the old code.
	StateUnpatched PatchState = 0
	// StatePatched (1) means the task runs the new code.
	StatePatched PatchState = 1
)

// String returns "idle", "unpatched" or "patched".
func (s PatchState) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateUnpatched:
		return "unpatched"
	case StatePatched:
		return "patched"
	}
	return fmt.Sprintf("PatchState(%d)", int(s))
}

// TaskState is the patch state of one thread.
type TaskState struct {
	PID   int        // thread group id: /proc/<PID>
	TID   int        // thread id: /proc/<PID>/task/<TID>
	State PatchState // value of the scanned file
}

// TaskError records a task whose file could not be read for a reason other
// than the task having exited, typically EACCES for another user's task when
// not root. Such tasks are reported, never silently dropped: a blocking list
// that hides them would tell a non-root user that nothing blocks.
type TaskError struct {
	PID, TID int
	Path     string
	Err      error
}

func (e TaskError) Error() string { return fmt.Sprintf("read %s: %v", e.Path, e.Err) }

func (e TaskError) Unwrap() error { return e.Err }

// ScanOptions select what a task scan reads.
type ScanOptions struct {
	// File is the per-task file to read: "patch_state" (upstream) or
	// "kgr_in_progress" (SLE 12 kGraft). Empty means "patch_state".
	File string
	// Processes reads /proc/<pid>/<File> once per process instead of
	// /proc/<pid>/task/<tid>/<File> for every thread. Only kGraft's per
	// process flag is meaningful that way: upstream's per-process
	// patch_state shows the thread-group leader alone.
	Processes bool
	// Workers is the number of goroutines reading tasks; 0 means
	// GOMAXPROCS, at most 8.
	Workers int
	// Context, when set, stops the scan once it is done: ScanTasks then
	// returns its error with what it read so far.
	Context context.Context
	// Busy, between 0 and 1, paces the scan: the process's CPU time
	// stays within that share of a CPU per worker since the scan began
	// (0.1 with one worker: a tenth of a CPU, and ten times as long a
	// scan). 0 scans at full speed.
	Busy float64
}

// ScanStats sums up a scan.
type ScanStats struct {
	Tasks      int         // tasks whose file was read
	Exited     int         // tasks that went away during the scan
	Unreadable []TaskError // tasks that could not be read, sorted by PID, TID
}

// ScanTasks reads the patch state file of every task under the procfs root
// and calls visit for each one, from several goroutines at once: visit must
// be safe for concurrent use.
//
// The scan is built for hosts with 100,000 threads: it streams the
// directories with getdents64, opens each file relative to a directory
// descriptor with no allocation per task, reads at most a few bytes, and
// spreads the processes over a few goroutines. Tasks that exit during the
// scan (ENOENT, ESRCH) are counted, not reported as errors.
func (fs FS) ScanTasks(opts ScanOptions, visit func(TaskState)) (ScanStats, error) {
	file := opts.File
	if file == "" {
		file = "patch_state"
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = min(runtime.GOMAXPROCS(0), 8)
	}

	ctx := opts.Context
	if ctx == nil {
		ctx = context.Background()
	}
	proc, osDir := fs.k.ProcDir()
	if !osDir {
		st, err := fs.scanFiles(file, opts.Processes, visit)
		if err == nil {
			err = ctx.Err()
		}
		return st, err
	}
	procfd, err := unix.Open(proc, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ScanStats{}, fmt.Errorf("scan tasks: open %s: %w", proc, err)
	}
	defer unix.Close(procfd)
	// The running kernel's procfs holds only what the kernel made; a copied
	// tree may hold a device where a patch_state file should be, so there
	// each file's type is checked on its descriptor before it is read. The
	// kernel's procfs is listed with raw calls, as its files are read; a
	// copied tree is a directory on disk.
	checkType := !fs.k.KernelFS()
	var getdents getdentsFunc = unix.Getdents
	if !checkType {
		getdents = sysfile.RawGetdents
	}

	q := newWorkQueue(workers)
	var pace *pacer
	if opts.Busy > 0 && opts.Busy < 1 {
		pace = newPacer(opts.Busy*float64(workers), time.Now, processCPU)
	}
	results := make([]ScanStats, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(st *ScanStats) {
			defer wg.Done()
			s := newScanner(proc, procfd, file, opts.Processes, visit, st, q)
			s.checkType = checkType
			s.getdents = getdents
			s.workers = workers
			s.ctx = ctx
			if pace != nil {
				s.pause = func() { rest(ctx, pace.due()) }
			}
			for {
				item, ok := q.pop()
				if !ok {
					return
				}
				if ctx.Err() != nil {
					q.done() // stopped: drain the queue unread
					continue
				}
				s.scan(item)
				q.done()
				if s.pause != nil {
					s.pause()
				}
			}
		}(&results[w])
	}

	walkErr := forEachNumericEntry(procfd, 32, getdents, func(batch []int32) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		q.push(workItem{pids: append([]int32(nil), batch...)})
		return nil
	})
	if errors.Is(walkErr, ctx.Err()) {
		walkErr = nil // stopped: said below
	}
	q.close()
	wg.Wait()

	var total ScanStats
	for _, r := range results {
		total.Tasks += r.Tasks
		total.Exited += r.Exited
		total.Unreadable = append(total.Unreadable, r.Unreadable...)
	}
	sort.Slice(total.Unreadable, func(i, j int) bool {
		a, b := total.Unreadable[i], total.Unreadable[j]
		return a.PID < b.PID || a.PID == b.PID && a.TID < b.TID
	})
	if walkErr != nil {
		return total, fmt.Errorf("scan tasks: read %s: %w", proc, walkErr)
	}
	return total, ctx.Err()
}

// minRest is the shortest rest of a paced scan. The pacing measures the
// process's CPU, not the reading's time: each rest costs a wake-up of the
// Go runtime's threads (under emulation as much as reading a few hundred
// tasks), which a per-batch rest of the reading's time ignored, so that the
// progress line's "fiftieth of a CPU" took more than twice that at 100,000
// threads. Resting seldom and long keeps those wake-ups to about two a
// second.
const minRest = 500 * time.Millisecond

// pacer keeps a scan's CPU within its share of the time since it began.
type pacer struct {
	mu    sync.Mutex
	share float64 // of one CPU
	now   func() time.Time
	cpu   func() (time.Duration, bool)
	start time.Time
	cpu0  time.Duration
	ok    bool // cpu could be read: pace on it, else on nothing
}

func newPacer(share float64, now func() time.Time, cpu func() (time.Duration, bool)) *pacer {
	p := &pacer{share: share, now: now, cpu: cpu, start: now()}
	p.cpu0, p.ok = cpu()
	return p
}

// due returns how long to rest now: until the CPU used since the start is
// within the share of the time elapsed, and nothing when that is less
// than minRest away (the next batch reads first).
func (p *pacer) due() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ok {
		return 0
	}
	used, ok := p.cpu()
	if !ok {
		return 0
	}
	owed := time.Duration(float64(used-p.cpu0)/p.share) - p.now().Sub(p.start)
	if owed < minRest {
		return 0
	}
	return owed
}

// processCPU is the CPU time used by this process, all threads. The call
// is raw: it never waits, and an ordinary one wakes Go's scheduler monitor
// when it sleeps (internal/sysfile says what that costs), on every look a
// paced count takes at its pace.
func processCPU() (time.Duration, bool) {
	var ts unix.Timespec
	_, _, errno := syscall.RawSyscall(unix.SYS_CLOCK_GETTIME, unix.CLOCK_PROCESS_CPUTIME_ID, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}

// rest sleeps for d, or until ctx is done.
func rest(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// workItem is either a batch of processes or a chunk of one big process's
// threads. Big processes are split so that a host whose threads mostly
// belong to one process (a JVM, a database) still keeps every worker busy.
type workItem struct {
	pids []int32
	pid  int32
	tids []int32
}

// threadChunk is how many threads of one process a worker reads before it
// hands the rest of the process to other workers.
const threadChunk = 1024

// paceChunk is how many threads of one process a paced lone worker reads
// between two looks at its pace. A pace holds since the scan began, and a
// scan that reads ahead of it then rests: the most it reads ahead is
// minRest's share plus one chunk. At threadChunk threads, about 30 ms of
// CPU under emulation, a 10 s window of the progress line's count took up
// to 2.4 % of a CPU against its 2 %; at 128 threads the chunk is a few
// milliseconds, and the look (one clock_gettime) costs less than one
// thread's read.
const paceChunk = 128

// workQueue is an unbounded queue: workers add chunks while others take,
// so a bounded channel could deadlock with every worker blocked on send.
type workQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []workItem
	closed bool
	busy   int
}

func newWorkQueue(workers int) *workQueue {
	q := &workQueue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *workQueue) push(it workItem) {
	q.mu.Lock()
	q.items = append(q.items, it)
	q.mu.Unlock()
	q.cond.Signal()
}

// pop waits for an item. It reports false once the producer has finished,
// the queue is empty and no worker is busy (a busy worker may still add).
func (q *workQueue) pop() (workItem, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 {
		if q.closed && q.busy == 0 {
			return workItem{}, false
		}
		q.cond.Wait()
	}
	it := q.items[len(q.items)-1]
	q.items = q.items[:len(q.items)-1]
	q.busy++
	return it, true
}

func (q *workQueue) done() {
	q.mu.Lock()
	q.busy--
	finished := q.closed && q.busy == 0 && len(q.items) == 0
	q.mu.Unlock()
	if finished {
		q.cond.Broadcast()
	}
}

func (q *workQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// scanner holds one worker's reusable buffers.
type scanner struct {
	root      string
	procfd    int
	file      string
	processes bool
	visit     func(TaskState)
	checkType bool         // fstat each file: the tree is not the kernel's procfs
	getdents  getdentsFunc // raw for the kernel's procfs
	workers   int          // the scan's workers: one reads a process's threads as they are listed
	stats     *ScanStats
	path      []byte // NUL-terminated relative path, reused
	val       [32]byte
	dirents   []byte
	tids      []int32
	batch     []int32
	queue     *workQueue
	ctx       context.Context // the scan's: done, it stops
	// pause, when set, rests as a paced scan must: after each work item
	// and between the reads of a big process's thread list, whose
	// listing alone is seconds of CPU at 100,000 threads under emulation.
	pause func()
}

func newScanner(root string, procfd int, file string, processes bool, visit func(TaskState), st *ScanStats, q *workQueue) *scanner {
	return &scanner{
		root: root, procfd: procfd, file: file, processes: processes, visit: visit, stats: st,
		// A large buffer matters for processes with many threads: each
		// getdents64 call on /proc/<pid>/task walks the thread list from
		// the start to find its position.
		path: make([]byte, 0, 64), dirents: make([]byte, 64<<10), batch: make([]int32, 0, 64<<10/24), queue: q,
		ctx: context.Background(), getdents: unix.Getdents,
	}
}

func (s *scanner) scan(it workItem) {
	if it.tids == nil {
		for _, pid := range it.pids {
			// A stopped scan reads no further process: the progress
			// line's count is stopped when the wait ends, and each
			// process is a few system calls (a millisecond under
			// emulation) that the wait's return would wait for.
			if s.ctx.Err() != nil {
				return
			}
			s.scanPID(int(pid))
		}
		return
	}
	s.path = appendInt(s.path[:0], int(it.pid))
	s.path = append(s.path, "/task"...)
	taskfd, err := sysfile.RawOpenat(s.procfd, s.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW)
	if err != nil {
		s.fail(int(it.pid), 0, fmt.Sprintf("%d/task", it.pid), err)
		return
	}
	s.scanTIDs(taskfd, int(it.pid), it.tids)
	sysfile.RawClose(taskfd)
}

func (s *scanner) scanPID(pid int) {
	if s.processes {
		s.path = appendInt(s.path[:0], pid)
		s.path = append(s.path, '/')
		s.path = append(s.path, s.file...)
		s.readTask(s.procfd, pid, pid)
		return
	}
	s.path = appendInt(s.path[:0], pid)
	s.path = append(s.path, "/task"...)
	taskfd, err := sysfile.RawOpenat(s.procfd, s.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW)
	if err != nil {
		s.fail(pid, 0, fmt.Sprintf("%d/task", pid), err)
		return
	}
	defer sysfile.RawClose(taskfd)
	// The threads are read as they are listed, so that a process with
	// 100,000 threads costs no more memory than one with a thousand: a
	// lone worker reads each listed batch itself; with others, every
	// threadChunk listed threads go to them and the rest is read here.
	s.tids = s.tids[:0]
	err = forEachNumericEntryBuf(taskfd, s.dirents, s.batch, 0, s.getdents, func(batch []int32) error {
		if s.workers <= 1 {
			// A paced scan looks at its pace after every paceChunk
			// threads read: a listed batch holds up to 2,730.
			for s.pause != nil && len(batch) > paceChunk {
				s.scanTIDs(taskfd, pid, batch[:paceChunk])
				batch = batch[paceChunk:]
				s.pause()
				if err := s.ctx.Err(); err != nil {
					return err
				}
			}
			s.scanTIDs(taskfd, pid, batch)
		} else {
			s.tids = append(s.tids, batch...)
			for len(s.tids) > threadChunk {
				chunk := append([]int32(nil), s.tids[len(s.tids)-threadChunk:]...)
				s.tids = s.tids[:len(s.tids)-threadChunk]
				s.queue.push(workItem{pid: int32(pid), tids: chunk})
			}
		}
		if s.pause != nil {
			// A paced listing may take minutes: it stops with the
			// scan (the tasks not read yet go unread).
			s.pause()
		}
		return s.ctx.Err()
	})
	if s.ctx.Err() != nil {
		return
	}
	if err != nil {
		s.fail(pid, 0, fmt.Sprintf("%d/task", pid), err)
		return
	}
	s.scanTIDs(taskfd, pid, s.tids)
}

func (s *scanner) scanTIDs(taskfd, pid int, tids []int32) {
	for _, tid := range tids {
		s.path = appendInt(s.path[:0], int(tid))
		s.path = append(s.path, '/')
		s.path = append(s.path, s.file...)
		s.readTask(taskfd, pid, int(tid))
	}
}

// readTask reads s.path relative to dirfd. O_NONBLOCK and O_NOFOLLOW cost
// nothing on procfs and keep a FIFO or a link planted in a copied tree from
// blocking the scan or leading it elsewhere. The system calls are raw
// (sysfile.RawOpenat and its siblings): measured on 20,000 threads, the Go
// runtime otherwise handed the processor off on most calls (one futex wake
// per task) and the scan ran 1.5 times slower than the C scanner.
func (s *scanner) readTask(dirfd, pid, tid int) {
	fd, err := sysfile.RawOpenat(dirfd, s.path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_NOCTTY)
	if err != nil {
		s.fail(pid, tid, s.relPath(pid, tid), err)
		return
	}
	if s.checkType {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			sysfile.RawClose(fd)
			if err == nil {
				err = ErrNotRegular
			}
			s.fail(pid, tid, s.relPath(pid, tid), err)
			return
		}
	}
	n, err := sysfile.RawRead(fd, s.val[:])
	sysfile.RawClose(fd)
	if err != nil {
		s.fail(pid, tid, s.relPath(pid, tid), err)
		return
	}
	v, ok := parseStateBytes(s.val[:n])
	if !ok {
		s.fail(pid, tid, s.relPath(pid, tid), fmt.Errorf("%w %q: want -1, 0 or 1", ErrParse, s.val[:n]))
		return
	}
	s.stats.Tasks++
	s.visit(TaskState{PID: pid, TID: tid, State: PatchState(v)})
}

func (s *scanner) relPath(pid, tid int) string {
	if s.processes {
		return fmt.Sprintf("%d/%s", pid, s.file)
	}
	return fmt.Sprintf("%d/task/%d/%s", pid, tid, s.file)
}

func (s *scanner) fail(pid, tid int, rel string, err error) {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		s.stats.Exited++
		return
	}
	s.stats.Unreadable = append(s.stats.Unreadable, TaskError{PID: pid, TID: tid, Path: s.root + "/" + rel, Err: err})
}

// parseStateBytes parses "-1\n", "0\n" or "1\n" without allocating. The
// kernel prints nothing else (kGraft's flag is 0 or 1), so any other value
// means the file is not what we think and is reported, never counted as a
// blocking task.
func parseStateBytes(b []byte) (int, bool) {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	return n, n >= -1 && n <= 1
}

func appendInt(b []byte, n int) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

// getdentsFunc lists a directory into a buffer: unix.Getdents, or
// sysfile.RawGetdents for the kernel's procfs.
type getdentsFunc func(fd int, buf []byte) (int, error)

// forEachNumericEntry streams the numeric entries of a directory (pids or
// tids), listed with getdents, in batches of up to batchSize; an error
// from fn stops it and is returned.
func forEachNumericEntry(dirfd, batchSize int, getdents getdentsFunc, fn func([]int32) error) error {
	return forEachNumericEntryBuf(dirfd, make([]byte, 32<<10), make([]int32, 0, batchSize), batchSize, getdents, fn)
}

// forEachNumericEntryBuf is forEachNumericEntry with the caller's buffers,
// so that a worker reading 100,000 task directories allocates nothing; a
// batchSize of 0 delivers each getdents64 buffer's worth at once.
func forEachNumericEntryBuf(dirfd int, buf []byte, batch []int32, batchSize int, getdents getdentsFunc, fn func([]int32) error) error {
	batch = batch[:0]
	for {
		n, err := getdents(dirfd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			break
		}
		for off := 0; off < n; {
			// struct linux_dirent64: d_ino u64, d_off s64, d_reclen u16,
			// d_type u8, d_name[] NUL-terminated.
			reclen := int(*(*uint16)(unsafe.Pointer(&buf[off+16])))
			if reclen == 0 || off+reclen > n {
				return fmt.Errorf("%w: malformed directory entry", ErrParse)
			}
			name := buf[off+19 : off+reclen]
			off += reclen
			id, ok := parseID(name)
			if !ok {
				continue
			}
			batch = append(batch, id)
			if batchSize > 0 && len(batch) == batchSize {
				if err := fn(batch); err != nil {
					return err
				}
				batch = batch[:0]
			}
		}
		if batchSize == 0 && len(batch) > 0 {
			if err := fn(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		return fn(batch)
	}
	return nil
}

// parseID parses a NUL-terminated decimal directory name.
func parseID(name []byte) (int32, bool) {
	var n int64
	i := 0
	for ; i < len(name) && name[i] != 0; i++ {
		c := name[i]
		if c < '0' || c > '9' || i > 9 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if i == 0 || n > 1<<31-1 {
		return 0, false
	}
	return int32(n), true
}

// scanFiles is ScanTasks for a handle whose files are not host directories
// (a snapshot archive): the same walk through the handle's own reads.
func (fs FS) scanFiles(file string, processes bool, visit func(TaskState)) (ScanStats, error) {
	var st ScanStats
	proc := fs.k.Roots().Proc
	entries, err := fs.k.ReadDir(proc)
	if err != nil {
		return st, fmt.Errorf("scan tasks: read %s: %w", proc, err)
	}
	read := func(pid, tid int, path string) {
		b, err := fs.k.ReadPrefix(path, 32)
		if err != nil {
			if errors.Is(err, iofs.ErrNotExist) {
				st.Exited++
				return
			}
			st.Unreadable = append(st.Unreadable, TaskError{PID: pid, TID: tid, Path: path, Err: err})
			return
		}
		v, ok := parseStateBytes(b)
		if !ok {
			st.Unreadable = append(st.Unreadable, TaskError{PID: pid, TID: tid, Path: path, Err: fmt.Errorf("%w %q: want -1, 0 or 1", ErrParse, b)})
			return
		}
		st.Tasks++
		visit(TaskState{PID: pid, TID: tid, State: PatchState(v)})
	}
	for _, e := range entries {
		pid32, ok := parseID([]byte(e.Name()))
		if !ok || !e.IsDir() {
			continue
		}
		pid := int(pid32)
		if processes {
			read(pid, pid, fs.ProcPath(e.Name(), file))
			continue
		}
		tasks, err := fs.k.ReadDir(fs.ProcPath(e.Name(), "task"))
		if err != nil {
			if errors.Is(err, iofs.ErrNotExist) {
				st.Exited++
				continue
			}
			st.Unreadable = append(st.Unreadable, TaskError{PID: pid, Path: fs.ProcPath(e.Name(), "task"), Err: err})
			continue
		}
		for _, t := range tasks {
			tid, ok := parseID([]byte(t.Name()))
			if !ok {
				continue
			}
			read(pid, int(tid), fs.ProcPath(e.Name(), "task", t.Name(), file))
		}
	}
	return st, nil
}
