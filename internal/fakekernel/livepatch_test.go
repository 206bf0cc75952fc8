package fakekernel_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/kmod"
)

const lpDir = "sys/kernel/livepatch/"

// Checklist 1, 2 and 8; real-kernel-facts "Behaviour seen on 6.1": the
// three load messages and tainted = 45056.
func TestLoadTransitionComplete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{})
	res := e.mustLoad(lp("test_klp_livepatch", "cmdline_proc_show"))
	wantLines(t, kmod.Messages(res.Log), []string{
		"test_klp_livepatch: loading out-of-tree module taints kernel.",
		"test_klp_livepatch: tainting kernel with TAINT_LIVEPATCH",
		"test_klp_livepatch: module verification failed: signature and/or required key missing - tainting kernel",
		"livepatch: enabling patch 'test_klp_livepatch'",
		"livepatch: 'test_klp_livepatch': starting patching transition",
	})
	d := lpDir + "test_klp_livepatch/"
	e.want(map[string]string{
		d + "enabled":                             "1",
		d + "transition":                          "1",
		d + "replace":                             "0",
		d + "vmlinux/patched":                     "1",
		d + "stack_order":                         "<missing>", // 6.14+
		d + "signal":                              "<missing>", // 4.15-5.0
		d + "force":                               "",
		"sys/module/test_klp_livepatch/refcnt":    "1",
		"sys/module/test_klp_livepatch/taint":     "OEK",
		"sys/module/test_klp_livepatch/initstate": "live",
		"proc/sys/kernel/tainted":                 "45056",
		"proc/modules":                            "test_klp_livepatch 16384 1 - Live 0xffffffffc0a00000 (OEK)",
	})
	if !e.exists(d + "vmlinux/cmdline_proc_show,1") {
		t.Error("function directory cmdline_proc_show,1 missing")
	}
	e.allStates("0")

	n := len(e.k.Messages())
	e.k.Tick()
	e.want(map[string]string{d + "transition": "0", d + "enabled": "1"})
	e.allStates("-1")
	wantLines(t, e.logSince(n), []string{"livepatch: 'test_klp_livepatch': patching complete"})
	if got := e.k.Tainted(); got&fakekernel.TaintLivepatch == 0 {
		t.Errorf("tainted %d lacks TAINT_LIVEPATCH", got)
	}
}

func TestSympos(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{})
	e.k.SetSymbol("vmlinux", "dup", 3)
	m := fakekernel.Module{Name: "p", Livepatch: &fakekernel.Patch{Objects: []fakekernel.Object{
		{Funcs: []fakekernel.Func{{Name: "dup", Sympos: 2}, {Name: "uniq", Sympos: 0}}},
	}}}
	e.mustLoad(m)
	for _, dir := range []string{"dup,2", "uniq,1"} {
		if !e.exists(lpDir + "p/vmlinux/" + dir) {
			t.Errorf("%s missing", dir)
		}
	}
}

// Checklist 7 and kernel-abi §1.8: patched follows the target module.
func TestTargetModuleComingGoing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{SwitchOnStart: true})
	m := fakekernel.Module{Name: "test_klp_mod_patch", Livepatch: &fakekernel.Patch{Objects: []fakekernel.Object{
		{Funcs: []fakekernel.Func{{Name: "cmdline_proc_show"}}},
		{Name: "test_klp_mod_target", Funcs: []fakekernel.Func{{Name: "test_klp_mod_target_show"}}},
	}}}
	e.mustLoad(m)
	d := lpDir + "test_klp_mod_patch/"
	e.want(map[string]string{d + "vmlinux/patched": "1", d + "test_klp_mod_target/patched": "0", d + "transition": "0"})

	n := len(e.k.Messages())
	e.mustLoad(fakekernel.Module{Name: "test_klp_mod_target"})
	e.want(map[string]string{d + "test_klp_mod_target/patched": "1"})
	wantLines(t, e.logSince(n), []string{"livepatch: applying patch 'test_klp_mod_patch' to loading module 'test_klp_mod_target'"})

	n = len(e.k.Messages())
	if err := e.fs.Unload("test_klp_mod_target", 0); err != nil {
		t.Fatal(err)
	}
	e.want(map[string]string{d + "test_klp_mod_target/patched": "0"})
	if !e.exists(d + "test_klp_mod_target/test_klp_mod_target_show,1") {
		t.Error("object directory must stay while the target is unloaded")
	}
	wantLines(t, e.logSince(n), []string{"livepatch: reverting patch 'test_klp_mod_patch' on unloading module 'test_klp_mod_target'"})
}

