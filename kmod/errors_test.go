package kmod

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestLoadErrno(t *testing.T) {
	for _, tc := range []struct {
		errno unix.Errno
		cat   error
	}{
		{unix.EEXIST, ErrAlreadyLoaded},
		{unix.EBUSY, ErrBusy},
		{unix.ENOEXEC, ErrBadModule},
		{unix.EINVAL, ErrInvalid},
		{unix.EKEYREJECTED, ErrSignature},
		{unix.ENOKEY, ErrSignature},
		{unix.EBADMSG, ErrSignature},
		{unix.ENOPKG, ErrSignature},
		{unix.EPERM, ErrPermission},
		{unix.ENOENT, ErrUnknownSymbol},
		{unix.ENODEV, ErrNoDevice},
		{unix.ENOSYS, ErrNotSupported},
		{unix.ENOMEM, nil},
	} {
		err := loadErrno(tc.errno, "/x.ko")
		if !errors.Is(err, tc.errno) {
			t.Errorf("%v: errno lost: %v", tc.errno, err)
		}
		if tc.cat != nil && !errors.Is(err, tc.cat) {
			t.Errorf("%v: %v does not wrap %v", tc.errno, err, tc.cat)
		}
		if !strings.Contains(err.Error(), "load /x.ko") {
			t.Errorf("%v: message %q", tc.errno, err)
		}
	}
	if err := loadErrno(errors.New("odd"), "/x.ko"); err.Error() != "load /x.ko: odd" {
		t.Errorf("non-errno: %v", err)
	}
	err := loadErrno(unix.EBUSY, "/x.ko")
	if got := err.Error(); got != "busy: load /x.ko: device or resource busy" {
		t.Errorf("message %q", got)
	}
}

func TestDeleteErrno(t *testing.T) {
	for _, tc := range []struct {
		errno unix.Errno
		cat   error
	}{
		{unix.ENOENT, ErrNotLoaded},
		{unix.EAGAIN, ErrInUse},
		{unix.EBUSY, ErrInUse},
		{unix.EPERM, ErrPermission},
		{unix.ENOSYS, ErrNotSupported},
		{unix.EFAULT, nil},
	} {
		err := deleteErrno(tc.errno, "m")
		if !errors.Is(err, tc.errno) || (tc.cat != nil && !errors.Is(err, tc.cat)) {
			t.Errorf("%v: %v", tc.errno, err)
		}
	}
	if errors.Is(deleteErrno(unix.EBUSY, "m"), ErrBusy) {
		t.Error("delete EBUSY is ErrInUse, not the load-time ErrBusy")
	}
}
