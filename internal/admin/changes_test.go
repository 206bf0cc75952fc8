package admin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/livepatch"
	"github.com/klp-project/klp/modinfo"
)

// Tests of what a change reports when it fails, of load --all and unload
// --all, of the wait for a module's reference, and of list.

// TestFailedChangesSayWhatHappened: a change that fails is "failed", with
// its error and a duration, for one patch and for each of --all.
func TestFailedChangesSayWhatHappened(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	ctx := context.Background()
	for name, f := range map[string]func() (*Outcome, error){
		"disable": func() (*Outcome, error) { return e.m.Disable(ctx, "nosuch", WaitOptions{}) },
		"wait":    func() (*Outcome, error) { return e.m.Wait(ctx, "nosuch", WaitOptions{}) },
		"unload":  func() (*Outcome, error) { return e.m.Unload(ctx, "nosuch", WaitOptions{}) },
	} {
		o, err := f()
		if !errors.Is(err, livepatch.ErrNotFound) || o.Result != ResultFailed || o.Err != err || o.Elapsed <= 0 {
			t.Errorf("%s of a missing patch: %+v, %v; want failed, with the error and a duration", name, o, err)
		}
	}
}

// TestLoadAll: klp.enable=0 anywhere on the command line turns it off, and
// only that word does; the error counts the failed and the skipped
// patches apart; every outcome has a duration.
func TestLoadAll(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	st := e.cfg.Store
	install := func(name, fn string) {
		t.Helper()
		src := e.patchModule(t, name, false, fn)
		in, err := st.Install(src, name, release)
		if err != nil {
			t.Fatal(err)
		}
		e.specs[in.Path] = e.specs[src]
		e.k.AddModuleFile(t, in.Path, fakekernel.Module{Name: name, Livepatch: &fakekernel.Patch{Objects: []fakekernel.Object{{Name: "vmlinux", Funcs: []fakekernel.Func{{Name: fn}}}}}})
	}
	cmdline := filepath.Join(e.k.ProcRoot(), "cmdline")
	ctx := context.Background()
	w := WaitOptions{Timeout: 5 * time.Second}

	write(t, cmdline, "BOOT_IMAGE=/vmlinuz root=/dev/vda ro klp.enable=1 quiet\n")
	if r, err := e.m.LoadAll(ctx, BootOptions{Wait: w}); err != nil || r.Result != ResultNone || len(r.Outcomes) != 0 || r.Release != release {
		t.Errorf("nothing installed: %+v, %v; want none for %s", r, err, release)
	}
	install("lp_a", "f_a")
	install("lp_b", "f_b")
	install("lp_c", "f_c")
	e.k.SetSymbol("vmlinux", "f_b", 0)
	if err := st.MarkLoading(release, "lp_c"); err != nil { // lp_c crashed a boot
		t.Fatal(err)
	}
	r, err := e.m.LoadAll(ctx, BootOptions{Wait: w})
	if !errors.Is(err, ErrSomeFailed) || !strings.Contains(err.Error(), "1 failed, 1 skipped") || r.Result != ResultIncomplete {
		t.Fatalf("LoadAll = %+v, %v; want incomplete, 1 failed, 1 skipped", r, err)
	}
	var got []string
	for _, o := range r.Outcomes {
		got = append(got, o.Patch+" "+o.Result)
		if o.Elapsed <= 0 && o.Result != ResultSkipped {
			t.Errorf("%s: no duration", o.Patch)
		}
		if (o.Result == ResultPatched) != (o.Err == nil) {
			t.Errorf("%s: result %s, error %v", o.Patch, o.Result, o.Err)
		}
	}
	if diff := cmp.Diff([]string{"lp_a patched", "lp_b failed", "lp_c skipped"}, got); diff != "" {
		t.Errorf("outcomes: unexpected diff (-want +got):\n%s", diff)
	}
	if !e.k.Loaded("lp_a") || e.k.Loaded("lp_b") || e.k.Loaded("lp_c") {
		t.Errorf("loaded: lp_a %v, lp_b %v, lp_c %v; want lp_a only", e.k.Loaded("lp_a"), e.k.Loaded("lp_b"), e.k.Loaded("lp_c"))
	}

	write(t, cmdline, "klp.enable=0\n")
	if r, err := e.m.LoadAll(ctx, BootOptions{Wait: w}); err != nil || r.Result != ResultDisabled || len(r.Outcomes) != 0 {
		t.Errorf("klp.enable=0: %+v, %v", r, err)
	}
}