// test-callbacks.sh: a pre-patch callback failing for a target module
// that loads later refuses that module.
func TestTargetModulePrePatchFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{SwitchOnStart: true})
	e.mustLoad(fakekernel.Module{Name: "demo", Livepatch: &fakekernel.Patch{Objects: []fakekernel.Object{
		{Name: "test_klp_callbacks_mod", Funcs: []fakekernel.Func{{Name: "f"}}, PrePatchErr: unix.ENODEV},
	}}})
	n := len(e.k.Messages())
	_, err := e.load(fakekernel.Module{Name: "test_klp_callbacks_mod"})
	if !errors.Is(err, kmod.ErrNoDevice) || !errors.Is(err, unix.ENODEV) {
		t.Fatalf("err = %v, want ErrNoDevice", err)
	}
	got := e.logSince(n)
	want := []string{
		"livepatch: applying patch 'demo' to loading module 'test_klp_callbacks_mod'",
		"livepatch: pre-patch callback failed for object 'test_klp_callbacks_mod'",
		"livepatch: patch 'demo' failed for module 'test_klp_callbacks_mod', refusing to load module 'test_klp_callbacks_mod'",
	}
	wantLines(t, got, want)
	if e.k.Loaded("test_klp_callbacks_mod") || e.exists("sys/module/test_klp_callbacks_mod") {
		t.Error("refused module is loaded")
	}
}

// kernel-abi §1.2, the 5.1+ enabled_store table, row by row.
func TestEnabledStoreTable(t *testing.T) {
	t.Parallel()
	t.Run("parse error", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{})
		e.mustLoad(lp("p", "f"))
		for _, v := range []string{"x", "", "2", "o"} {
			wantErrno(t, e.write(lpDir+"p/enabled", v), unix.EINVAL)
		}
	})
	t.Run("same value", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{SwitchOnStart: true})
		e.mustLoad(lp("p", "f"))
		for _, v := range []string{"1", "y", "Y\n", "on", "true"} {
			wantErrno(t, e.write(lpDir+"p/enabled", v), unix.EINVAL)
		}
	})
	t.Run("reverse patching", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{})
		e.mustLoad(lp("p", "f"))
		e.k.SwitchTask(1) // one task already runs the new code
		if err := e.write(lpDir+"p/enabled", "0"); err != nil {
			t.Fatal(err)
		}
		e.want(map[string]string{lpDir + "p/enabled": "0", lpDir + "p/transition": "1"})
		st := e.states()
		if st["1"] != "1" || st["100"] != "0" {
			t.Errorf("after reverse: task 1 = %s (switched, now must switch back), task 100 = %s", st["1"], st["100"])
		}
		n := len(e.k.Messages())
		e.k.Tick()
		wantLines(t, e.logSince(n), []string{"livepatch: 'p': unpatching complete"})
		e.want(map[string]string{lpDir + "p/transition": "0", "sys/module/p/refcnt": "1"})
		e.k.Tick() // the async free
		e.want(map[string]string{lpDir + "p/enabled": "<missing>", "sys/module/p/refcnt": "0"})
	})
	t.Run("reverse unpatching", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{SwitchOnStart: true})
		e.mustLoad(lp("p", "f"))
		e.k.BlockTask(100)
		if err := e.write(lpDir+"p/enabled", "0"); err != nil {
			t.Fatal(err)
		}
		if err := e.write(lpDir+"p/enabled", "1"); err != nil {
			t.Fatalf("reverse to patching: %v", err)
		}
		e.want(map[string]string{lpDir + "p/enabled": "1", lpDir + "p/transition": "1"})
		e.k.Tick() // task 100 never left the patched state: done
		e.want(map[string]string{lpDir + "p/enabled": "1", lpDir + "p/transition": "0", "sys/module/p/refcnt": "1"})
	})
	t.Run("other patch in transition", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{SwitchOnStart: true})
		e.mustLoad(lp("a", "f"))
		e.k.BlockTask(100)
		e.mustLoad(lp("b", "g"))
		e.want(map[string]string{lpDir + "b/transition": "1"})
		wantErrno(t, e.write(lpDir+"a/enabled", "0"), unix.EBUSY)
		e.want(map[string]string{lpDir + "a/enabled": "1", lpDir + "a/transition": "0"})
	})
	t.Run("disable", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{SwitchOnStart: true})
		e.mustLoad(lp("p", "f"))
		e.k.BlockTask(100)
		if err := e.write(lpDir+"p/enabled", "0\n"); err != nil {
			t.Fatal(err)
		}
		e.want(map[string]string{lpDir + "p/enabled": "0", lpDir + "p/transition": "1"})
		if st := e.states(); st["1"] != "0" || st["100"] != "1" {
			t.Errorf("unpatching: task 1 = %s, want 0; blocked task 100 = %s, want 1", st["1"], st["100"])
		}
	})
	t.Run("re-enable in the window before the directory goes", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{SwitchOnStart: true})
		e.mustLoad(lp("p", "f"))
		if err := e.write(lpDir+"p/enabled", "0"); err != nil {
			t.Fatal(err)
		}
		// Completed at once (SwitchOnStart); the free is still pending.
		e.want(map[string]string{lpDir + "p/enabled": "0", lpDir + "p/transition": "0"})
		wantErrno(t, e.write(lpDir+"p/enabled", "1"), unix.EINVAL)
		wantErrno(t, e.write(lpDir+"p/enabled", "0"), unix.EINVAL)
		e.k.Flush()
		wantErrno(t, e.write(lpDir+"p/enabled", "1"), unix.ENOENT)
	})
}

