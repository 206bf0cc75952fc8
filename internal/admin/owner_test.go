package admin

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klp-project/klp/internal/fakekernel"
	"github.com/klp-project/klp/livepatch"
	"github.com/klp-project/klp/modinfo"
)

func TestTopmost(t *testing.T) {
	t.Parallel()
	on := func(name string, stack *int) livepatch.Patch {
		return livepatch.Patch{Name: name, Enabled: true, Transition: ptrTo(false), StackOrder: stack}
	}
	off := func(name string) livepatch.Patch {
		return livepatch.Patch{Name: name, Transition: ptrTo(false)}
	}
	unpatching := livepatch.Patch{Name: "going", Transition: ptrTo(true)}
	load := map[string]int{"old": 1, "mid": 2, "new": 3, "going": 4}
	for _, tc := range []struct {
		name    string
		patches []livepatch.Patch
		load    map[string]int
		want    string
		basis   OwnerBasis
	}{
		{"none", nil, load, "", ""},
		{"only", []livepatch.Patch{on("old", nil)}, load, "old", OwnerOnlyPatch},
		{"only one active", []livepatch.Patch{off("new"), on("old", nil)}, load, "old", OwnerOnlyPatch},
		{"only disabled", []livepatch.Patch{off("new")}, load, "", OwnerNoneActive},
		{"stack_order", []livepatch.Patch{on("new", ptrTo(1)), on("old", ptrTo(2))}, load, "old", OwnerStackOrder},
		{"load order", []livepatch.Patch{on("mid", nil), on("new", nil), on("old", nil)}, load, "new", OwnerLoadOrder},
		{"load order, unpatching counts", []livepatch.Patch{on("new", nil), unpatching}, load, "going", OwnerLoadOrder},
		{"stack_order on some only", []livepatch.Patch{on("new", ptrTo(1)), on("old", nil)}, load, "new", OwnerLoadOrder},
		{"module not in /proc/modules", []livepatch.Patch{on("new", nil), on("ghost", nil)}, load, "", ""},
		{"no load order", []livepatch.Patch{on("new", nil), on("old", nil)}, nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, basis := topmost(tc.patches, tc.load)
			if got != tc.want || basis != tc.basis {
				t.Errorf("topmost() = %q, %q; want %q, %q", got, basis, tc.want, tc.basis)
			}
		})
	}
}

func ptrTo[T any](v T) *T { return &v }

// provider returns what List says of cmdline_proc_show.
func provider(t *testing.T, e *env) ProvidedFunction {
	t.Helper()
	l, err := e.m.List(e.cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range l.Functions {
		if f.Function == "cmdline_proc_show" {
			return f
		}
	}
	t.Fatalf("cmdline_proc_show not listed: %+v", l.Functions)
	return ProvidedFunction{}
}

// TestListOwnerByLoadOrder loads two non-replace patches of one function,
// in both orders: without stack_order the newest module's patch provides
// it, by load order; with stack_order the kernel says so itself.
func TestListOwnerByLoadOrder(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		features fakekernel.Features
		basis    OwnerBasis
	}{
		{"6.12", fakekernel.Linux6_12, OwnerLoadOrder},
		{"6.14", fakekernel.Linux6_14, OwnerStackOrder},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, fakekernel.Options{Features: tc.features})
			a := e.patchModule(t, "lp_a", false, "cmdline_proc_show")
			z := e.patchModule(t, "lp_z", false, "cmdline_proc_show")
			for _, order := range [][2]string{{a, z}, {z, a}} {
				for _, path := range order {
					if _, err := e.load(ctx, path, WaitOptions{}); err != nil {
						t.Fatal(err)
					}
				}
				newest := e.specs[order[1]].Name
				f := provider(t, e)
				if f.ProvidedBy != newest || f.Basis != tc.basis {
					t.Errorf("loaded %s last: provided by %q (%s), want %q (%s)", newest, f.ProvidedBy, f.Basis, newest, tc.basis)
				}
				if len(f.Patches) != 2 {
					t.Errorf("patches %v, want both", f.Patches)
				}
				for _, name := range []string{"lp_a", "lp_z"} {
					if _, err := e.m.Unload(ctx, name, WaitOptions{}); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}

// TestActivePatchByLoadOrder: of two enabled patches, a downgrade replaces
// the one loaded last, not the last by name.
func TestActivePatchByLoadOrder(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, fakekernel.Options{Features: fakekernel.Linux6_12})
	for _, name := range []string{"lp_z", "lp_a"} {
		if _, err := e.load(ctx, e.patchModule(t, name, false, "cmdline_proc_show"), WaitOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := e.m.ActivePatch(); err != nil || got != "lp_a" {
		t.Errorf("ActivePatch() = %q, %v; want lp_a, loaded last", got, err)
	}
}

func TestInstalledModule(t *testing.T) {
	e := newEnv(t, fakekernel.Options{})
	var got []string
	read := e.m.InstalledModule(e.cfg.Store, func(path string) (*modinfo.Module, error) {
		got = append(got, path)
		return &modinfo.Module{Name: "lp_fix"}, nil
	})
	if _, err := read("lp_fix"); err == nil || !strings.Contains(err.Error(), "no module file of it is installed for "+release) {
		t.Errorf("not installed: %v", err)
	}
	path := filepath.Join(e.cfg.Store.Dir, release, "lp_fix.ko")
	write(t, path, "module")
	if m, err := read("lp-fix"); err != nil || m.Name != "lp_fix" || len(got) != 1 || got[0] != path {
		t.Errorf("installed: %v %v, read %v", m, err, got)
	}
}

func TestPlanDisableTaint(t *testing.T) {
	f := fakekernel.Linux6_1
	f.SUSESupport = true
	e := newEnv(t, fakekernel.Options{Features: f, AutoTick: -1})
	if p := e.m.PlanDisableTaint("lp"); p != nil {
		t.Errorf("nothing loaded: %+v", p)
	}
	e.k.BlockTask(200)
	ctx := context.Background()
	path := e.patchModule(t, "lp", false, "cmdline_proc_show")
	done := make(chan error, 1)
	go func() {
		_, err := e.load(ctx, path, WaitOptions{})
		done <- err
	}()
	for e.k.TransitionPatch() != "lp" {
		e.k.Tick()
	}
	// Patching: a disable reverses it, which does not taint.
	if p := e.m.PlanDisableTaint("lp"); p != nil {
		t.Errorf("patching: %+v", p)
	}
	e.k.UnblockTask(200)
	for e.k.TransitionPatch() != "" {
		e.k.Tick()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(e.k.SysRoot(), "kernel", "supported")
	for _, names := range [][]string{{"lp"}, {"lp-ghost", "lp"}, nil} {
		p := e.m.PlanDisableTaint(names...)
		if p == nil || p.Evidence != want || len(p.Patches) != 1 || p.Patches[0] != "lp" {
			t.Errorf("PlanDisableTaint(%q) = %+v, want lp by %s", names, p, want)
		}
	}
	plain := newEnv(t, fakekernel.Options{})
	if _, err := plain.load(ctx, plain.patchModule(t, "lp", false, "cmdline_proc_show"), WaitOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := plain.m.PlanDisableTaint("lp"); p != nil {
		t.Errorf("not a SUSE kernel: %+v", p)
	}
}
