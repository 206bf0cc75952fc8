package kmod

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// recorder is an AttrWriter that records writes.
type recorder struct {
	mu     sync.Mutex
	writes []string
	err    error
}

func (r *recorder) WriteAttr(path, value string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, path+"="+value)
	return r.err
}

func sysTree(t *testing.T, files map[string]string) (*Loader, string, *recorder) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "proc"), 0o755)
	os.MkdirAll(filepath.Join(dir, "sys"), 0o755)
	for p, c := range files {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if c == "<dir>" {
			os.MkdirAll(full, 0o755)
			continue
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rec := &recorder{}
	return NewLoader(simulated(t, dir, nil, rec), Options{}), dir, rec
}

func TestSysModule(t *testing.T) {
	fs, _, rec := sysTree(t, map[string]string{
		"proc/modules":                             "p 16384 1 - Live 0xffffffffc0a00000 (OEK)\nbase 8192 1 p, Live 0x0\n",
		"sys/module/p/refcnt":                      "1\n",
		"sys/module/p/taint":                       "OEK\n",
		"sys/module/p/initstate":                   "live\n",
		"sys/module/p/holders":                     "<dir>",
		"sys/module/base/refcnt":                   "1\n",
		"sys/module/base/holders/p":                "",
		"sys/module/p/parameters/block_transition": "N\n",
		"sys/module/p/parameters/count":            "3\n",
		"sys/module/builtin/parameters/x":          "1\n",
		"sys/module/bad/refcnt":                    "one\n",
		"sys/module/compression":                   "zstd\n",
	})
	if n, err := fs.Refcnt("p"); n != 1 || err != nil {
		t.Errorf("Refcnt = %d, %v", n, err)
	}
	if s, err := fs.Taint("p"); s != "OEK" || err != nil {
		t.Errorf("Taint = %q, %v", s, err)
	}
	if s, err := fs.InitState("p"); s != "live" || err != nil {
		t.Errorf("InitState = %q, %v", s, err)
	}
	if h, err := fs.Holders("base"); !cmp.Equal(h, []string{"p"}) || err != nil {
		t.Errorf("Holders = %v, %v", h, err)
	}
	if h, err := fs.Holders("p"); len(h) != 0 || err != nil {
		t.Errorf("Holders = %v, %v", h, err)
	}
	params, err := fs.Parameters("p")
	if diff := cmp.Diff(map[string]string{"block_transition": "N", "count": "3"}, params); diff != "" || err != nil {
		t.Errorf("Parameters %v: %s", err, diff)
	}
	if params, err := fs.Parameters("base"); len(params) != 0 || err != nil {
		t.Errorf("Parameters(base) = %v, %v", params, err)
	}
	if c, err := fs.Compression(); c != "zstd" || err != nil {
		t.Errorf("Compression = %q, %v", c, err)
	}
	m, err := fs.Module("p")
	if err != nil || m.Taints != "OEK" {
		t.Errorf("Module = %v, %v", m, err)
	}
	ms, err := fs.Modules()
	if err != nil || len(ms) != 2 || !cmp.Equal(ms[1].Holders, []string{"p"}) {
		t.Errorf("Modules = %v, %v", ms, err)
	}

	// Absent modules and built-ins.
	for _, f := range []func() error{
		func() error { _, err := fs.Refcnt("gone"); return err },
		func() error { _, err := fs.Refcnt("builtin"); return err },
		func() error { _, err := fs.Taint("gone"); return err },
		func() error { _, err := fs.Holders("gone"); return err },
		func() error { _, err := fs.Parameters("gone"); return err },
		func() error { _, err := fs.Module("gone"); return err },
	} {
		if err := f(); !errors.Is(err, ErrNotLoaded) {
			t.Errorf("err = %v, want ErrNotLoaded", err)
		}
	}
	if _, err := fs.Refcnt("bad"); !errors.Is(err, ErrParse) {
		t.Errorf("bad refcnt: %v", err)
	}
	if _, err := fs.Refcnt("../../etc"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("escape: %v", err)
	}

	// Parameters go through the AttrWriter seam.
	if err := fs.SetParameter("p", "block_transition", "0"); err != nil {
		t.Fatal(err)
	}
	if len(rec.writes) != 1 || filepath.Base(rec.writes[0]) != "block_transition=0" {
		t.Errorf("writes %v", rec.writes)
	}
	rec.err = &os.PathError{Op: "write", Path: "x", Err: unix.EINVAL}
	if err := fs.SetParameter("p", "count", "x"); !errors.Is(err, unix.EINVAL) {
		t.Errorf("err = %v", err)
	}
	rec.err = &os.PathError{Op: "open", Path: "x", Err: unix.ENOENT}
	if err := fs.SetParameter("gone", "x", "1"); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("err = %v", err)
	}
	for _, bad := range []string{"", "../x", "a/b"} {
		if err := fs.SetParameter("p", bad, "1"); err == nil {
			t.Errorf("parameter %q accepted", bad)
		}
	}
}

func TestCompressionAbsent(t *testing.T) {
	fs, _, _ := sysTree(t, nil)
	if c, err := fs.Compression(); c != "" || err != nil {
		t.Errorf("Compression = %q, %v", c, err)
	}
}

func TestWaitRefcnt(t *testing.T) {
	fs, dir, _ := sysTree(t, map[string]string{"sys/module/p/refcnt": "1\n"})
	refcnt := filepath.Join(dir, "sys/module/p/refcnt")
	// The reference drops while WaitRefcnt polls (or before its first
	// check: either way it must return nil once it reads 0).
	dropped := make(chan error, 1)
	go func() {
		if err := os.WriteFile(refcnt+".tmp", []byte("0\n"), 0o644); err != nil {
			dropped <- err
			return
		}
		dropped <- os.Rename(refcnt+".tmp", refcnt)
	}()
	if err := fs.WaitRefcnt(t.Context(), "p", 0); err != nil {
		t.Fatal(err)
	}
	if err := <-dropped; err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	err := fs.WaitRefcnt(ctx, "p", 5)
	if !errors.Is(err, context.DeadlineExceeded) || err.Error() != "wait for p refcnt 5 (now 0): context deadline exceeded" {
		t.Errorf("err = %v", err)
	}
	os.RemoveAll(filepath.Join(dir, "sys/module/p"))
	if err := fs.WaitRefcnt(t.Context(), "p", 0); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("module gone: %v", err)
	}
}