// kernel-abi §3.5/§3.6 and the selftests' disable_lp/unload_mod: the dir
// disappears asynchronously, then refcnt drops, then rmmod works.
func TestDisableAndUnload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{SwitchOnStart: true})
	e.mustLoad(lp("test_klp_livepatch", "cmdline_proc_show"))
	d := lpDir + "test_klp_livepatch/"
	e.want(map[string]string{d + "transition": "0"})

	err := e.fs.Unload("test_klp_livepatch", 0)
	if !errors.Is(err, kmod.ErrInUse) || !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("rmmod of an enabled patch: %v, want ErrInUse/EAGAIN", err)
	}

	n := len(e.k.Messages())
	e.k.HoldIdle(true)
	if err := e.write(d+"enabled", "0"); err != nil {
		t.Fatal(err)
	}
	e.want(map[string]string{d + "enabled": "0", d + "transition": "1"})
	e.allStates("0")
	e.k.HoldIdle(false)
	e.k.Tick()
	wantLines(t, e.logSince(n), []string{
		"livepatch: 'test_klp_livepatch': starting unpatching transition",
		"livepatch: 'test_klp_livepatch': unpatching complete",
	})
	// Completed: objects are freed at once, the directory and the
	// reference by the work.
	e.want(map[string]string{d + "enabled": "0", d + "transition": "0", "sys/module/test_klp_livepatch/refcnt": "1"})
	if e.exists(d + "vmlinux") {
		t.Error("object directory still present after klp_free_patch_start")
	}
	e.allStates("-1")
	e.k.Tick()
	if e.exists(d) {
		t.Error("patch directory still present")
	}
	e.want(map[string]string{"sys/module/test_klp_livepatch/refcnt": "0"})
	if err := e.fs.Unload("test_klp_livepatch", 0); err != nil {
		t.Fatal(err)
	}
	if e.exists("sys/module/test_klp_livepatch") || e.read("proc/modules") != "" {
		t.Error("module still visible after rmmod")
	}
	if err := e.fs.Unload("test_klp_livepatch", 0); !errors.Is(err, kmod.ErrNotLoaded) {
		t.Errorf("second rmmod: %v, want ErrNotLoaded", err)
	}
}

