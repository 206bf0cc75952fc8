package admin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/klp-project/klp/internal/audit"
	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/internal/lock"
	"github.com/klp-project/klp/internal/preflight"
	"github.com/klp-project/klp/internal/store"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/kmod"
	"github.com/klp-project/klp/livepatch"
	"github.com/klp-project/klp/modinfo"
)

const release = "6.12.0-fake"

// env is a fake kernel with a Changer on it. Module files are described to
// the Changer through Inspect, since the fake kernel's files are not ELF.
type env struct {
	k     *fakekernel.Kernel
	m     *Changer
	cfg   Config
	specs map[string]*modinfo.Module
	audit *auditLog
}

// auditLog records audit records for the tests.
type auditLog struct {
	mu      sync.Mutex
	records []audit.Record
}

func (a *auditLog) Record(r audit.Record) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.records = append(a.records, r)
}

func (a *auditLog) lines() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, r := range a.records {
		l := r.Action + " " + r.Patch + " " + r.Result
		if r.Err != nil {
			l += " error"
		}
		out = append(out, l)
	}
	return out
}

// newEnv makes a fake kernel with a Changer on it. klp's waits run on the
// fake kernel's clock, whose retry work advances transitions every second
// of it: what a test sees never depends on the machine's speed.
func newEnv(t *testing.T, opts fakekernel.Options) *env {
	t.Helper()
	k := fakekernel.New(t, opts)
	write(t, filepath.Join(k.ProcRoot(), "sys", "kernel", "osrelease"), release+"\n")
	e := &env{k: k, specs: map[string]*modinfo.Module{}, audit: &auditLog{}}
	dir := t.TempDir()
	e.cfg = Config{
		Store:    store.Store{Dir: filepath.Join(dir, "klp"), Kpatch: filepath.Join(dir, "kpatch")},
		LockPath: filepath.Join(dir, "klp.lock"),
		Audit:    func() audit.Auditor { return e.audit },
		Kmod:     k.KmodOptions(),
		Inspect: func(path string) (*modinfo.Module, error) {
			if m, ok := e.specs[path]; ok {
				return m, nil
			}
			return nil, os.ErrNotExist
		},
	}
	e.m = NewChanger(k.Live(), e.cfg)
	return e
}