// TestUnloadAll: unload --all removes every patch module and says so;
// one that cannot be removed is "failed" among the others, and the whole
// is incomplete.
func TestUnloadAll(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	ctx := context.Background()
	w := WaitOptions{Timeout: 5 * time.Second, RefTimeout: 5 * time.Second}
	for _, n := range []string{"lp_a", "lp_b"} {
		if _, err := e.load(ctx, e.patchModule(t, n, false, "f_"+n), w); err != nil {
			t.Fatal(err)
		}
	}
	o, err := e.m.UnloadAll(ctx, w)
	if err != nil || o.Result != ResultRemoved || len(o.Outcomes) != 2 {
		t.Fatalf("UnloadAll = %+v, %v; want both removed", o, err)
	}
	for _, s := range o.Outcomes {
		if s.Result != ResultRemoved || s.Err != nil || s.Elapsed <= 0 {
			t.Errorf("%s: %+v", s.Patch, s)
		}
	}
	if o, err := e.m.UnloadAll(ctx, w); err != nil || o.Result != ResultRemoved || len(o.Outcomes) != 0 {
		t.Errorf("UnloadAll with nothing loaded = %+v, %v; want removed, nothing to do", o, err)
	}

	// lp_pinned is forced during its unpatching: the kernel keeps it.
	for _, n := range []string{"lp_c", "lp_pinned"} {
		if _, err := e.load(ctx, e.patchModule(t, n, false, "f_"+n), w); err != nil {
			t.Fatal(err)
		}
	}
	e.forceUnpatching(t, "lp_pinned")
	// Time for two passes, each waiting for lp_pinned's reference.
	o, err = e.m.UnloadAll(ctx, WaitOptions{Timeout: time.Minute})
	if !errors.Is(err, ErrForced) || o.Result != ResultIncomplete {
		t.Fatalf("UnloadAll with a forced patch = %+v, %v; want incomplete, ErrForced", o, err)
	}
	results := map[string]string{}
	for _, s := range o.Outcomes {
		results[s.Patch] = s.Result
		if s.Result == ResultFailed && (!errors.Is(s.Err, ErrForced) || s.Elapsed <= 0) {
			t.Errorf("%s: %+v", s.Patch, s)
		}
	}
	if diff := cmp.Diff(map[string]string{"lp_c": ResultRemoved, "lp_pinned": ResultFailed}, results); diff != "" {
		t.Errorf("outcomes: unexpected diff (-want +got):\n%s", diff)
	}
	if e.k.Loaded("lp_c") || !e.k.Loaded("lp_pinned") {
		t.Errorf("loaded: lp_c %v, lp_pinned %v", e.k.Loaded("lp_c"), e.k.Loaded("lp_pinned"))
	}
}

