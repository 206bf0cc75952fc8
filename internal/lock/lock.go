// Package lock is the lock that serialises the klp commands that change
// the kernel, so that two of them cannot interleave a load and an unload.
package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultPath is where mutating klp commands take their lock.
const DefaultPath = "/run/klp.lock"

// ErrLocked reports that another klp holds the lock.
var ErrLocked = errors.New("another klp is changing live patches")

// Lock is an exclusive advisory lock on a file. The kernel drops it when the
// process exits, so a crashed klp never leaves a stale lock behind.
type Lock struct{ f *os.File }

// Acquire takes the lock at path, retrying for up to wait or until ctx is
// done. The holder's PID is written into the file so that the error can name
// it. The file is opened without following a symbolic link: /run is
// root's, but a lock path given elsewhere must not truncate a link's target.
func Acquire(ctx context.Context, path string, wait time.Duration) (*Lock, error) {
	// /run exists on every systemd machine; an initramfs may lack it.
	_ = os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0o644)
	if err != nil {
		return nil, fmt.Errorf("take lock %s: %w", path, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("take lock %s: not a regular file", path)
	}
	deadline := time.Now().Add(wait)
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("take lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			holder := "another process"
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
					holder = "PID " + strconv.Itoa(pid)
				}
			}
			f.Close()
			return nil, fmt.Errorf("%w (%s holds %s)", ErrLocked, holder, path)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("take lock %s: %w", path, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Release drops the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := l.f.Close()
	l.f = nil
	return err
}
