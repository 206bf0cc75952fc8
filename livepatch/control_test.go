package livepatch_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/livepatch"
	"golang.org/x/sys/unix"
)

// onFake returns a livepatch view of a fake kernel whose writes go to it,
// with the named patches loaded (the first left in transition when a task
// blocks it).
func onFake(t *testing.T, f fakekernel.Features, names ...string) (*fakekernel.Kernel, livepatch.Control) {
	t.Helper()
	k := fakekernel.New(t, fakekernel.Options{Features: f})
	mod := k.Loader()
	for _, n := range names {
		k.SetSymbol("vmlinux", "f_"+n, 1)
		path := k.AddModule(t, fakekernel.Module{Name: n, Livepatch: &fakekernel.Patch{
			Objects: []fakekernel.Object{{Name: "vmlinux", Funcs: []fakekernel.Func{{Name: "f_" + n}}}}}})
		if _, err := mod.Load(path, ""); err != nil {
			t.Fatal(err)
		}
		k.Settle(10)
	}
	return k, livepatch.NewControl(k.Live())
}

func TestDisableErrors(t *testing.T) {
	k, fs := onFake(t, fakekernel.Linux6_12, "a", "b")
	if err := fs.Enable("a"); !errors.Is(err, livepatch.ErrAlreadyInState) {
		t.Errorf("Enable of an enabled patch: %v, want ErrAlreadyInState", err)
	}
	k.BlockTask(100)
	if err := fs.Disable("a"); err != nil {
		t.Fatal(err)
	}
	// a is unpatching and blocked: b cannot start a transition.
	if err := fs.Disable("b"); !errors.Is(err, livepatch.ErrTransitionInProgress) {
		t.Errorf("Disable during another transition: %v, want ErrTransitionInProgress", err)
	}
	if err := fs.Force("b"); !errors.Is(err, livepatch.ErrNotInTransition) {
		t.Errorf("Force of a patch not in transition: %v, want ErrNotInTransition", err)
	}
	if err := fs.Signal("a"); !errors.Is(err, livepatch.ErrUnsupportedAttr) {
		t.Errorf("Signal on 6.12: %v, want ErrUnsupportedAttr", err)
	}
	if err := fs.Disable("nope"); !errors.Is(err, livepatch.ErrNotFound) {
		t.Errorf("Disable of a missing patch: %v", err)
	}
	if err := fs.Disable("../x"); !errors.Is(err, livepatch.ErrInvalidName) {
		t.Errorf("Disable ../x: %v", err)
	}
	// Enabling a again reverses its unpatching transition.
	if err := fs.Enable("a"); err != nil {
		t.Errorf("reverse with Enable: %v", err)
	}
}

func TestWaitTransitionSignalsOnOldKernels(t *testing.T) {
	k, fs := onFake(t, fakekernel.Linux4_15, "a")
	k.BlockTask(100)
	if err := fs.Disable("a"); err != nil {
		t.Fatal(err)
	}
	var signalled, progressed bool
	res, err := fs.WaitTransition(context.Background(), "a", livepatch.WaitOptions{
		Timeout:          200 * time.Millisecond,
		SignalAfter:      20 * time.Millisecond,
		OnSignal:         func(err error) { signalled = err == nil },
		Progress:         func(time.Duration, livepatch.PatchState) { progressed = true },
		ProgressInterval: 10 * time.Millisecond,
	})
	if !errors.Is(err, livepatch.ErrStalled) {
		t.Fatalf("WaitTransition = %+v, %v; want ErrStalled", res, err)
	}
	if !signalled || !progressed {
		t.Errorf("signalled %v, progress called %v; want both", signalled, progressed)
	}
	k.UnblockTask(100)
	go func() { time.Sleep(20 * time.Millisecond); k.Settle(10) }()
	res, err = fs.WaitTransition(context.Background(), "a", livepatch.WaitOptions{Timeout: 5 * time.Second})
	if err != nil || res.Enabled || res.Gone {
		t.Errorf("after release: %+v, %v; want unpatched and, before 5.1, still registered", res, err)
	}
}

func TestWaitTransitionNoticesRemoval(t *testing.T) {
	k, fs := onFake(t, fakekernel.Linux6_12, "a")
	if err := fs.Disable("a"); err != nil {
		t.Fatal(err)
	}
	// The transition completes and the kernel frees the patch: a wait
	// then finds the directory gone.
	k.Settle(10)
	res, err := fs.WaitTransition(context.Background(), "a", livepatch.WaitOptions{Timeout: 5 * time.Second})
	if err != nil || res.Enabled || !res.Gone {
		t.Fatalf("WaitTransition = %+v, %v; want the patch gone", res, err)
	}
	// ENODEV: kernfs is removing the patch's files.
	k2, fs2 := onFake(t, fakekernel.Linux6_12, "b")
	k2.InjectReadFault(filepath.Join(k2.SysRoot(), "kernel", "livepatch", "b", "transition"), unix.ENODEV)
	res, err = fs2.WaitTransition(context.Background(), "b", livepatch.WaitOptions{Timeout: 5 * time.Second})
	if err != nil || res.Enabled || !res.Gone {
		t.Fatalf("WaitTransition with ENODEV = %+v, %v; want the patch gone", res, err)
	}
}
