package fakekernel_test

import (
	"errors"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/kmod"
)

// kernel-abi §1.1, §1.2 (4.12–5.0), §1.4, §3.6: pre-5.1 semantics.
func TestPre51(t *testing.T) {
	t.Run("disabled patch stays and can be re-enabled", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{Features: fakekernel.Linux4_15, SwitchOnStart: true})
		e.mustLoad(lp("p", "f"))
		d := lpDir + "p/"
		e.want(map[string]string{d + "enabled": "1", d + "transition": "0", d + "signal": "", d + "force": "",
			d + "replace": "<missing>", d + "vmlinux/patched": "<missing>", "sys/module/p/refcnt": "1"})
		if err := e.write(d+"enabled", "0"); err != nil {
			t.Fatal(err)
		}
		e.k.Settle(5)
		e.want(map[string]string{d + "enabled": "0", d + "transition": "0", "sys/module/p/refcnt": "0"})
		if !e.exists(d + "vmlinux/f,1") {
			t.Error("a disabled pre-5.1 patch keeps its whole tree")
		}
		wantErrno(t, e.write(d+"enabled", "0"), unix.EINVAL)
		if err := e.write(d+"enabled", "1"); err != nil {
			t.Fatalf("re-enable: %v", err)
		}
		e.want(map[string]string{d + "enabled": "1", "sys/module/p/refcnt": "1"})
		if err := e.write(d+"enabled", "0"); err != nil {
			t.Fatal(err)
		}
		e.k.Settle(5)
		if err := e.fs.Unload("p", 0); err != nil {
			t.Fatalf("rmmod of a disabled patch: %v", err)
		}
		if e.exists(d) {
			t.Error("module_exit unregisters the patch: directory must be gone")
		}
	})
	t.Run("stacking rules", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{Features: fakekernel.Linux4_15, SwitchOnStart: true})
		e.mustLoad(lp("a", "f"))
		e.mustLoad(lp("b", "g"))
		// only the last enabled patch can be disabled
		wantErrno(t, e.write(lpDir+"a/enabled", "0"), unix.EBUSY)
		if err := e.write(lpDir+"b/enabled", "0"); err != nil {
			t.Fatal(err)
		}
		if err := e.write(lpDir+"a/enabled", "0"); err != nil {
			t.Fatal(err)
		}
		// only the first disabled patch can be enabled
		wantErrno(t, e.write(lpDir+"b/enabled", "1"), unix.EBUSY)
		if err := e.write(lpDir+"a/enabled", "1"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("signal", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{Features: fakekernel.Linux4_15})
		e.mustLoad(lp("p", "f"))
		e.k.BlockTask(15)
		if err := e.write(lpDir+"p/signal", "0"); err != nil {
			t.Errorf("signal 0: %v", err)
		}
		n := len(e.k.Messages())
		if err := e.write(lpDir+"p/signal", "1"); err != nil {
			t.Fatal(err)
		}
		wantLines(t, e.logSince(n), []string{"livepatch: signaling remaining tasks"})
		st := e.states()
		if st["100"] != "1" || st["15"] != "0" {
			t.Errorf("after signal: user task %s (want 1), blocked kthread %s (want 0)", st["100"], st["15"])
		}
		e.k.UnblockTask(15)
		e.k.Settle(5)
		wantErrno(t, e.write(lpDir+"p/signal", "1"), unix.EINVAL)
	})
	t.Run("force is global", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{Features: fakekernel.Linux4_15})
		e.mustLoad(lp("a", "f"))
		if err := e.write(lpDir+"a/force", "1"); err != nil {
			t.Fatal(err)
		}
		e.k.Settle(5)
		e.mustLoad(lp("b", "g"))
		e.k.Settle(5)
		if err := e.write(lpDir+"b/enabled", "0"); err != nil {
			t.Fatal(err)
		}
		e.k.Settle(5)
		e.want(map[string]string{lpDir + "b/enabled": "0", "sys/module/b/refcnt": "1"})
	})
	t.Run("load failure unregisters", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{Features: fakekernel.Linux4_15})
		e.mustLoad(lp("a", "f"))
		_, err := e.load(lp("b", "g"))
		wantErrno(t, err, unix.EBUSY)
		if e.exists(lpDir + "b") {
			t.Error("directory of a failed registration")
		}
	})
}