// TestUnloadAllWithoutTimeout: unload --all without --timeout gives each
// module as long as it needs, not a deadline already passed.
func TestUnloadAllWithoutTimeout(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	ctx := context.Background()
	for _, n := range []string{"lp_a", "lp_b"} {
		if _, err := e.load(ctx, e.patchModule(t, n, false, "f_"+n), WaitOptions{Timeout: 5 * time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	o, err := e.m.UnloadAll(ctx, WaitOptions{})
	if err != nil || o.Result != ResultRemoved || len(o.Outcomes) != 2 {
		t.Fatalf("UnloadAll = %+v, %v; want both removed", o, err)
	}
	if e.k.Loaded("lp_a") || e.k.Loaded("lp_b") {
		t.Error("patches left loaded")
	}
}

// TestUnloadAllReferenceWait: within unload --all, the wait for a module's
// reference gets what is left of --timeout (not the 15 s default), or its
// own --ref-timeout when that is shorter.
func TestUnloadAllReferenceWait(t *testing.T) {
	for _, tc := range []struct {
		ref         time.Duration
		least, most time.Duration // of the whole run, on the kernel's clock
		message     string
	}{
		{0, 55 * time.Second, 65 * time.Second, "reference count still 1 after "},
		{2 * time.Second, 2 * time.Second, 10 * time.Second, "reference count still 1 after 2s"},
	} {
		e := newEnv(t, fakekernel.Options{})
		ctx := context.Background()
		if _, err := e.load(ctx, e.patchModule(t, "lp", false, "f"), WaitOptions{Timeout: 5 * time.Second}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.k.Loader().Load(e.k.AddModule(t, fakekernel.Module{Name: "lp_user", Uses: []string{"lp"}}), ""); err != nil {
			t.Fatal(err)
		}
		start := e.k.Elapsed()
		o, err := e.m.UnloadAll(ctx, WaitOptions{Timeout: time.Minute, RefTimeout: tc.ref})
		d := e.k.Elapsed() - start
		if !errors.Is(err, ErrStillReferenced) || !strings.Contains(err.Error(), tc.message) || o.Result != ResultIncomplete {
			t.Fatalf("--ref-timeout %v: UnloadAll of a module in use = %+v, %v; want incomplete, %q", tc.ref, o, err, tc.message)
		}
		if d < tc.least || d > tc.most {
			t.Errorf("--ref-timeout %v: the run took %v on the kernel's clock, want %v to %v", tc.ref, d, tc.least, tc.most)
		}
		if !e.k.Loaded("lp") {
			t.Errorf("--ref-timeout %v: the module in use was removed", tc.ref)
		}
	}
}

// TestForcedIsToldQuickly: a forced patch is recognised a second after
// its directory went (the kernel frees the directory and drops the
// reference in one work item), not at the end of the reference timeout;
// a patch whose reference drops a moment after its directory is not
// forced.
func TestForcedIsToldQuickly(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	ctx := context.Background()
	w := WaitOptions{Timeout: 5 * time.Second, RefTimeout: time.Hour / 2}
	if _, err := e.load(ctx, e.patchModule(t, "lp", false, "f"), w); err != nil {
		t.Fatal(err)
	}
	e.k.BlockTask(100)
	if err := e.m.Ctl.Disable("lp"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Ctl.Force("lp"); err != nil {
		t.Fatal(err)
	}
	start := e.k.Elapsed()
	o, err := e.m.Unload(ctx, "lp", w)
	if !errors.Is(err, ErrForced) || !strings.Contains(err.Error(), "reboot") || o.Result != ResultUnpatched || !e.k.Loaded("lp") {
		t.Fatalf("Unload of a forced patch = %+v, %v; want unpatched, ErrForced, the module kept", o, err)
	}
	if d := e.k.Elapsed() - start; d > 5*time.Second {
		t.Errorf("told after %v on the kernel's clock, want within a few seconds", d)
	}
	// With a reference timeout shorter than that second, it is told at
	// the timeout.
	if _, err := e.m.Unload(ctx, "lp", WaitOptions{Timeout: 5 * time.Second, RefTimeout: 500 * time.Millisecond}); !errors.Is(err, ErrForced) {
		t.Errorf("Unload with a short reference timeout: %v, want ErrForced", err)
	}
}

// deadlineCtx is a context whose deadline passes when the fake kernel's
// clock reaches a time: the deadline of the whole command (load --all's
// total), on the kernel's clock.
type deadlineCtx struct {
	context.Context
	done chan struct{}
}

func newDeadlineCtx(k *fakekernel.Kernel, d time.Duration) *deadlineCtx {
	c := &deadlineCtx{Context: context.Background(), done: make(chan struct{})}
	k.After(d, func() { close(c.done) })
	return c
}

func (c *deadlineCtx) Done() <-chan struct{} { return c.done }

func (c *deadlineCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// TestCommandDeadlineDuringTheReferenceWait: when the command's own
// deadline passes while klp waits for a module's reference, the error says
// the command was interrupted and where the patch stands: the module is
// neither forced nor known to be in use.
func TestCommandDeadlineDuringTheReferenceWait(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	if _, err := e.load(context.Background(), e.patchModule(t, "lp", false, "f"), WaitOptions{Timeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.k.Loader().Load(e.k.AddModule(t, fakekernel.Module{Name: "lp_user", Uses: []string{"lp"}}), ""); err != nil {
		t.Fatal(err)
	}
	_, err := e.m.Unload(newDeadlineCtx(e.k, 5*time.Second), "lp", WaitOptions{Timeout: 3 * time.Second, RefTimeout: time.Minute})
	if !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), "its module is still loaded") ||
		errors.Is(err, ErrStillReferenced) || errors.Is(err, ErrForced) {
		t.Errorf("Unload past the command's deadline: %v; want interrupted, the module still loaded, only", err)
	}
	if !e.k.Loaded("lp") {
		t.Error("the module in use was removed")
	}
}

// TestReleaseAfterTheDirectory: a patch whose module reference drops a
// moment after its directory went is removed, not taken for forced.
func TestReleaseAfterTheDirectory(t *testing.T) {
	e := newEnv(t, fakekernel.Options{ReleaseDelay: 500 * time.Millisecond})
	ctx := context.Background()
	w := WaitOptions{Timeout: 5 * time.Second}
	if _, err := e.load(ctx, e.patchModule(t, "lp", false, "f"), w); err != nil {
		t.Fatal(err)
	}
	if o, err := e.m.Unload(ctx, "lp", w); err != nil || o.Result != ResultRemoved || e.k.Loaded("lp") {
		t.Errorf("Unload = %+v, %v; want removed", o, err)
	}
}

// TestReferenceWait: the wait for a module's reference. A module another
// one uses is still referenced: not forced, and the error says how long
// klp waited (15 s unless told, or --timeout when that is shorter); a
// cancelled wait is neither.
func TestReferenceWait(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	ctx := context.Background()
	for _, c := range []struct {
		name          string
		timeout, want time.Duration
	}{
		{"lp", time.Minute, 15 * time.Second},
		{"lpshort", 5 * time.Second, 5 * time.Second},
		{"lpnone", 0, 15 * time.Second}, // no --timeout: the default still bounds it
	} {
		if _, err := e.load(ctx, e.patchModule(t, c.name, false, "f_"+c.name), WaitOptions{Timeout: 5 * time.Second}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.k.Loader().Load(e.k.AddModule(t, fakekernel.Module{Name: c.name + "_user", Uses: []string{c.name}}), ""); err != nil {
			t.Fatal(err)
		}
		start := e.k.Elapsed()
		o, err := e.m.Unload(ctx, c.name, WaitOptions{Timeout: c.timeout})
		if !errors.Is(err, ErrStillReferenced) || errors.Is(err, ErrForced) ||
			!strings.Contains(err.Error(), fmt.Sprintf("reference count still 1 after %s", c.want)) {
			t.Fatalf("--timeout %v: Unload of a module in use = %+v, %v; want ErrStillReferenced after %v", c.timeout, o, err, c.want)
		}
		if d := e.k.Elapsed() - start; d < c.want || d > c.want+5*time.Second {
			t.Errorf("--timeout %v: waited %v on the kernel's clock, want %v (after the transition)", c.timeout, d, c.want)
		}
		if !e.k.Loaded(c.name) {
			t.Errorf("--timeout %v: the module in use was removed", c.timeout)
		}
	}

	// Cancelled while it waits for the reference (Ctrl-C).
	if _, err := e.k.Loader().Load(e.patchModule(t, "lp2", false, "f2"), ""); err != nil {
		t.Fatal(err)
	}
	e.k.Settle(10)
	if _, err := e.k.Loader().Load(e.k.AddModule(t, fakekernel.Module{Name: "lp2_user", Uses: []string{"lp2"}}), ""); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.k.After(5*time.Second, cancel)
	_, err := e.m.Unload(cctx, "lp2", WaitOptions{Timeout: 5 * time.Second, RefTimeout: time.Minute})
	if !errors.Is(err, ErrInterrupted) || errors.Is(err, ErrStillReferenced) || errors.Is(err, ErrForced) {
		t.Errorf("cancelled reference wait: %v; want interrupted only", err)
	}
}

// TestProgressWhenTasksCannotBeCounted: progress reports -1 tasks left
// when the blocking tasks cannot be counted, and the count otherwise.
func TestProgressWhenTasksCannotBeCounted(t *testing.T) {
	e := newEnv(t, fakekernel.Options{SwitchOnStart: true})
	var progress []Progress
	e.cfg.Progress = func(p Progress) { progress = append(progress, p) }
	e.cfg.ProgressInterval = 100 * time.Millisecond
	e.m = NewChanger(e.k.Live(), e.cfg)
	e.k.BlockTask(100)
	e.k.BlockTask(200)
	// At 250 ms the livepatch directory cannot be listed any more.
	e.k.After(250*time.Millisecond, func() {
		e.k.InjectReadFault(filepath.Join(e.k.SysRoot(), "kernel", "livepatch"), syscall.EIO)
	})
	if _, err := e.load(context.Background(), e.patchModule(t, "lp", false, "f"), WaitOptions{Timeout: 500 * time.Millisecond, OnStall: StallLeave}); !errors.Is(err, livepatch.ErrStalled) {
		t.Fatal(err)
	}
	var left []int
	for _, p := range progress {
		left = append(left, p.TasksLeft)
		if p.Patch != "lp" {
			t.Errorf("progress %+v", p)
		}
	}
	// The tasks are counted in the background (main's progress line): the
	// first line shows -1 ("counting tasks"), the others the count once
	// it is done, or -1 still; never a count that is not the two tasks.
	if len(left) != 4 || left[0] != -1 {
		t.Fatalf("tasks left at 100, 200, 300, 400 ms: %v; want four lines, the first -1", left)
	}
	for _, n := range left {
		if n != 2 && n != -1 {
			t.Errorf("tasks left at 100, 200, 300, 400 ms: %v; want 2 or -1", left)
			break
		}
	}
}

// TestCheckModule: a module without a vermagic is not refused for its
// kernel; one without a name, or with an invalid one, is.
func TestCheckModule(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	for _, tc := range []struct {
		mod  modinfo.Module
		want string // "" for no error
	}{
		{modinfo.Module{Name: "lp", Livepatch: true}, ""},
		{modinfo.Module{Name: "lp", Livepatch: true, Vermagic: release + " SMP"}, ""},
		{modinfo.Module{Name: "lp", Livepatch: true, Vermagic: "6.1.0 SMP"}, "built for 6.1.0, running " + release},
		{modinfo.Module{Livepatch: true}, "cannot tell the module's name"},
		{modinfo.Module{Name: "../x", Livepatch: true}, "the module's own name"},
		{modinfo.Module{Name: "plain"}, "not a livepatch module"},
	} {
		err := e.m.CheckModule("/m.ko", &tc.mod)
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckModule(%+v) = %v, want %q", tc.mod, err, tc.want)
		}
	}
}

// TestLoadWithPreflight: a load whose cheap preflight checks pass loads,
// and reports them; one refused names the module file when the module has
// no name.
func TestLoadWithPreflight(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	path := e.patchModule(t, "lp", false, "f")
	o, err := e.m.Load(context.Background(), LoadRequest{Path: path, Wait: WaitOptions{Timeout: 5 * time.Second}})
	if err != nil || o.Result != ResultPatched || len(o.Preflight) == 0 {
		t.Fatalf("Load with preflight = %+v, %v; want patched, with its checks", o, err)
	}
	noName := e.patchModule(t, "lp_noname", false, "g")
	e.specs[noName].Name = ""
	write(t, filepath.Join(e.k.ProcRoot(), "sys", "kernel", "modules_disabled"), "1\n")
	o, err = e.m.Load(context.Background(), LoadRequest{Path: noName, Wait: WaitOptions{Timeout: 5 * time.Second}})
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Patch != noName || o.Result != ResultRefused {
		t.Errorf("refused load of a module without a name = %+v, %v; want it named by its file", o, err)
	}
}

// TestChangerDefaults: a Changer made without the optional seams uses the
// real ones: poke skips klp itself and its parent by their real ids, and
// waits for a process that does not stop with the real sleep.
func TestChangerDefaults(t *testing.T) {
	self, parent := os.Getpid(), os.Getppid()
	tasks := []fakekernel.Task{
		{PID: self, PPID: parent, Comm: "klp", Cmdline: []string{"klp", "poke"}},
		{PID: 300, PPID: 1, Comm: "stuck", Cmdline: []string{"/usr/bin/stuck"}},
	}
	if parent > 1 {
		tasks = append(tasks, fakekernel.Task{PID: parent, PPID: 1, Comm: "sudo", Cmdline: []string{"sudo", "klp", "poke"}})
	}
	e := newEnv(t, fakekernel.Options{Tasks: tasks, SwitchOnStart: true})
	for _, tk := range tasks {
		e.k.BlockTask(tk.PID)
	}
	if _, err := e.load(context.Background(), e.patchModule(t, "lp", false, "f"), WaitOptions{Timeout: time.Second, OnStall: StallLeave}); !errors.Is(err, livepatch.ErrStalled) {
		t.Fatal(err)
	}
	plan, err := e.m.PlanPoke()
	if err != nil {
		t.Fatal(err)
	}
	skips := map[int]string{}
	for _, p := range plan.Targets {
		skips[p.PID] = p.Skip
	}
	want := map[int]string{self: "klp itself", 300: ""}
	if parent > 1 {
		want[parent] = "klp's parent process"
	}
	if diff := cmp.Diff(want, skips); diff != "" {
		t.Errorf("plan: unexpected diff (-want +got):\n%s", diff)
	}
	// 300 falls into uninterruptible sleep after the plan: SIGSTOP does
	// not stop it; poke waits for it, then continues it anyway.
	e.k.SetUninterruptible(300, true)
	if err := e.m.Poke(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	wantSig := []fakekernel.Signal{{PID: 300, Sig: syscall.SIGSTOP}, {PID: 300, Sig: syscall.SIGCONT}}
	if diff := cmp.Diff(wantSig, e.k.Signals()); diff != "" {
		t.Errorf("signals: unexpected diff (-want +got):\n%s", diff)
	}

	// With its own sleep, poke uses it.
	slept := 0
	e.cfg.Sleep = func(time.Duration) { slept++ }
	e.m = NewChanger(e.k.Live(), e.cfg)
	if err := e.m.Poke(context.Background(), plan); err != nil || slept == 0 {
		t.Errorf("Poke = %v after %d sleeps; want the injected sleep used", err, slept)
	}
}

// forceUnpatching disables patch name, whose function f_<name> task 100
// sleeps in, and forces the unpatching: the kernel keeps the module's
// reference.
func (e *env) forceUnpatching(t *testing.T, name string) {
	t.Helper()
	e.k.BlockTask(100, "f_"+name)
	if err := e.m.Ctl.Disable(name); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Ctl.Force(name); err != nil {
		t.Fatal(err)
	}
}

// TestList: list shows each patch's state, a superseded and a pinned
// module, and who provides each function, in order.
func TestList(t *testing.T) {
	e := newEnv(t, fakekernel.Options{Features: fakekernel.Linux6_1})
	ctx := context.Background()
	w := WaitOptions{Timeout: 5 * time.Second}
	if _, err := e.load(ctx, e.patchModule(t, "lp_v1", false, "cmdline_proc_show"), w); err != nil {
		t.Fatal(err)
	}
	if _, err := e.load(ctx, e.patchModule(t, "lp_v2", true, "cmdline_proc_show", "meminfo_proc_show"), w); err != nil {
		t.Fatal(err)
	}
	e.k.Flush()
	if _, err := e.load(ctx, e.patchModule(t, "lp_more", false, "version_proc_show"), w); err != nil {
		t.Fatal(err)
	}
	// lp_pin is forced during its unpatching: the kernel keeps its
	// module's reference, with no patch directory left.
	if _, err := e.load(ctx, e.patchModule(t, "lp_pin", false, "f_lp_pin"), w); err != nil {
		t.Fatal(err)
	}
	e.forceUnpatching(t, "lp_pin")
	if !e.k.Settle(5) {
		t.Fatal("the forced unpatching did not complete")
	}
	l, err := e.m.List(e.cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]PatchState{}
	for _, p := range l.Loaded {
		states[p.Name] = p.State
	}
	if diff := cmp.Diff(map[string]PatchState{"lp_v2": StateEnabled, "lp_more": StateEnabled, "lp_v1": StateSuperseded, "lp_pin": StatePinned}, states); diff != "" {
		t.Errorf("states: unexpected diff (-want +got):\n%s", diff)
	}
	// In the order of object, function and position.
	var provided [][2]string
	for _, f := range l.Functions {
		provided = append(provided, [2]string{f.Function, f.ProvidedBy})
	}
	want := [][2]string{{"cmdline_proc_show", "lp_v2"}, {"meminfo_proc_show", "lp_v2"}, {"version_proc_show", "lp_more"}}
	if diff := cmp.Diff(want, provided); diff != "" {
		t.Errorf("providers: unexpected diff (-want +got):\n%s", diff)
	}
	if l.Release != release {
		t.Errorf("release %q", l.Release)
	}
}
