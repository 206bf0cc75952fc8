package fakekernel

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/klp-project/klp/kernel"
)

// faults are the read faults injected into the handles of a Kernel.
type faults struct {
	mu    sync.Mutex
	paths map[string]error
}

// InjectReadFault makes every read of path through this kernel's handles
// (open, list, stat) fail with err, as the real kernel does in the cases
// docs/fakekernel.md lists: ENODEV from the attributes of a patch being
// freed, ENOENT (or ESRCH) from a task that exits while it is read,
// EACCES from a file root cannot read. A nil err removes the fault. The
// fault applies to path itself, not to what lies below it.
func (k *Kernel) InjectReadFault(path string, err error) {
	k.faults.mu.Lock()
	defer k.faults.mu.Unlock()
	if k.faults.paths == nil {
		k.faults.paths = map[string]error{}
	}
	if err == nil {
		delete(k.faults.paths, path)
		return
	}
	k.faults.paths[path] = err
}

func (k *Kernel) readFault(op, path string) error {
	k.faults.mu.Lock()
	defer k.faults.mu.Unlock()
	if err, ok := k.faults.paths[path]; ok {
		return &os.PathError{Op: op, Path: path, Err: err}
	}
	return nil
}

// faultFiles reads the fake tree as [kernel.OSFiles] does, apart from the
// injected faults.
type faultFiles struct {
	kernel.OSFiles
	k *Kernel
}

func (f faultFiles) Open(path string) (io.ReadCloser, error) {
	if err := f.k.readFault("open", path); err != nil {
		return nil, err
	}
	// force and signal are write-only (mode 0200, no show op): kernfs
	// refuses to open them for reading, even for root.
	if base := filepath.Base(path); (base == "force" || base == "signal") && strings.HasPrefix(path, filepath.Join(f.k.sys, "kernel", "livepatch")+"/") {
		return nil, &os.PathError{Op: "open", Path: path, Err: syscall.EACCES}
	}
	return f.OSFiles.Open(path)
}

func (f faultFiles) ReadDir(path string) ([]fs.DirEntry, error) {
	if err := f.k.readFault("open", path); err != nil {
		return nil, err
	}
	return f.OSFiles.ReadDir(path)
}

func (f faultFiles) Lstat(path string) (fs.FileInfo, error) {
	if err := f.k.readFault("lstat", path); err != nil {
		return nil, err
	}
	return f.OSFiles.Lstat(path)
}

func (f faultFiles) Stat(path string) (fs.FileInfo, error) {
	if err := f.k.readFault("stat", path); err != nil {
		return nil, err
	}
	return f.OSFiles.Stat(path)
}

// Signal is one signal sent through [Kernel.Kill].
type Signal struct {
	PID int
	Sig syscall.Signal
}

// Kill is kill(2) on the fake tasks. A process that does not exist gives
// ESRCH. Kernel threads ignore SIGSTOP and SIGCONT, as in the kernel. A
// stopped user process shows state T in stat, and each of its threads
// leaves the kernel function it slept in (BlockTask with functions, or
// without), so it switches at the next Tick: what kgr poke relies on.
// SIGCONT shows it running again (state S).
func (k *Kernel) Kill(pid int, sig syscall.Signal) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	leader := k.taskMap[pid]
	if leader == nil || leader.TID != leader.PID {
		return syscall.ESRCH
	}
	k.sent = append(k.sent, Signal{PID: pid, Sig: sig})
	if leader.Kthread {
		return nil
	}
	for _, t := range k.tasks {
		if t.PID != pid {
			continue
		}
		switch sig {
		case syscall.SIGSTOP:
			if t.uninterruptible {
				continue // a signal does not wake a task in D state
			}
			t.stopped = true
			t.blockAll, t.blockedOn = false, nil
		case syscall.SIGCONT:
			t.stopped = false
		case 0:
			continue
		default:
			return fmt.Errorf("fakekernel: signal %v is not modelled", sig)
		}
		k.writeTask(t)
	}
	return nil
}

// Signals returns the signals sent so far, in order.
func (k *Kernel) Signals() []Signal {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]Signal(nil), k.sent...)
}

// SetUninterruptible puts a task in uninterruptible sleep (state D in
// stat), where signals do not wake it, or takes it out.
func (k *Kernel) SetUninterruptible(tid int, d bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if t := k.taskMap[tid]; t != nil {
		t.uninterruptible = d
		k.writeTask(t)
	}
}