// Kernels without signal have it absent: writes fail with ENOENT.
func TestAttributesByVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		f    fakekernel.Features
		want map[string]string
	}{
		{"5.10", fakekernel.Linux5_10, map[string]string{"force": "", "signal": "<missing>", "replace": "<missing>", "vmlinux/patched": "<missing>", "stack_order": "<missing>"}},
		{"6.1", fakekernel.Linux6_1, map[string]string{"force": "", "replace": "<missing>", "vmlinux/patched": "1", "stack_order": "<missing>"}},
		{"6.12", fakekernel.Linux6_12, map[string]string{"replace": "0", "vmlinux/patched": "1", "stack_order": "<missing>"}},
		{"6.14", fakekernel.Linux6_14, map[string]string{"replace": "0", "stack_order": "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, fakekernel.Options{Features: tc.f})
			e.mustLoad(lp("p", "f"))
			for k, v := range tc.want {
				e.want(map[string]string{lpDir + "p/" + k: v})
			}
			wantErrno(t, e.write(lpDir+"p/signal", "1"), unix.ENOENT)
			wantErrno(t, e.write(lpDir+"p/transition", "0"), unix.EACCES)
		})
	}
}

// kmod's compressed-module paths against the kernel's answers.
func TestCompressedModules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		f      fakekernel.Features
		comp   string
		method kmod.Method
	}{
		{"6.12 xz in kernel", fakekernel.Linux6_12, "xz", kmod.MethodFinitCompressed},
		{"6.12 zstd in user space", fakekernel.Linux6_12, "zstd", kmod.MethodInit},
		{"6.1 EOPNOTSUPP", fakekernel.Linux6_1, "xz", kmod.MethodInit},
		{"5.10 flag unknown EINVAL", fakekernel.Linux5_10, "gzip", kmod.MethodInit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, fakekernel.Options{Features: tc.f})
			res := e.mustLoad(fakekernel.Module{Name: "m", Compression: tc.comp})
			if res.Method != tc.method || res.Compression != tc.comp {
				t.Errorf("method %s compression %s, want %s %s", res.Method, res.Compression, tc.method, tc.comp)
			}
			if !e.k.Loaded("m") {
				t.Error("not loaded")
			}
		})
	}
	t.Run("user space with ignore flags", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{Features: fakekernel.Linux6_1})
		p := e.k.AddModule(t, fakekernel.Module{Name: "m", Compression: "xz"})
		_, err := e.fs.LoadFlags(p, "", unix.MODULE_INIT_IGNORE_VERMAGIC)
		if !errors.Is(err, kmod.ErrInitFlags) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestInitModuleByContent(t *testing.T) {
	t.Parallel()
	k := fakekernel.New(t, fakekernel.Options{})
	p := k.AddModule(t, fakekernel.Module{Name: "m", Params: []fakekernel.Param{{Name: "x", Value: "1"}}})
	img, err := k.Decompress(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.InitModule(img, "x=5 bogus=1"); err != nil {
		t.Fatal(err)
	}
	if err := k.InitModule([]byte("garbage"), ""); !errors.Is(err, unix.ENOEXEC) {
		t.Errorf("unknown image: %v", err)
	}
	fs := k.Loader()
	params, err := fs.Parameters("m")
	if err != nil || params["x"] != "5" {
		t.Errorf("parameters %v %v", params, err)
	}
	if !slices.Contains(k.Messages(), "m: unknown parameter 'bogus' ignored") {
		t.Errorf("messages %q", k.Messages())
	}
	if err := fs.SetParameter("m", "x", "6"); !errors.Is(err, unix.EACCES) {
		t.Errorf("read-only parameter: %v", err)
	}
	if err := fs.SetParameter("m", "nope", "6"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("missing parameter: %v", err)
	}
}