// kernel-abi §1.5 and checklist 3/4: force.
func TestForce(t *testing.T) {
	t.Parallel()
	t.Run("not in transition", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{SwitchOnStart: true})
		e.mustLoad(lp("p", "f"))
		wantErrno(t, e.write(lpDir+"p/force", "1"), unix.EINVAL)
		if err := e.write(lpDir+"p/force", "0"); err != nil {
			t.Errorf("force 0: %v, want no-op", err)
		}
		wantErrno(t, e.write(lpDir+"p/force", "maybe"), unix.EINVAL)
	})
	t.Run("forced disable keeps the reference", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{SwitchOnStart: true})
		e.mustLoad(lp("p", "f"))
		e.k.BlockTask(15, "f")
		if err := e.write(lpDir+"p/enabled", "0"); err != nil {
			t.Fatal(err)
		}
		e.k.Tick()
		e.want(map[string]string{lpDir + "p/transition": "1"})
		if got := e.read("proc/15/task/15/stack"); got != "[<0>] f+0x1d/0x60\n[<0>] worker_thread+0xbe/0x3c0\n[<0>] kthread+0xe5/0x120\n[<0>] ret_from_fork+0x1f/0x30" {
			t.Errorf("stack of the blocked task:\n%s", got)
		}
		n := len(e.k.Messages())
		if err := e.write(lpDir+"p/force", "1"); err != nil {
			t.Fatal(err)
		}
		e.allStates("0")
		e.want(map[string]string{lpDir + "p/transition": "1"}) // completes at the next retry
		e.k.Settle(5)
		wantLines(t, e.logSince(n), []string{
			"livepatch: forcing remaining tasks to the patched state",
			"livepatch: 'p': unpatching complete",
		})
		e.want(map[string]string{lpDir + "p/enabled": "<missing>", "sys/module/p/refcnt": "1"})
		if err := e.fs.Unload("p", 0); !errors.Is(err, kmod.ErrInUse) {
			t.Errorf("rmmod of a forced patch: %v, want ErrInUse", err)
		}
	})
	t.Run("forced enable stays removable (5.19+)", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{})
		e.mustLoad(lp("p", "f"))
		e.k.BlockTask(100)
		if err := e.write(lpDir+"p/force", "1"); err != nil {
			t.Fatal(err)
		}
		e.k.UnblockTask(100)
		e.k.Settle(5)
		if err := e.write(lpDir+"p/enabled", "0"); err != nil {
			t.Fatal(err)
		}
		e.k.Settle(5)
		e.want(map[string]string{"sys/module/p/refcnt": "0"})
	})
	t.Run("5.1-5.18 force marks every patch", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{Features: fakekernel.Linux5_10})
		e.mustLoad(lp("p", "f"))
		if err := e.write(lpDir+"p/force", "1"); err != nil {
			t.Fatal(err)
		}
		e.k.Settle(5)
		if err := e.write(lpDir+"p/enabled", "0"); err != nil {
			t.Fatal(err)
		}
		e.k.Settle(5)
		e.want(map[string]string{lpDir + "p/enabled": "<missing>", "sys/module/p/refcnt": "1"})
	})
	t.Run("forced replace keeps the replaced patches' references", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{SwitchOnStart: true})
		e.mustLoad(lp("old", "f"))
		e.k.BlockTask(100)
		m := lp("new", "g")
		m.Livepatch.Replace = true
		e.mustLoad(m)
		if err := e.write(lpDir+"new/force", "1"); err != nil {
			t.Fatal(err)
		}
		e.k.Settle(5)
		e.want(map[string]string{lpDir + "old/enabled": "<missing>", "sys/module/old/refcnt": "1", "sys/module/new/refcnt": "1"})
	})
}

// Checklist 5 and kernel-abi §3.5/§4.1 (test-livepatch.sh "atomic replace").
func TestAtomicReplace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{Features: fakekernel.Linux6_14, SwitchOnStart: true})
	e.mustLoad(lp("test_klp_livepatch", "cmdline_proc_show"))
	e.mustLoad(lp("test_klp_syscall", "__x64_sys_getpid"))
	e.mustLoad(fakekernel.Module{Name: "test_klp_callbacks_demo", Livepatch: &fakekernel.Patch{Objects: []fakekernel.Object{
		{Name: "test_klp_callbacks_mod", Funcs: []fakekernel.Func{{Name: "callbacks_mod_work_func"}}},
	}}})
	e.want(map[string]string{lpDir + "test_klp_callbacks_demo/stack_order": "3"})

	e.k.BlockTask(200)
	rep := fakekernel.Module{Name: "test_klp_atomic_replace",
		Params: []fakekernel.Param{{Name: "replace", Value: "N"}},
		Livepatch: &fakekernel.Patch{ReplaceParam: "replace", Objects: []fakekernel.Object{
			{Funcs: []fakekernel.Func{{Name: "meminfo_proc_show"}}},
		}}}
	if _, err := e.fs.Load(e.k.AddModule(t, rep), "replace=1"); err != nil {
		t.Fatal(err)
	}
	d := lpDir + "test_klp_atomic_replace/"
	e.want(map[string]string{d + "replace": "1", d + "transition": "1", d + "stack_order": "4",
		"sys/module/test_klp_atomic_replace/parameters/replace": "Y"})
	for _, nop := range []string{"vmlinux/cmdline_proc_show,1", "vmlinux/__x64_sys_getpid,1", "vmlinux/meminfo_proc_show,1",
		"test_klp_callbacks_mod/callbacks_mod_work_func,1"} {
		if !e.exists(d + nop) {
			t.Errorf("during the replace transition %s is missing", nop)
		}
	}
	e.want(map[string]string{d + "test_klp_callbacks_mod/patched": "0"})

	e.k.UnblockTask(200)
	e.k.Tick() // completes
	for _, old := range []string{"test_klp_livepatch", "test_klp_syscall", "test_klp_callbacks_demo"} {
		e.want(map[string]string{lpDir + old + "/enabled": "0", "sys/module/" + old + "/refcnt": "1"})
	}
	for _, gone := range []string{"vmlinux/cmdline_proc_show,1", "vmlinux/__x64_sys_getpid,1", "test_klp_callbacks_mod"} {
		if e.exists(d + gone) {
			t.Errorf("nop %s still present after completion", gone)
		}
	}
	e.want(map[string]string{d + "stack_order": "1"})
	e.k.Tick() // the async frees
	for _, old := range []string{"test_klp_livepatch", "test_klp_syscall", "test_klp_callbacks_demo"} {
		e.want(map[string]string{lpDir + old + "/enabled": "<missing>", "sys/module/" + old + "/refcnt": "0"})
		if !e.k.Loaded(old) {
			t.Errorf("%s was unloaded; replaced modules stay loaded", old)
		}
		if err := e.fs.Unload(old, 0); err != nil {
			t.Errorf("rmmod %s: %v", old, err)
		}
	}
	entries := e.read("proc/modules")
	if entries != "test_klp_atomic_replace 16384 1 - Live 0xffffffffc0a30000 (OEK)" {
		t.Errorf("proc/modules = %q", entries)
	}
}

