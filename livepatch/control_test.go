package livepatch_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/internal/poll"
	"github.com/klp-project/klp/livepatch"
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
	var signalledAt time.Duration = -1
	var progress []time.Duration
	res, err := fs.WaitTransition(context.Background(), "a", livepatch.WaitOptions{
		Timeout:          200 * time.Millisecond,
		SignalAfter:      20 * time.Millisecond,
		OnSignal:         func(err error) { signalledAt = k.Elapsed(); _ = err },
		Progress:         func(e time.Duration, _ livepatch.PatchState) { progress = append(progress, e) },
		ProgressInterval: 50 * time.Millisecond,
	})
	if !errors.Is(err, livepatch.ErrStalled) || res.Elapsed != 200*time.Millisecond {
		t.Fatalf("WaitTransition = %+v, %v; want ErrStalled after 200ms", res, err)
	}
	// The signal is written once, when the wait wakes at SignalAfter, and
	// the signal attribute of 4.15 takes it.
	if signalledAt != 20*time.Millisecond {
		t.Errorf("signalled at %v, want 20ms", signalledAt)
	}
	if !slices.Contains(k.Messages(), "livepatch: signaling remaining tasks") {
		t.Errorf("the kernel did not signal: log %q", k.Messages())
	}
	want := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 150 * time.Millisecond}
	if len(progress) != len(want) {
		t.Fatalf("progress at %v, want %v", progress, want)
	}
	for i := range want {
		if progress[i] != want[i] {
			t.Errorf("progress at %v, want %v", progress, want)
			break
		}
	}
	k.UnblockTask(100)
	// The retry work at 1 s completes the transition.
	res, err = fs.WaitTransition(context.Background(), "a", livepatch.WaitOptions{Timeout: 5 * time.Second})
	if err != nil || res.Enabled || res.Gone {
		t.Errorf("after release: %+v, %v; want unpatched and, before 5.1, still registered", res, err)
	}
}

// TestWaitTransitionNoticesRemoval: a patch whose directory goes while klp
// waits (its disable completed and the kernel freed it between two
// checks) ended unpatched.
func TestWaitTransitionNoticesRemoval(t *testing.T) {
	k, fs := onFake(t, fakekernel.Linux6_12, "a")
	if err := fs.Disable("a"); err != nil {
		t.Fatal(err)
	}
	// The transition completes and the kernel frees the patch 20 ms into
	// the wait, on the fake kernel's clock: the wait finds the directory
	// gone.
	k.After(20*time.Millisecond, func() { k.Settle(10) })
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

// TestWaitTransitionEndsUnpatched: a disable that completes shows
// transition 0 and enabled 0 before the kernel frees the patch.
func TestWaitTransitionEndsUnpatched(t *testing.T) {
	k, fs := onFake(t, fakekernel.Linux6_12, "a")
	if err := fs.Disable("a"); err != nil {
		t.Fatal(err)
	}
	res, err := fs.WaitTransition(context.Background(), "a", livepatch.WaitOptions{Timeout: 5 * time.Second})
	if err != nil || res.Enabled || res.Gone || res.Elapsed < time.Second || res.Elapsed > time.Second+poll.DefaultMax {
		t.Fatalf("WaitTransition = %+v, %v; want unpatched, still there, noticed within 10ms of the retry work at 1s", res, err)
	}
	if k.TransitionPatch() != "" {
		t.Error("the transition is still open")
	}
}

// TestPatchBeingRemoved: the attributes of a patch the kernel is freeing
// answer ENODEV before its files go (seen on 6.1 and 6.12): the patch is
// gone, ErrNotFound, not a broken tree; the list leaves it out.
func TestPatchBeingRemoved(t *testing.T) {
	k, c := onFake(t, fakekernel.Linux6_12, "a", "b")
	k.InjectReadFault(filepath.Join(k.SysRoot(), "kernel", "livepatch", "a", "enabled"), unix.ENODEV)
	if p, err := c.Patch("a"); !errors.Is(err, livepatch.ErrNotFound) || !strings.Contains(err.Error(), "being removed") {
		t.Errorf("Patch(a) = %+v, %v; want ErrNotFound, being removed", p, err)
	}
	ps, err := c.Patches()
	if err != nil || len(ps) != 1 || ps[0].Name != "b" {
		t.Errorf("Patches = %+v, %v; want b only", ps, err)
	}
	// Another error is an error.
	k.InjectReadFault(filepath.Join(k.SysRoot(), "kernel", "livepatch", "a", "enabled"), unix.EIO)
	if _, err := c.Patch("a"); err == nil || errors.Is(err, livepatch.ErrNotFound) {
		t.Errorf("Patch(a) with EIO: %v; want an error other than ErrNotFound", err)
	}
}
