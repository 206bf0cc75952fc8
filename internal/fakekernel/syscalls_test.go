package fakekernel_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/kmod"
)

func openFD(t *testing.T, path string) int {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return int(f.Fd())
}

func TestFinitModuleEdges(t *testing.T) {
	t.Parallel()
	k := fakekernel.New(t, fakekernel.Options{})
	other := filepath.Join(t.TempDir(), "x.ko")
	os.WriteFile(other, []byte("\x7fELF unknown"), 0o644)
	if err := k.FinitModule(openFD(t, other), "", 0); !errors.Is(err, unix.ENOEXEC) {
		t.Errorf("unregistered file: %v", err)
	}
	xz := k.AddModule(t, fakekernel.Module{Name: "c", Compression: "xz"})
	if err := k.FinitModule(openFD(t, xz), "", 0); !errors.Is(err, unix.ENOEXEC) {
		t.Errorf("compressed without the flag: %v", err)
	}
	plain := k.AddModule(t, fakekernel.Module{Name: "p"})
	if err := k.FinitModule(openFD(t, plain), "", unix.MODULE_INIT_COMPRESSED_FILE); !errors.Is(err, unix.EINVAL) {
		t.Errorf("flag on an uncompressed file: %v", err)
	}
	if err := k.FinitModule(openFD(t, plain), "", 0x100); !errors.Is(err, unix.EINVAL) {
		t.Errorf("unknown flag: %v", err)
	}
	if err := k.FinitModule(openFD(t, xz), "", unix.MODULE_INIT_COMPRESSED_FILE); err != nil {
		t.Errorf("xz with the flag: %v", err)
	}
	img, _ := k.Decompress(xz, 0)
	if err := k.InitModule(append([]byte{0xfd, '7', 'z', 'X', 'Z', 0}, img...), ""); !errors.Is(err, unix.ENOEXEC) {
		t.Errorf("compressed image to init_module: %v", err)
	}
	if err := k.FinitModule(-1, "", 0); !errors.Is(err, unix.EBADF) {
		t.Errorf("bad fd: %v", err)
	}
	k.SetModulesDisabled(true)
	if err := k.FinitModule(openFD(t, plain), "", 0); !errors.Is(err, unix.EPERM) {
		t.Errorf("modules_disabled: %v", err)
	}
	if err := k.InitModule(img, ""); !errors.Is(err, unix.EPERM) {
		t.Errorf("modules_disabled: %v", err)
	}
}

// A real file registered with AddModuleFile is recognised by inode and
// by content.
func TestAddModuleFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{})
	p := filepath.Join(t.TempDir(), "real.ko")
	os.WriteFile(p, []byte("\x7fELF pretend this is a real module"), 0o644)
	e.k.AddModuleFile(t, p, fakekernel.Module{Name: "real"})
	if _, err := e.fs.Load(p, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.fs.Unload("real", 0); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	if err := e.k.InitModule(data, ""); err != nil {
		t.Errorf("by content: %v", err)
	}
	if e.k.DevRoot() != filepath.Join(e.k.Root(), "dev") || e.k.ProcRoot() != filepath.Join(e.k.Root(), "proc") {
		t.Error("roots")
	}
}

func TestWriteAttrPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{})
	e.mustLoad(fakekernel.Module{Name: "m", Params: []fakekernel.Param{{Name: "b", Value: "N", Writable: true}}})
	wantErrno(t, e.write("sys/kernel/livepatch/none/enabled", "1"), unix.ENOENT)
	wantErrno(t, e.write("sys/module/m/refcnt", "5"), unix.EACCES)
	wantErrno(t, e.write("sys/module/m/parameters/b", "maybe"), unix.EINVAL)
	wantErrno(t, e.write("sys/module/zz/parameters/b", "1"), unix.ENOENT)
	if err := e.write("sys/module/m/parameters/b", "y\n"); err != nil {
		t.Fatal(err)
	}
	e.want(map[string]string{"sys/module/m/parameters/b": "Y"})
	if err := e.write("proc/sys/kernel/tainted", "1"); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, e.write("proc/sys/kernel/tainted", "x"), unix.EINVAL)
	wantErrno(t, e.write("proc/sys/kernel/ftrace_enabled", "x"), unix.EINVAL)
	e.want(map[string]string{"proc/sys/kernel/tainted": "12289"}) // P + O + E
	// Files the fake does not model are written as is.
	p := e.path("proc/custom")
	os.WriteFile(p, nil, 0o644)
	if err := e.k.WriteAttr(p, "v"); err != nil {
		t.Fatal(err)
	}
	e.want(map[string]string{"proc/custom": "v"})
	var pe *os.PathError
	if err := e.write("sys/kernel/livepatch/none/enabled", "1"); !errors.As(err, &pe) || pe.Op != "open" {
		t.Errorf("error shape %#v", err)
	}
}