// Checklist 6 / test-sysfs.sh: stack_order renumbers after a removal.
func TestStackOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{Features: fakekernel.Linux6_14, SwitchOnStart: true})
	for _, n := range []string{"p1", "p2", "p3"} {
		e.mustLoad(lp(n, "f_"+n))
	}
	e.want(map[string]string{lpDir + "p1/stack_order": "1", lpDir + "p2/stack_order": "2", lpDir + "p3/stack_order": "3"})
	if err := e.write(lpDir+"p2/enabled", "0"); err != nil {
		t.Fatal(err)
	}
	e.k.Settle(5)
	e.want(map[string]string{lpDir + "p1/stack_order": "1", lpDir + "p2/stack_order": "<missing>", lpDir + "p3/stack_order": "2"})
}

// Checklist 7 / real-kernel-facts: a second load during a transition
// fails with EBUSY and leaves nothing behind.
func TestLoadDuringTransition(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{})
	e.mustLoad(lp("a", "f"))
	n := len(e.k.Messages())
	_, err := e.load(lp("b", "g"))
	if !errors.Is(err, kmod.ErrBusy) || !errors.Is(err, unix.EBUSY) {
		t.Fatalf("err = %v, want ErrBusy/EBUSY", err)
	}
	if e.exists(lpDir+"b") || e.k.Loaded("b") {
		t.Error("failed patch left state behind")
	}
	if got := e.logSince(n); len(got) != 0 {
		t.Errorf("EBUSY from __klp_enable_patch logs nothing, got %q", got)
	}
	// Once a completes, b loads.
	e.k.Tick()
	e.mustLoad(lp("b", "g"))
}