// load loads path with the default options of klp load but no preflight
// (the fake kernel's tree has no kallsyms or config to check).
func (e *env) load(ctx context.Context, path string, w WaitOptions) (*Outcome, error) {
	return e.m.Load(ctx, LoadRequest{Path: path, Wait: w, SkipPreflight: true})
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// patchModule adds a livepatch module changing the given vmlinux functions.
func (e *env) patchModule(t *testing.T, name string, replace bool, funcs ...string) string {
	t.Helper()
	var fs []fakekernel.Func
	for _, f := range funcs {
		fs = append(fs, fakekernel.Func{Name: f})
	}
	path := e.k.AddModule(t, fakekernel.Module{Name: name, Livepatch: &fakekernel.Patch{
		Objects: []fakekernel.Object{{Name: "vmlinux", Funcs: fs}}, Replace: replace,
	}})
	e.specs[path] = &modinfo.Module{Name: name, Livepatch: true, Vermagic: release + " SMP preempt mod_unload modversions "}
	for _, f := range funcs {
		e.k.SetSymbol("vmlinux", f, 1)
	}
	return path
}

func TestLoadAndUnload(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	path := e.patchModule(t, "lp_cmdline", false, "cmdline_proc_show")
	ctx := context.Background()

	o, err := e.load(ctx, path, WaitOptions{Timeout: 5 * time.Second, OnStall: StallRollback})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if o.Result != "patched" || o.Patch != "lp_cmdline" {
		t.Errorf("Load outcome = %+v, want patched lp_cmdline", o)
	}
	p, err := e.m.LP.Patch("lp_cmdline")
	if err != nil || !p.Enabled || p.InTransition() {
		t.Fatalf("after load: patch %+v, %v; want enabled, not in transition", p, err)
	}

	// Loading again is not an error: boot services re-run.
	o, err = e.load(ctx, path, WaitOptions{Timeout: time.Second})
	if err != nil || o.Result != "already loaded" {
		t.Errorf("second Load = %+v, %v; want already loaded", o, err)
	}

	o, err = e.m.Unload(ctx, "lp_cmdline", WaitOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("Unload: %v", err)
	}
	if o.Result != "removed" || e.k.Loaded("lp_cmdline") {
		t.Errorf("Unload outcome %+v, module loaded: %v", o, e.k.Loaded("lp_cmdline"))
	}
	if _, err := e.m.LP.Patch("lp_cmdline"); !errors.Is(err, livepatch.ErrNotFound) {
		t.Errorf("after unload: Patch error = %v, want ErrNotFound", err)
	}
}

func TestLoadRefusesBadModules(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	plain := e.k.AddModule(t, fakekernel.Module{Name: "plain"})
	e.specs[plain] = &modinfo.Module{Name: "plain", Vermagic: release + " SMP"}
	other := e.patchModule(t, "lp_other", false, "meminfo_proc_show")
	e.specs[other].Vermagic = "6.1.0-42-cloud-amd64 SMP"

	for _, tc := range []struct {
		path string
		want error
	}{
		{plain, ErrNotLivepatch},
		{other, ErrWrongKernel},
		{"/nonexistent.ko", os.ErrNotExist},
	} {
		_, err := e.load(context.Background(), tc.path, WaitOptions{Timeout: time.Second})
		if !errors.Is(err, tc.want) {
			t.Errorf("Load(%s) error = %v, want %v", tc.path, err, tc.want)
		}
	}
	if e.k.Loaded("plain") || e.k.Loaded("lp_other") {
		t.Error("a refused module was loaded")
	}
}

func TestLoadMissingSymbolShowsKernelLog(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	path := e.patchModule(t, "lp_broken", false, "no_such_function")
	e.k.SetSymbol("vmlinux", "no_such_function", 0)
	o, err := e.load(context.Background(), path, WaitOptions{Timeout: time.Second})
	if !errors.Is(err, kmod.ErrInvalid) {
		t.Fatalf("Load error = %v, want kmod.ErrInvalid", err)
	}
	if !strings.Contains(strings.Join(o.KernelLog, "\n"), "no_such_function") {
		t.Errorf("kernel log %q does not name the missing symbol", o.KernelLog)
	}
	if !strings.Contains(err.Error(), "no_such_function") {
		t.Errorf("error %q does not name the missing symbol", err)
	}
}

func TestLoadStallRollsBack(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	path := e.patchModule(t, "lp_stall", false, "busy_func")
	e.k.BlockTask(15, "busy_func") // the kworker sleeps in the function
	// The retry work at 1 and 2 s switches every other task: at 3 s the
	// kworker is the one task left.
	o, err := e.load(context.Background(), path, WaitOptions{Timeout: 3 * time.Second, OnStall: StallRollback, RefTimeout: 2 * time.Second})
	if !errors.Is(err, livepatch.ErrStalled) || !strings.Contains(err.Error(), "stalled after 3s") {
		t.Fatalf("Load error = %v, want ErrStalled after 3s", err)
	}
	if o.Result != "rolled back" {
		t.Errorf("result %q, want rolled back", o.Result)
	}
	if o.Stall == nil || len(o.Stall.Tasks) != 1 || o.Stall.Tasks[0].TID != 15 {
		t.Fatalf("stall report %+v, want the kworker 15", o.Stall)
	}
	if got := o.Stall.Tasks[0].Culprits; len(got) == 0 || livepatch.StackFunction(got[0]) != "busy_func" {
		t.Errorf("culprit frames %q, want busy_func", got)
	}
	if e.k.Loaded("lp_stall") {
		t.Error("module still loaded after the rollback")
	}
}

// A rollback is not cut short by a short --timeout: the reversed
// transition gets at least MinRollbackWait, since giving up half-way would
// leave the patch in transition.
func TestLoadStallRollbackOutlastsTimeout(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	path := e.patchModule(t, "lp_stall", false, "busy_func")
	e.k.HoldIdle(true) // neither the transition nor its reverse completes
	e.k.After(300*time.Millisecond, func() { e.k.HoldIdle(false) })
	o, err := e.load(context.Background(), path, WaitOptions{Timeout: 20 * time.Millisecond, OnStall: StallRollback, RefTimeout: 2 * time.Second})
	if !errors.Is(err, livepatch.ErrStalled) || o.Result != ResultRolledBack {
		t.Fatalf("load = %q, %v; want rolled back after the stall", o.Result, err)
	}
	if e.k.Loaded("lp_stall") {
		t.Error("module still loaded after the rollback")
	}
}

func TestLoadStallLeave(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	path := e.patchModule(t, "lp_stall", false, "busy_func")
	e.k.BlockTask(100)
	o, err := e.load(context.Background(), path, WaitOptions{Timeout: 50 * time.Millisecond, OnStall: StallLeave})
	if !errors.Is(err, livepatch.ErrStalled) || o.Result != "left in transition" {
		t.Fatalf("Load = %q, %v; want left in transition, ErrStalled", o.Result, err)
	}
	if got := e.k.TransitionPatch(); got != "lp_stall" {
		t.Errorf("transition patch %q, want lp_stall still patching", got)
	}
	// Another load now meets the transition in progress.
	other := e.patchModule(t, "lp_next", false, "other_func")
	if _, err := e.load(context.Background(), other, WaitOptions{Timeout: 50 * time.Millisecond}); !errors.Is(err, livepatch.ErrTransitionInProgress) {
		t.Errorf("load during a transition: %v, want ErrTransitionInProgress", err)
	}
	// Releasing the task lets klp wait finish it. The wait names the
	// patch: the kernel's work may finish the transition before it starts.
	e.k.UnblockTask(100)
	o, err = e.m.Wait(context.Background(), "lp_stall", WaitOptions{Timeout: 5 * time.Second})
	if err != nil || o.Result != "patched" {
		t.Errorf("Wait = %+v, %v; want patched", o, err)
	}
}

func TestInterruptedWaitSaysWhereThingsStand(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	path := e.patchModule(t, "lp_slow", false, "f")
	e.k.BlockTask(100)
	// Ctrl-C when the first progress line shows, a second into the wait.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.cfg.Progress = func(Progress) { cancel() }
	e.m = NewChanger(e.k.Live(), e.cfg)
	o, err := e.load(ctx, path, WaitOptions{Timeout: time.Minute, OnStall: StallRollback})
	if !errors.Is(err, ErrInterrupted) || o.Result != "interrupted" {
		t.Fatalf("Load = %q, %v; want interrupted", o.Result, err)
	}
	if !strings.Contains(err.Error(), "still patching") || !strings.Contains(err.Error(), "klp disable lp_slow") {
		t.Errorf("error %q does not state the patch's state and the way out", err)
	}
}

func TestReplaceThenUnloadOld(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	ctx := context.Background()
	w := WaitOptions{Timeout: 5 * time.Second, RefTimeout: 2 * time.Second}
	old := e.patchModule(t, "lp_v1", false, "cmdline_proc_show")
	if _, err := e.load(ctx, old, w); err != nil {
		t.Fatal(err)
	}
	cumulative := e.patchModule(t, "lp_v2", true, "cmdline_proc_show", "meminfo_proc_show")
	if _, err := e.load(ctx, cumulative, w); err != nil {
		t.Fatal(err)
	}
	e.k.Flush()
	if _, err := e.m.LP.Patch("lp_v1"); !errors.Is(err, livepatch.ErrNotFound) {
		t.Fatalf("replaced patch still visible: %v", err)
	}
	names, err := e.m.LivepatchModules()
	if err != nil || strings.Join(names, " ") != "lp_v2 lp_v1" {
		t.Fatalf("LivepatchModules = %q, %v; want lp_v2 then the superseded lp_v1", names, err)
	}
	o, err := e.m.Unload(ctx, "lp_v1", w)
	if err != nil || o.Result != "removed" || e.k.Loaded("lp_v1") {
		t.Fatalf("Unload superseded = %+v, %v", o, err)
	}
	// Loading the old one again after it is gone works; while it was still
	// loaded, Load would have removed the stale module first.
	if !e.k.Loaded("lp_v2") {
		t.Error("the replace patch was unloaded too")
	}
}

func TestLoadRemovesStaleSupersededModule(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	ctx := context.Background()
	w := WaitOptions{Timeout: 5 * time.Second}
	old := e.patchModule(t, "lp_v1", false, "cmdline_proc_show")
	if _, err := e.load(ctx, old, w); err != nil {
		t.Fatal(err)
	}
	if _, err := e.load(ctx, e.patchModule(t, "lp_v2", true, "cmdline_proc_show"), w); err != nil {
		t.Fatal(err)
	}
	e.k.Flush()
	// lp_v1 is loaded without a live patch: loading it again must first
	// remove it (the kernel would say EEXIST).
	var events []string
	e.cfg.Events = func(s string) { events = append(events, s) }
	e.m = NewChanger(e.k.Live(), e.cfg)
	o, err := e.load(ctx, old, w)
	if err != nil || o.Result != "patched" {
		t.Fatalf("reload superseded = %+v, %v", o, err)
	}
	if !strings.Contains(strings.Join(events, "\n"), "removing module lp_v1") {
		t.Errorf("events %q do not mention the removal", events)
	}
}

func TestUnloadAllPre51StackingOrder(t *testing.T) {
	e := newEnv(t, fakekernel.Options{Features: fakekernel.Linux4_15})
	ctx := context.Background()
	w := WaitOptions{Timeout: 5 * time.Second, RefTimeout: 2 * time.Second}
	// Loaded a then b: on these kernels only b (the last enabled) can be
	// disabled first, whatever order unload --all tries.
	for _, n := range []string{"lp_b", "lp_a"} {
		if _, err := e.load(ctx, e.patchModule(t, n, false, "f_"+n), w); err != nil {
			t.Fatal(err)
		}
	}
	out, err := e.m.UnloadAll(ctx, w)
	if err != nil {
		t.Fatalf("UnloadAll: %v (outcomes %+v)", err, out.Outcomes)
	}
	if e.k.Loaded("lp_a") || e.k.Loaded("lp_b") {
		t.Error("patches left loaded")
	}
}

func TestReenablePre51(t *testing.T) {
	e := newEnv(t, fakekernel.Options{Features: fakekernel.Linux4_15})
	ctx := context.Background()
	w := WaitOptions{Timeout: 5 * time.Second}
	if _, err := e.load(ctx, e.patchModule(t, "lp", false, "f"), w); err != nil {
		t.Fatal(err)
	}
	if o, err := e.m.Disable(ctx, "lp", w); err != nil || o.Result != "unpatched" {
		t.Fatalf("Disable = %+v, %v", o, err)
	}
	if o, err := e.m.Enable(ctx, "lp", w); err != nil || o.Result != "patched" {
		t.Fatalf("Enable = %+v, %v", o, err)
	}
}

func TestEnableOnNewKernelExplains(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	ctx := context.Background()
	w := WaitOptions{Timeout: 5 * time.Second}
	if _, err := e.load(ctx, e.patchModule(t, "lp", false, "f"), w); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Disable(ctx, "lp", w); err != nil {
		t.Fatal(err)
	}
	e.k.Flush()
	_, err := e.m.Enable(ctx, "lp", w)
	if !errors.Is(err, livepatch.ErrNotFound) || !strings.Contains(err.Error(), "load its module again") {
		t.Errorf("Enable after a 5.1+ disable: %v", err)
	}
}

func TestForcedPatchCannotBeRemoved(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	ctx := context.Background()
	// The long RefTimeout is never reached: a patch gone for a second
	// whose module keeps exactly its own reference is recognised as forced.
	w := WaitOptions{Timeout: 5 * time.Second, RefTimeout: time.Minute}
	if _, err := e.load(ctx, e.patchModule(t, "lp", false, "f"), w); err != nil {
		t.Fatal(err)
	}
	e.k.BlockTask(100)
	if err := e.m.Ctl.Disable("lp"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Ctl.Force("lp"); err != nil {
		t.Fatalf("Force: %v", err)
	}
	_, err := e.m.Unload(ctx, "lp", w)
	if !errors.Is(err, ErrForced) {
		t.Fatalf("Unload of a forced patch: %v, want ErrForced", err)
	}
	if !e.k.Loaded("lp") {
		t.Error("forced module was removed")
	}
}

func TestLoadAllGoesOnPastFailures(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	st := e.cfg.Store
	install := func(src, name string) {
		t.Helper()
		in, err := st.Install(src, name, release)
		if err != nil {
			t.Fatal(err)
		}
		e.specs[in.Path] = e.specs[src]
		e.k.AddModuleFile(t, in.Path, fakekernel.Module{Name: name, Livepatch: &fakekernel.Patch{Objects: []fakekernel.Object{{Name: "vmlinux", Funcs: []fakekernel.Func{{Name: "f_" + name}}}}}})
	}
	good1 := e.patchModule(t, "lp_a", false, "f_lp_a")
	bad := e.patchModule(t, "lp_b", false, "f_lp_b")
	good2 := e.patchModule(t, "lp_c", false, "f_lp_c")
	install(good1, "lp_a")
	install(bad, "lp_b")
	install(good2, "lp_c")
	e.k.SetSymbol("vmlinux", "f_lp_b", 0) // lp_b's target is missing

	r, err := e.m.LoadAll(context.Background(), BootOptions{Wait: WaitOptions{Timeout: 5 * time.Second}})
	if !errors.Is(err, ErrSomeFailed) || r.Result != ResultIncomplete {
		t.Fatalf("LoadAll = %q, %v, want incomplete, ErrSomeFailed", r.Result, err)
	}
	var got []string
	for _, o := range r.Outcomes {
		got = append(got, o.Patch+" "+o.Result)
	}
	if strings.Join(got, ", ") != "lp_a patched, lp_b failed, lp_c patched" {
		t.Errorf("outcomes %q, want lp_b failed between the patched ones", got)
	}
	// One audit record per patch, not one for --all.
	if got, want := strings.Join(e.audit.lines(), ", "), "load lp_a patched, load lp_b failed error, load lp_c patched"; got != want {
		t.Errorf("audit records %q, want %q", got, want)
	}
	for _, rec := range e.audit.records {
		if rec.Release != release || rec.File == "" {
			t.Errorf("audit record %+v: want the release %s and the file", rec, release)
		}
	}
	if !e.k.Loaded("lp_a") || !e.k.Loaded("lp_c") {
		t.Error("the good patches around the bad one were not loaded")
	}
}

func TestLoadAllCrashProtection(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	st := e.cfg.Store
	src := e.patchModule(t, "lp_a", false, "f_a")
	in, err := st.Install(src, "lp_a", release)
	if err != nil {
		t.Fatal(err)
	}
	e.specs[in.Path] = e.specs[src]
	e.k.AddModuleFile(t, in.Path, fakekernel.Module{Name: "lp_a", Livepatch: &fakekernel.Patch{Objects: []fakekernel.Object{{Name: "vmlinux", Funcs: []fakekernel.Func{{Name: "f_a"}}}}}})
	// The machine went down while lp_a was loading.
	if err := st.MarkLoading(release, "lp_a"); err != nil {
		t.Fatal(err)
	}
	for boot := 0; boot < 2; boot++ {
		r, err := e.m.LoadAll(context.Background(), BootOptions{Wait: WaitOptions{Timeout: time.Second}})
		if !errors.Is(err, ErrSomeFailed) || len(r.Outcomes) != 1 || r.Outcomes[0].Result != ResultSkipped || e.k.Loaded("lp_a") {
			t.Fatalf("boot %d: %+v, %v; want lp_a skipped", boot, r, err)
		}
	}
	r, err := e.m.LoadAll(context.Background(), BootOptions{Wait: WaitOptions{Timeout: 5 * time.Second}, RetryCrashed: true})
	if err != nil || !e.k.Loaded("lp_a") || r.Result != ResultLoaded {
		t.Fatalf("retry: %+v, %v", r, err)
	}
	write(t, filepath.Join(e.k.ProcRoot(), "cmdline"), "root=/dev/vda klp.enable=0 quiet\n")
	if r, err := e.m.LoadAll(context.Background(), BootOptions{}); err != nil || r.Result != ResultDisabled || len(r.Notes) == 0 {
		t.Errorf("klp.enable=0: %+v, %v", r, err)
	}
}

func TestProgressAndSignalNotes(t *testing.T) {
	// Every task but the blocked one switches when the transition starts,
	// and no retry work runs: the blocked task stays the one task left
	// however slowly the test runs.
	e := newEnv(t, fakekernel.Options{SwitchOnStart: true})
	path := e.patchModule(t, "lp", false, "f")
	e.k.BlockTask(100)
	var progress []Progress
	var events []string
	e.cfg.Progress = func(p Progress) { progress = append(progress, p) }
	e.cfg.ProgressInterval = 5 * time.Millisecond
	e.cfg.Events = func(s string) { events = append(events, s) }
	e.m = NewChanger(e.k.Live(), e.cfg)
	_, err := e.load(context.Background(), path, WaitOptions{Timeout: 100 * time.Millisecond, OnStall: StallLeave, SignalAfter: 10 * time.Millisecond})
	if !errors.Is(err, livepatch.ErrStalled) {
		t.Fatal(err)
	}
	// The tasks are counted in the background: a line shows the count
	// once it is done (one task left), -1 ("counting tasks") before.
	if len(progress) == 0 {
		t.Errorf("no progress shown")
	}
	for _, p := range progress {
		if (p.TasksLeft != 1 && p.TasksLeft != -1) || p.Direction != "patching" || p.Patch != "lp" {
			t.Errorf("progress = %+v, want one task left (or not counted yet) while lp is patching", progress)
			break
		}
	}
	if !strings.Contains(strings.Join(events, "\n"), "signals the blocking tasks every 15 seconds by itself") {
		t.Errorf("events %q do not say that the kernel signals by itself", events)
	}
}

func TestForceConsequence(t *testing.T) {
	for _, tc := range []struct {
		enabled bool
		release string
		want    string
	}{
		{false, "6.1.0-56-cloud-amd64", "never release module p"},
		{true, "6.1.0-56-cloud-amd64", "stays removable"},
		{true, "6.1.0-56-cloud-amd64", "(By the kernel's version, 6.1.0: no file shows which modules a force pins.)"},
		{true, "5.14.21-150400.24.33-default", "every loaded patch module"},
		{true, "5.14.21-150400.24.33-default", "By the kernel's version, 5.14.21"},
		{true, "garbage", "may then never be unloaded"},
		{true, "garbage", "is unknown: klp assumes the worst"},
	} {
		v, err := kernel.ParseVersion(tc.release)
		got := forceConsequence(livepatch.Patch{Name: "p", Enabled: tc.enabled}, v, err == nil)
		if !strings.Contains(got, tc.want) {
			t.Errorf("forceConsequence(enabled=%v, %s) = %q, want %q", tc.enabled, tc.release, got, tc.want)
		}
	}
}

// TestDashedNames is the bug the kernel handle fixed: a patch name typed
// with '-' is the patch whose module name has '_' (kbuild and klp-build
// name modules that way), for every verb. Before, unload of lp-cmdline
// waited a second and then called the healthy patch forced.
func TestDashedNames(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	ctx := context.Background()
	w := WaitOptions{Timeout: 5 * time.Second, RefTimeout: 5 * time.Second}
	path := e.patchModule(t, "lp_cmdline", false, "cmdline_proc_show")
	if _, err := e.load(ctx, path, w); err != nil {
		t.Fatal(err)
	}
	o, err := e.m.Disable(ctx, "lp-cmdline", w)
	if err != nil || o.Patch != "lp_cmdline" || (o.Result != ResultUnpatched && o.Result != ResultRemoved) {
		t.Fatalf("Disable(lp-cmdline) = %+v, %v", o, err)
	}
	e.k.Flush()
	if _, err := e.load(ctx, path, w); err != nil {
		t.Fatal(err)
	}
	if o, err := e.m.Wait(ctx, "lp-cmdline", w); err != nil || o.Patch != "lp_cmdline" || o.Result != ResultPatched {
		t.Errorf("Wait(lp-cmdline) = %+v, %v", o, err)
	}
	l, err := e.m.List(e.cfg.Store)
	if err != nil || len(l.Loaded) != 1 || l.Loaded[0].Name != "lp_cmdline" || l.Loaded[0].State != StateEnabled {
		t.Errorf("List = %+v, %v", l, err)
	}
	o, err = e.m.Unload(ctx, "lp-cmdline", w)
	if err != nil || o.Result != ResultRemoved || o.Patch != "lp_cmdline" {
		t.Fatalf("Unload(lp-cmdline) = %+v, %v", o, err)
	}
	if e.k.Loaded("lp_cmdline") {
		t.Error("the module is still loaded")
	}
}

func TestWaitForAPatchThatIsNotThere(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	o, err := e.m.Wait(context.Background(), "nosuch", WaitOptions{Timeout: time.Second})
	if !errors.Is(err, livepatch.ErrNotFound) || o.Result == ResultRemoved || ExitCode(err) != ExitError {
		t.Errorf("Wait(nosuch) = %+v, %v; want ErrNotFound, never removed", o, err)
	}
}

// TestChangesAreGuarded: a change needs root and the lock before anything
// is touched, and wait --on-stall=rollback is a change.
func TestChangesAreGuarded(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	ctx := context.Background()
	path := e.patchModule(t, "lp", false, "f")
	e.k.BlockTask(100, "f") // sleeps in f: it blocks patching, not its reversal
	if _, err := e.load(ctx, path, WaitOptions{Timeout: 20 * time.Millisecond, OnStall: StallLeave}); !errors.Is(err, livepatch.ErrStalled) {
		t.Fatal(err)
	}
	rollback := WaitOptions{Timeout: 20 * time.Millisecond, OnStall: StallRollback}

	user := e.cfg
	user.Euid = 1000
	u := NewChanger(e.k.Live(), user)
	for name, f := range map[string]func() (*Outcome, error){
		"wait --on-stall=rollback": func() (*Outcome, error) { return u.Wait(ctx, "lp", rollback) },
		"disable":                  func() (*Outcome, error) { return u.Disable(ctx, "lp", rollback) },
		"unload":                   func() (*Outcome, error) { return u.Unload(ctx, "lp", rollback) },
		"load":                     func() (*Outcome, error) { return u.Load(ctx, LoadRequest{Path: path, SkipPreflight: true}) },
	} {
		o, err := f()
		if !errors.Is(err, kernel.ErrPermission) || ExitCode(err) != ExitPermission || o.Result != ResultRefused {
			t.Errorf("%s as a user: %+v, %v", name, o, err)
		}
	}
	// A user may wait without a rollback: that changes nothing.
	if _, err := u.Wait(ctx, "lp", WaitOptions{Timeout: 20 * time.Millisecond, OnStall: StallLeave}); !errors.Is(err, livepatch.ErrStalled) {
		t.Errorf("a user's plain wait: %v", err)
	}

	l, err := lock.Acquire(ctx, e.cfg.LockPath, 0)
	if err != nil {
		t.Fatal(err)
	}
	o, err := e.m.Wait(ctx, "lp", rollback)
	if !errors.Is(err, lock.ErrLocked) || o.Result != ResultRefused {
		t.Errorf("rollback while another klp holds the lock: %+v, %v", o, err)
	}
	l.Release()
	if p, err := e.m.LP.Patch("lp"); err != nil || !p.Enabled || !p.InTransition() {
		t.Fatalf("refused changes changed the patch: %+v, %v", p, err)
	}
	if n := len(e.audit.lines()); n != 1 {
		t.Errorf("refused changes were audited: %q", e.audit.lines())
	}

	// The reversal completes at the next retry work, within the second.
	o, err = e.m.Wait(ctx, "lp", WaitOptions{Timeout: time.Second, OnStall: StallRollback, RefTimeout: 5 * time.Second})
	if !errors.Is(err, livepatch.ErrStalled) || o.Result != ResultRolledBack || e.k.Loaded("lp") {
		t.Errorf("rollback = %+v, %v", o, err)
	}
	if got := e.audit.lines(); len(got) != 2 || got[1] != "wait lp rolled back error" {
		t.Errorf("the rollback was not audited: %q", got)
	}
}

// TestPreflightInsideTheLoad: a load's cheap checks run on the module it
// loads; a failed one refuses with the kernel's own exit status.
func TestPreflightInsideTheLoad(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	path := e.patchModule(t, "lp", false, "f")
	write(t, filepath.Join(e.k.ProcRoot(), "sys", "kernel", "modules_disabled"), "1\n")
	o, err := e.m.Load(context.Background(), LoadRequest{Path: path, Wait: WaitOptions{Timeout: time.Second}})
	var refused *RefusedError
	if !errors.As(err, &refused) || ExitCode(err) != ExitPermission || o.Result != ResultRefused || o.Patch != "lp" {
		t.Fatalf("load with modules disabled = %+v, %v", o, err)
	}
	if len(refused.Failed) != 1 || refused.Failed[0].ID != preflight.IDModulesDisabled {
		t.Errorf("failed checks %+v", refused.Failed)
	}
	if e.k.Loaded("lp") {
		t.Error("a refused module was loaded")
	}
}

// TestPokePolicy is the "signals that hurt" class: poke never stops klp's
// ancestors (the shell that ran sudo is the parent's parent), never resumes
// a process an administrator stopped, never signals kernel threads or PID
// 1, and decides its whole list before the first signal.
func TestPokePolicy(t *testing.T) {
	e := newEnv(t, fakekernel.Options{AutoTick: -1, Tasks: []fakekernel.Task{
		{PID: 1, Comm: "systemd", Cmdline: []string{"/sbin/init"}},
		{PID: 300, PPID: 1, Comm: "bash", Cmdline: []string{"-bash"}},
		{PID: 301, PPID: 300, Comm: "sudo", Cmdline: []string{"sudo", "kgr", "poke"}},
		{PID: 302, PPID: 301, Comm: "kgr", Cmdline: []string{"kgr", "poke"}},
		{PID: 400, PPID: 1, Comm: "app", Cmdline: []string{"/usr/bin/app"}},
		{PID: 500, PPID: 1, Comm: "held", Cmdline: []string{"/usr/bin/held"}},
		{PID: 600, PPID: 2, Comm: "kworker/0:1", Kthread: true},
	}})
	e.cfg.Getpid = func() int { return 302 }
	e.cfg.Getppid = func() int { return 301 }
	e.cfg.Getpgrp = func() int { return 302 }
	e.m = NewChanger(e.k.Live(), e.cfg)
	path := e.patchModule(t, "lp", false, "f")
	if err := e.k.Kill(500, syscall.SIGSTOP); err != nil { // an administrator stopped it
		t.Fatal(err)
	}
	for _, tid := range []int{1, 300, 301, 400, 500, 600} {
		e.k.BlockTask(tid)
	}
	if _, err := e.load(context.Background(), path, WaitOptions{Timeout: 10 * time.Millisecond, OnStall: StallLeave}); !errors.Is(err, livepatch.ErrStalled) {
		t.Fatal(err)
	}
	plan, err := e.m.PlanPoke()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range plan.Targets {
		got = append(got, fmt.Sprintf("%d %s", p.PID, p.Skip))
	}
	want := []string{"1 PID 1", "300 an ancestor of klp", "301 klp's parent process", "302 klp itself", "400 ", "500 stopped (state T): SIGCONT would resume it", "600 kernel thread"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("plan: unexpected diff (-want +got):\n%s", diff)
	}
	before := len(e.k.Signals())
	if err := e.m.Poke(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	sent := e.k.Signals()[before:]
	if diff := cmp.Diff([]fakekernel.Signal{{PID: 400, Sig: syscall.SIGSTOP}, {PID: 400, Sig: syscall.SIGCONT}}, sent); diff != "" {
		t.Errorf("signals: unexpected diff (-want +got):\n%s", diff)
	}
	// The poke is audited with what it did.
	if got := e.audit.lines(); len(got) == 0 || got[len(got)-1] != "poke  poked 1, failed 0" {
		t.Errorf("audit records %q, want the poke of one process last", got)
	}
	e.k.Tick()
	if e.k.PatchState(400) != 1 {
		t.Errorf("the poked process did not switch: patch_state %d", e.k.PatchState(400))
	}
}

// TestUnloadAllTimeoutBoundsTheRun: --timeout bounds unload --all as a
// whole, not each of its waits: with every transition blocked, the run
// ends with the first stall and reports each module, none removed.
func TestUnloadAllTimeoutBoundsTheRun(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	ctx := context.Background()
	for _, n := range []string{"lp_a", "lp_b", "lp_c"} {
		if _, err := e.load(ctx, e.patchModule(t, n, false, "f_"+n), WaitOptions{Timeout: 5 * time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	e.k.BlockTask(100) // blocks every transition
	o, err := e.m.UnloadAll(ctx, WaitOptions{Timeout: 30 * time.Millisecond})
	if !errors.Is(err, livepatch.ErrStalled) || o.Result != ResultIncomplete || ExitCode(err) != ExitStalled {
		t.Fatalf("UnloadAll = %q, %v", o.Result, err)
	}
	if len(o.Outcomes) != 3 {
		t.Fatalf("outcomes %+v, want one per module", o.Outcomes)
	}
	for _, s := range o.Outcomes {
		if s.Result == ResultRemoved || !errors.Is(s.Err, livepatch.ErrStalled) {
			t.Errorf("%s: %q, %v", s.Patch, s.Result, s.Err)
		}
	}
}

// TestAuditNamesTheKernel: the audit record of a single change names the
// kernel release it changed, as those of load --all do: a record read on
// another machine, or after an upgrade, must say which kernel it was.
func TestAuditNamesTheKernel(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	ctx := context.Background()
	path := e.patchModule(t, "lp", false, "f")
	if _, err := e.load(ctx, path, WaitOptions{Timeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Unload(ctx, "lp", WaitOptions{Timeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(e.audit.lines(), ", "), "load lp patched, unload lp removed"; got != want {
		t.Fatalf("audit records %q, want %q", got, want)
	}
	for _, rec := range e.audit.records {
		if rec.Release != release {
			t.Errorf("audit record %+v: release %q, want %s", rec, rec.Release, release)
		}
	}
	if rec := e.audit.records[0]; rec.File != path {
		t.Errorf("load's audit record names the file %q, want %s", rec.File, path)
	}
}

// TestLoadWarnsOfOverriders: after a load, klp says which of the patch's
// functions a BPF program overrides (callers get the program's value, not
// the patched code's); a program that only watches the function is not
// worth a warning.
func TestLoadWarnsOfOverriders(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	path := e.patchModule(t, "lp", false, "f", "g")
	e.k.AttachBPF(fakekernel.BPFProgram{Name: "ret", Attach: kernel.AttachFmodRet, Function: "f"})
	e.k.AttachBPF(fakekernel.BPFProgram{Name: "watch", Attach: kernel.AttachFexit, Function: "g"})
	o, err := e.load(context.Background(), path, WaitOptions{Timeout: 5 * time.Second})
	if err != nil || o.Result != ResultPatched {
		t.Fatalf("Load = %+v, %v; want patched", o, err)
	}
	want := []string{"warning: BPF fmod_ret program ret (id 101, link 1) overrides the patch of f: callers get its value, not the patched code's (klp list)"}
	if diff := cmp.Diff(want, o.Notes); diff != "" {
		t.Errorf("notes: unexpected diff (-want +got):\n%s", diff)
	}
}
