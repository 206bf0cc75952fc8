package snapshot

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrNotCaptured is the error of a read of a file that the snapshot knows
// exists but did not capture (a directory entry listed for its name only).
var ErrNotCaptured = errors.New("not captured in the snapshot")

// ErrCorrupt reports an archive that is not a readable klp snapshot:
// truncated, corrupted, hostile (a name outside the tree, a link, a
// device), too large, or of a newer format version. Every error of [Read]
// wraps it.
var ErrCorrupt = errors.New("not a readable klp snapshot")

// errnos maps errno names (EACCES) to their values, built once from
// package unix's table.
var errnos = sync.OnceValue(func() map[string]syscall.Errno {
	m := map[string]syscall.Errno{}
	for e := syscall.Errno(1); e < 4096; e++ {
		if n := unix.ErrnoName(e); n != "" {
			if _, dup := m[n]; !dup {
				m[n] = e
			}
		}
	}
	return m
})

// encodeError returns the ERROR field of an error record: the errno's name
// when err carries one, else err's text, quoted.
func encodeError(err error) string {
	var e syscall.Errno
	if errors.As(err, &e) {
		if n := unix.ErrnoName(e); n != "" {
			return n
		}
	}
	return strconv.Quote(errText(err))
}

// errText is err's text without the paths that *os.PathErrors add: the
// record names the path.
func errText(err error) string {
	for {
		var pe *os.PathError
		if !errors.As(err, &pe) {
			return err.Error()
		}
		err = pe.Err
	}
}

// decodeError is the inverse of encodeError: a syscall.Errno for a known
// name, the message for a quoted text; the messages klp's own sentinels
// print come back as those sentinels, so that errors.Is holds.
func decodeError(field string) (error, error) {
	if field == "" {
		return nil, fmt.Errorf("%w: empty error field", ErrCorrupt)
	}
	if field[0] == '"' {
		s, err := strconv.Unquote(field)
		if err != nil || s == "" {
			return nil, fmt.Errorf("%w: bad error text %.40q", ErrCorrupt, field)
		}
		if s == ErrNotCaptured.Error() {
			return ErrNotCaptured, nil
		}
		return errors.New(s), nil
	}
	if e, ok := errnos()[field]; ok {
		return e, nil
	}
	return nil, fmt.Errorf("%w: unknown errno name %.40q", ErrCorrupt, field)
}