func TestLoadFailures(t *testing.T) {
	t.Parallel()
	t.Run("symbol not found", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{})
		e.k.SetSymbol("", "no_such_func", 0)
		_, err := e.load(lp("p", "no_such_func"))
		var le *kmod.LoadError
		if !errors.As(err, &le) || !errors.Is(err, kmod.ErrInvalid) || !errors.Is(err, unix.EINVAL) {
			t.Fatalf("err = %v, want *LoadError with ErrInvalid", err)
		}
		if !slices.Contains(le.KernelMessages(), "livepatch: symbol 'no_such_func' not found in symbol table") {
			t.Errorf("kernel messages %q", le.KernelMessages())
		}
		if e.exists(lpDir+"p") || e.k.Loaded("p") {
			t.Error("failed patch left state behind")
		}
		if e.k.Tainted()&fakekernel.TaintLivepatch == 0 {
			t.Error("TAINT_LIVEPATCH is set at module load, before init, even if init fails")
		}
	})
	t.Run("ambiguous symbol", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{})
		e.k.SetSymbol("vmlinux", "dup", 2)
		_, err := e.load(lp("p", "dup"))
		var le *kmod.LoadError
		if !errors.As(err, &le) || !slices.Contains(le.KernelMessages(), "livepatch: unresolvable ambiguity for symbol 'dup' in object '(null)'") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("pre-patch callback ENODEV", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{})
		m := lp("test_klp_callbacks_demo", "f")
		m.Livepatch.Objects[0].PrePatchErr = unix.ENODEV
		n := len(e.k.Messages())
		_, err := e.load(m)
		if !errors.Is(err, kmod.ErrNoDevice) {
			t.Fatalf("err = %v, want ErrNoDevice", err)
		}
		wantLines(t, e.logSince(n)[3:], []string{
			"livepatch: enabling patch 'test_klp_callbacks_demo'",
			"livepatch: pre-patch callback failed for object 'vmlinux'",
			"livepatch: failed to enable patch 'test_klp_callbacks_demo'",
			"livepatch: 'test_klp_callbacks_demo': unpatching complete",
		})
		e.allStates("-1")
		if e.k.TransitionPatch() != "" {
			t.Error("transition left open")
		}
	})
	t.Run("ftrace disabled (test-ftrace.sh)", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{DynamicDebug: true})
		if err := e.write("proc/sys/kernel/ftrace_enabled", "0"); err != nil {
			t.Fatal(err)
		}
		n := len(e.k.Messages())
		_, err := e.load(lp("test_klp_livepatch", "cmdline_proc_show"))
		if !errors.Is(err, kmod.ErrBusy) {
			t.Fatalf("err = %v, want ErrBusy", err)
		}
		wantLines(t, e.logSince(n)[3:], []string{
			"livepatch: enabling patch 'test_klp_livepatch'",
			"livepatch: 'test_klp_livepatch': initializing patching transition",
			"livepatch: failed to register ftrace handler for function 'cmdline_proc_show' (-16)",
			"livepatch: failed to patch object 'vmlinux'",
			"livepatch: failed to enable patch 'test_klp_livepatch'",
			"livepatch: 'test_klp_livepatch': canceling patching transition, going to unpatch",
			"livepatch: 'test_klp_livepatch': completing unpatching transition",
			"livepatch: 'test_klp_livepatch': unpatching complete",
		})
		if err := e.write("proc/sys/kernel/ftrace_enabled", "1"); err != nil {
			t.Fatal(err)
		}
		e.mustLoad(lp("test_klp_livepatch", "cmdline_proc_show"))
		wantErrno(t, e.write("proc/sys/kernel/ftrace_enabled", "0"), unix.EBUSY)
	})
	t.Run("kprobe IPMODIFY conflict", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{})
		e.k.SetIPModifyConflict("cmdline_proc_show", true)
		_, err := e.load(lp("p", "cmdline_proc_show"))
		wantErrno(t, err, unix.EBUSY)
	})
	t.Run("incompatible klp_state", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{SwitchOnStart: true})
		m := lp("test_klp_state2", "f")
		m.Livepatch.States = []fakekernel.State{{ID: 1, Version: 2}}
		e.mustLoad(m)
		m3 := lp("test_klp_state3", "f")
		m3.Livepatch.States = []fakekernel.State{{ID: 1, Version: 1}}
		_, err := e.load(m3)
		var le *kmod.LoadError
		if !errors.As(err, &le) || !errors.Is(err, kmod.ErrInvalid) ||
			!slices.Contains(le.KernelMessages(), "livepatch: Livepatch patch (test_klp_state3) is not compatible with the already installed livepatches.") {
			t.Fatalf("err = %v", err)
		}
		if e.k.Refcnt("test_klp_state2") != 1 {
			t.Error("refcnt changed")
		}
	})
	t.Run("no CONFIG_LIVEPATCH", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{NoLivepatch: true})
		if e.exists("sys/kernel/livepatch") {
			t.Fatal("livepatch root exists")
		}
		_, err := e.load(lp("p", "f"))
		if !errors.Is(err, kmod.ErrBadModule) || !errors.Is(err, unix.ENOEXEC) {
			t.Fatalf("err = %v, want ErrBadModule", err)
		}
		e.mustLoad(fakekernel.Module{Name: "plain"})
	})
	t.Run("already loaded", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{})
		e.mustLoad(fakekernel.Module{Name: "m"})
		_, err := e.load(fakekernel.Module{Name: "m"})
		if !errors.Is(err, kmod.ErrAlreadyLoaded) || !errors.Is(err, unix.EEXIST) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("vermagic", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{})
		_, err := e.load(fakekernel.Module{Name: "m", Vermagic: "6.1.0-9-amd64 SMP preempt mod_unload modversions "})
		if !errors.Is(err, kmod.ErrBadModule) {
			t.Fatalf("err = %v", err)
		}
		path := e.k.AddModule(t, fakekernel.Module{Name: "m", Vermagic: "other"})
		if _, err := e.fs.LoadFlags(path, "", unix.MODULE_INIT_IGNORE_VERMAGIC); err != nil {
			t.Errorf("with MODULE_INIT_IGNORE_VERMAGIC: %v", err)
		}
	})
	t.Run("signatures", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{SigEnforce: true})
		if _, err := e.load(fakekernel.Module{Name: "m"}); !errors.Is(err, kmod.ErrSignature) || !errors.Is(err, unix.EKEYREJECTED) {
			t.Errorf("unsigned under sig_enforce: %v", err)
		}
		e.mustLoad(fakekernel.Module{Name: "s", Signed: true})
		if got := e.read("sys/module/s/taint"); got != "O" {
			t.Errorf("signed module taint %q", got)
		}
		e2 := newEnv(t, fakekernel.Options{Lockdown: true})
		if _, err := e2.load(fakekernel.Module{Name: "m"}); !errors.Is(err, kmod.ErrPermission) {
			t.Errorf("unsigned under lockdown: %v", err)
		}
		if _, err := e2.load(fakekernel.Module{Name: "b", Signed: true, BadSignature: true}); !errors.Is(err, kmod.ErrSignature) {
			t.Errorf("bad signature: %v", err)
		}
	})
	t.Run("symbols", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{})
		if _, err := e.load(fakekernel.Module{Name: "m", UnknownSymbols: []string{"foo"}}); !errors.Is(err, kmod.ErrUnknownSymbol) {
			t.Errorf("unknown symbol: %v", err)
		}
		if _, err := e.load(fakekernel.Module{Name: "m", BadCRCSymbols: []string{"foo"}}); !errors.Is(err, kmod.ErrInvalid) {
			t.Errorf("bad CRC: %v", err)
		}
		if _, err := e.load(fakekernel.Module{Name: "m", Uses: []string{"dep"}}); !errors.Is(err, kmod.ErrUnknownSymbol) {
			t.Errorf("missing dependency: %v", err)
		}
	})
	t.Run("modules_disabled", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{})
		e.mustLoad(fakekernel.Module{Name: "m"})
		if err := e.write("proc/sys/kernel/modules_disabled", "1"); err != nil {
			t.Fatal(err)
		}
		wantErrno(t, e.write("proc/sys/kernel/modules_disabled", "0"), unix.EINVAL)
		if _, err := e.load(fakekernel.Module{Name: "n"}); !errors.Is(err, kmod.ErrPermission) {
			t.Errorf("load: %v", err)
		}
		if err := e.fs.Unload("m", 0); !errors.Is(err, kmod.ErrPermission) {
			t.Errorf("unload: %v", err)
		}
	})
	t.Run("init error", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, fakekernel.Options{})
		_, err := e.load(fakekernel.Module{Name: "m", InitErr: unix.ENOMEM, InitLog: []string{"m: out of memory"}})
		var le *kmod.LoadError
		if !errors.As(err, &le) || !errors.Is(err, unix.ENOMEM) || !slices.Contains(kmod.Messages(le.Log), "m: out of memory") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestDeleteModule(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{})
	e.mustLoad(fakekernel.Module{Name: "base"})
	e.mustLoad(fakekernel.Module{Name: "user", Uses: []string{"base"}})
	e.want(map[string]string{"sys/module/base/refcnt": "1"})
	if h, err := e.fs.Holders("base"); err != nil || !slices.Equal(h, []string{"user"}) {
		t.Errorf("holders = %v, %v", h, err)
	}
	if err := e.fs.Unload("base", 0); !errors.Is(err, kmod.ErrInUse) || !errors.Is(err, unix.EAGAIN) {
		t.Errorf("rmmod with holders: %v", err)
	}
	if err := e.fs.Unload("user", 0); err != nil {
		t.Fatal(err)
	}
	if err := e.fs.Unload("base", 0); err != nil {
		t.Fatal(err)
	}
	e.mustLoad(fakekernel.Module{Name: "perm", Permanent: true})
	if got := e.read("proc/modules"); got != "perm 16384 0 [permanent], Live 0xffffffffc0a20000 (OE)" {
		t.Errorf("proc/modules %q", got)
	}
	if err := e.fs.Unload("perm", 0); !errors.Is(err, kmod.ErrInUse) || !errors.Is(err, unix.EBUSY) {
		t.Errorf("rmmod permanent: %v", err)
	}
	if err := e.fs.Unload("nope", 0); !errors.Is(err, kmod.ErrNotLoaded) || !errors.Is(err, unix.ENOENT) {
		t.Errorf("rmmod unknown: %v", err)
	}
}

