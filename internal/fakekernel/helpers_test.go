package fakekernel_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/kmod"
)

// env bundles a fake kernel and a kmod.Loader on it.
type env struct {
	t  *testing.T
	k  *fakekernel.Kernel
	fs *kmod.Loader
}

func newEnv(t *testing.T, opts fakekernel.Options) *env {
	t.Helper()
	k := fakekernel.New(t, opts)
	return &env{t: t, k: k, fs: k.Loader()}
}

// lp describes a livepatch module patching vmlinux functions.
func lp(name string, funcs ...string) fakekernel.Module {
	obj := fakekernel.Object{}
	for _, f := range funcs {
		obj.Funcs = append(obj.Funcs, fakekernel.Func{Name: f})
	}
	return fakekernel.Module{Name: name, Livepatch: &fakekernel.Patch{Objects: []fakekernel.Object{obj}}}
}

// path returns the absolute path of rel below the fake root.
func (e *env) path(rel string) string { return filepath.Join(e.k.Root(), rel) }

// read returns the trimmed content of rel, or "<missing>".
func (e *env) read(rel string) string {
	e.t.Helper()
	b, err := os.ReadFile(e.path(rel))
	if errors.Is(err, fs.ErrNotExist) {
		return "<missing>"
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func (e *env) exists(rel string) bool {
	_, err := os.Lstat(e.path(rel))
	return err == nil
}

// want asserts attribute values: rel -> value.
func (e *env) want(kv map[string]string) {
	e.t.Helper()
	var keys []string
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if got := e.read(k); got != kv[k] {
			e.t.Errorf("%s = %q, want %q", k, got, kv[k])
		}
	}
}

// write writes through the kernel's attribute seam.
func (e *env) write(rel, v string) error {
	return e.k.WriteAttr(e.path(rel), v)
}

// load registers and loads m.
func (e *env) load(m fakekernel.Module) (*kmod.LoadResult, error) {
	e.t.Helper()
	return e.fs.Load(e.k.AddModule(e.t, m), "")
}

func (e *env) mustLoad(m fakekernel.Module) *kmod.LoadResult {
	e.t.Helper()
	res, err := e.load(m)
	if err != nil {
		e.t.Fatalf("load %s: %v", m.Name, err)
	}
	return res
}

// states returns tid -> patch_state read from the tree.
func (e *env) states() map[string]string {
	e.t.Helper()
	out := map[string]string{}
	matches, _ := filepath.Glob(e.path("proc/*/task/*/patch_state"))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			e.t.Fatal(err)
		}
		out[filepath.Base(filepath.Dir(m))] = strings.TrimSpace(string(b))
	}
	return out
}

// allStates asserts every task's patch_state is v.
func (e *env) allStates(v string) {
	e.t.Helper()
	st := e.states()
	if len(st) == 0 {
		e.t.Fatal("no tasks")
	}
	for tid, s := range st {
		if s != v {
			e.t.Errorf("task %s patch_state = %s, want %s", tid, s, v)
		}
	}
}

// logSince returns kernel messages logged after n earlier ones.
func (e *env) logSince(n int) []string {
	return e.k.Messages()[n:]
}

func wantLines(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("kernel log:\n got  %q\n want %q", got, want)
	}
}

func wantErrno(t *testing.T, err error, errno error) {
	t.Helper()
	if !errors.Is(err, errno) {
		t.Errorf("err = %v, want %v", err, errno)
	}
}

func newFS(k *fakekernel.Kernel) (*kmod.Loader, error) { return k.Loader(), nil }
