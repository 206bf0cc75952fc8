package kmod

import (
	"bytes"
	"compress/gzip"
	"errors"
	"github.com/klp-project/klp/kernel"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// The real syscalls, used harmlessly: nothing can be loaded from a file
// that is not ELF, and no module has this name. Without CAP_SYS_MODULE
// the kernel answers EPERM first, and a kernel without module support (or
// a sandbox filtering the calls) ENOSYS; each outcome checks the
// translation.
func TestUnixSyscalls(t *testing.T) {
	dir := t.TempDir()
	live, err := kernel.OpenLive(kernel.Roots{})
	if err != nil {
		t.Skipf("not on a machine with sysfs and procfs: %v", err)
	}
	fs := NewLoader(live, Options{})
	err = fs.Unload("klp_no_such_module_x", 0)
	if !errors.Is(err, ErrNotLoaded) && !errors.Is(err, ErrPermission) && !errors.Is(err, ErrNotSupported) {
		t.Errorf("delete_module: %v", err)
	}
	junk := filepath.Join(dir, "junk.ko")
	os.WriteFile(junk, []byte("this is not an ELF module, just text"), 0o644)
	_, err = fs.Load(junk, "")
	if !errors.Is(err, ErrBadModule) && !errors.Is(err, ErrPermission) && !errors.Is(err, ErrSignature) && !errors.Is(err, ErrNotSupported) {
		t.Errorf("finit_module of junk: %v", err)
	}
	err = live.InitModule([]byte("junk"), "")
	if !errors.Is(err, unix.ENOEXEC) && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EKEYREJECTED) && !errors.Is(err, unix.ENOSYS) {
		t.Errorf("init_module of junk: %v", err)
	}
}

func TestDefaultDecompress(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte("\x7fELF image"))
	zw.Close()
	p := filepath.Join(t.TempDir(), "m.ko.gz")
	os.WriteFile(p, buf.Bytes(), 0o644)
	img, err := defaultDecompress(p, 1<<20)
	if err != nil || string(img) != "\x7fELF image" {
		t.Errorf("%q %v", img, err)
	}
}