// The selftests' test_klp_callbacks_busy: a kthread sleeping in the
// patched function holds the transition open until released.
func TestBlockedTransition(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{SwitchOnStart: true})
	e.mustLoad(fakekernel.Module{Name: "test_klp_callbacks_busy",
		Params: []fakekernel.Param{{Name: "block_transition", Value: "N", Writable: true}}})
	e.k.AddTask(fakekernel.Task{PID: 300, PPID: 2, Comm: "kworker/u2:3", Kthread: true})
	e.k.BlockTask(300, "busymod_work_func")

	e.mustLoad(fakekernel.Module{Name: "test_klp_callbacks_demo", Livepatch: &fakekernel.Patch{Objects: []fakekernel.Object{
		{Name: "test_klp_callbacks_busy", Funcs: []fakekernel.Func{{Name: "busymod_work_func"}}},
	}}})
	for i := 0; i < 20; i++ {
		e.k.Tick()
	}
	d := lpDir + "test_klp_callbacks_demo/"
	e.want(map[string]string{d + "transition": "1", "proc/300/task/300/patch_state": "0", "proc/1/task/1/patch_state": "1"})
	if !slices.Contains(e.k.Messages(), "livepatch: signaling remaining tasks") {
		t.Error("no periodic fake signal after 15 retries")
	}
	// A patch that does not touch the function is not blocked by it.
	if err := e.fs.SetParameter("test_klp_callbacks_busy", "block_transition", "0"); err != nil {
		t.Fatal(err)
	}
	e.want(map[string]string{"sys/module/test_klp_callbacks_busy/parameters/block_transition": "N"})
	e.k.UnblockTask(300)
	e.k.Tick()
	e.want(map[string]string{d + "transition": "0", "proc/300/task/300/patch_state": "-1"})
}