func TestBadParameter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{})
	p := e.k.AddModule(t, fakekernel.Module{Name: "m", Params: []fakekernel.Param{{Name: "b", Value: "N"}}})
	_, err := e.fs.Load(p, "b=perhaps")
	var le *kmod.LoadError
	if !errors.As(err, &le) || !errors.Is(err, kmod.ErrInvalid) ||
		!slices.Equal(le.KernelMessages(), []string{"m: 'perhaps' invalid for parameter 'b'"}) {
		t.Errorf("err = %v", err)
	}
}

func TestModuleComingFailures(t *testing.T) {
	t.Parallel()
	t.Run("symbol", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{SwitchOnStart: true})
		e.k.SetSymbol("target", "gone_func", 0)
		e.mustLoad(fakekernel.Module{Name: "p", Livepatch: &fakekernel.Patch{Objects: []fakekernel.Object{
			{Name: "target", Funcs: []fakekernel.Func{{Name: "gone_func"}}},
		}}})
		_, err := e.load(fakekernel.Module{Name: "target"})
		var le *kmod.LoadError
		if !errors.As(err, &le) || !errors.Is(err, kmod.ErrInvalid) {
			t.Fatalf("err = %v", err)
		}
		want := []string{
			"livepatch: symbol 'gone_func' not found in symbol table",
			"livepatch: failed to initialize patch 'p' for module 'target' (-22)",
			"livepatch: patch 'p' failed for module 'target', refusing to load module 'target'",
		}
		if !slices.Equal(le.KernelMessages(), want) {
			t.Errorf("messages %q", le.KernelMessages())
		}
	})
	t.Run("ftrace, with an earlier patch reverted", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{SwitchOnStart: true})
		e.mustLoad(fakekernel.Module{Name: "p1", Livepatch: &fakekernel.Patch{Objects: []fakekernel.Object{
			{Name: "target", Funcs: []fakekernel.Func{{Name: "f1"}}},
		}}})
		e.mustLoad(fakekernel.Module{Name: "p2", Livepatch: &fakekernel.Patch{Objects: []fakekernel.Object{
			{Name: "target", Funcs: []fakekernel.Func{{Name: "f2"}}},
		}}})
		e.k.SetIPModifyConflict("f2", true)
		n := len(e.k.Messages())
		_, err := e.load(fakekernel.Module{Name: "target"})
		wantErrno(t, err, unix.EBUSY)
		wantLines(t, e.logSince(n), []string{
			"livepatch: applying patch 'p1' to loading module 'target'",
			"livepatch: applying patch 'p2' to loading module 'target'",
			"livepatch: failed to register ftrace handler for function 'f2' (-16)",
			"livepatch: failed to apply patch 'p2' to module 'target' (-16)",
			"livepatch: patch 'p2' failed for module 'target', refusing to load module 'target'",
			"livepatch: reverting patch 'p1' on unloading module 'target'",
		})
		e.want(map[string]string{lpDir + "p1/target/patched": "0"})
	})
	t.Run("vmlinux name", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{})
		_, err := e.load(fakekernel.Module{Name: "vmlinux"})
		wantErrno(t, err, unix.EINVAL)
	})
	t.Run("pre-5.1 symbol at registration, and a disabled patch is not applied", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{Features: fakekernel.Linux4_15, SwitchOnStart: true})
		e.k.SetSymbol("vmlinux", "nope", 0)
		_, err := e.load(lp("bad", "nope"))
		wantErrno(t, err, unix.EINVAL)
		if e.exists(lpDir + "bad") {
			t.Error("failed registration left a directory")
		}
		e.mustLoad(fakekernel.Module{Name: "p", Livepatch: &fakekernel.Patch{Objects: []fakekernel.Object{
			{Name: "target", Funcs: []fakekernel.Func{{Name: "f"}}},
		}}})
		if err := e.write(lpDir+"p/enabled", "0"); err != nil {
			t.Fatal(err)
		}
		n := len(e.k.Messages())
		e.mustLoad(fakekernel.Module{Name: "target", InTree: true, Signed: true})
		if got := e.logSince(n); len(got) != 0 {
			t.Errorf("a disabled pre-5.1 patch is not applied: %q", got)
		}
	})
}

func TestReplaceStateCompatibility(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{SwitchOnStart: true})
	m := lp("p1", "f")
	m.Livepatch.States = []fakekernel.State{{ID: 7, Version: 1}}
	e.mustLoad(m)
	// A non-replace patch without the state is fine...
	e.mustLoad(lp("p2", "g"))
	// ...a cumulative one must take the state over.
	r := lp("r", "h")
	r.Livepatch.Replace = true
	_, err := e.load(r)
	wantErrno(t, err, unix.EINVAL)
	r2 := lp("r2", "h")
	r2.Livepatch.Replace = true
	r2.Livepatch.States = []fakekernel.State{{ID: 7, Version: 1}}
	e.mustLoad(r2)
	e.k.Settle(5)
	if e.k.TransitionPatch() != "" || e.k.Refcnt("p1") != 0 {
		t.Errorf("transition %q, p1 refcnt %d", e.k.TransitionPatch(), e.k.Refcnt("p1"))
	}
}