// The blocking task only matters if its function is in the patch.
func TestBlockOnlyByPatchedFunctions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{SwitchOnStart: true})
	e.k.BlockTask(100, "unrelated_func")
	e.mustLoad(lp("p", "cmdline_proc_show"))
	e.want(map[string]string{lpDir + "p/transition": "0"})
}

// real-kernel-facts: with 2 CPUs, transition=1 shows with no visible
// blocking task (an idle task has not switched).
func TestHoldIdle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{})
	e.k.HoldIdle(true)
	e.mustLoad(lp("p", "f"))
	e.k.Tick()
	e.want(map[string]string{lpDir + "p/transition": "1"})
	e.allStates("1")
	e.k.HoldIdle(false)
	e.k.Tick()
	e.want(map[string]string{lpDir + "p/transition": "0"})
}

func TestTaskLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{})
	e.mustLoad(lp("p", "f"))
	if !e.k.SwitchTask(200) {
		t.Fatal("SwitchTask failed")
	}
	e.k.AddTask(fakekernel.Task{PID: 200, TID: 203, Comm: "app-worker"}) // thread: leader's state
	e.k.AddTask(fakekernel.Task{PID: 400, PPID: 100, Comm: "child"})     // process: parent's state
	e.want(map[string]string{"proc/200/task/203/patch_state": "1", "proc/400/task/400/patch_state": "0",
		"proc/200/patch_state": "1", "proc/400/comm": "child"})
	e.k.ExitTask(200)
	if e.exists("proc/200") {
		t.Error("exited process still in /proc")
	}
	e.k.Tick()
	e.allStates("-1")
	if e.k.PatchState(400) != -1 || e.k.PatchState(200) != -2 {
		t.Error("PatchState")
	}
	if got := e.read("proc/100/stat"); got[:12] != "100 (sshd) S" {
		t.Errorf("stat %q", got)
	}
}

// Options.AutoTick with kmod's poll-based wait: completion and the async
// free happen without the test ticking.
func TestAutoTick(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{AutoTick: 2 * time.Millisecond})
	e.mustLoad(lp("p", "f"))
	if err := e.write(lpDir+"p/enabled", "0"); err != nil {
		// The transition may already be complete; then disabling works.
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := e.fs.WaitRefcnt(ctx, "p", 0); err != nil {
		t.Fatal(err)
	}
	if err := e.fs.Unload("p", 0); err != nil {
		t.Fatal(err)
	}
}

// TestClock: the fake's clock stands still until a wait sleeps on it, then
// runs the retry work at every whole second and the scheduled events at
// their times, an event before the retry work due at the same time.
func TestClock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{})
	e.mustLoad(lp("p", "f"))
	if e.k.TransitionPatch() != "p" {
		t.Fatal("the transition completed without the retry work")
	}
	c := e.k.Clock()
	start := c.Now()
	var order []string
	e.k.After(time.Second, func() {
		order = append(order, fmt.Sprintf("event at %v, transition %q", e.k.Elapsed(), e.k.TransitionPatch()))
	})
	e.k.After(1500*time.Millisecond, func() {
		order = append(order, fmt.Sprintf("event at %v, transition %q", e.k.Elapsed(), e.k.TransitionPatch()))
	})
	if err := c.Sleep(t.Context(), 999*time.Millisecond); err != nil || len(order) != 0 || e.k.TransitionPatch() != "p" {
		t.Fatalf("before 1s: %v, events %q, transition %q", err, order, e.k.TransitionPatch())
	}
	if err := c.Sleep(t.Context(), time.Second); err != nil {
		t.Fatal(err)
	}
	want := []string{`event at 1s, transition "p"`, `event at 1.5s, transition ""`}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("events %q, want %q", order, want)
	}
	if got := c.Now().Sub(start); got != 1999*time.Millisecond || e.k.Elapsed() != got {
		t.Errorf("clock moved %v (Elapsed %v), want 1.999s", got, e.k.Elapsed())
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Sleep(ctx, time.Second); !errors.Is(err, context.Canceled) || e.k.Elapsed() != 1999*time.Millisecond {
		t.Errorf("Sleep with ctx done: %v, clock at %v", err, e.k.Elapsed())
	}
	if err := c.Sleep(t.Context(), 2*time.Hour); err == nil {
		t.Error("a sleep past the clock's limit did not fail")
	}
}
