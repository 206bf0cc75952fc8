package preflight

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/klp-project/klp/internal/fakefs"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/livepatch"
	"github.com/klp-project/klp/modinfo"
)

// inSet is a loaded patch of replace set n, changing vmlinux functions.
func inSet(name string, n uint32, funcs ...string) livepatch.Patch {
	p := patch(name, true, ptr(false), funcs...)
	p.ReplaceSet = &n
	return p
}

// setMod is a patch module of replace set n.
func setMod(n uint32, funcs ...string) *modinfo.Module {
	m := livepatchMod("p", ptr(n != 0), funcs...)
	m.Targets.ReplaceSet, m.Targets.States = &n, []modinfo.KlpState{}
	return m
}

func TestReplaceSetFacts(t *testing.T) {
	on := func(m *modinfo.Module, ps ...livepatch.Patch) facts { return facts{module: m, patches: patches(ps...)} }
	withStates := setMod(2, "cmdline_proc_show")
	withStates.Targets.States = []modinfo.KlpState{{ID: 7, Version: 1}}
	states := func(ps map[string]reading[[]modinfo.KlpState], loaded ...livepatch.Patch) facts {
		f := on(withStates, loaded...)
		f.loadedStates = ps
		return f
	}
	noSet := livepatchMod("p", nil, "cmdline_proc_show")
	klpBuild := livepatchMod("p", nil, "cmdline_proc_show")
	klpBuild.Targets.Objects = []modinfo.TargetObject{{Name: "vmlinux", Sources: []modinfo.Source{modinfo.SourceKlpBuild}}}
	const refused = "replace set 2: the kernel refuses the load: patches of different replace sets may not change the same function or use the same klp_state id, and "
	const refusedFix = "load the patch built for the replace set of the patches it clashes with, or unload them first"
	testCheck(t, replace, []factCase{
		{"alone in its set", on(setMod(2, "cmdline_proc_show"), inSet("a", 1, "meminfo_proc_show")),
			Check{Status: Pass, Reason: "replace set 2: no loaded patch is in it, so it replaces nothing; it coexists with a (set 1), which change none of its functions"}},
		{"itself loaded", on(setMod(2, "cmdline_proc_show"), inSet("p", 2, "cmdline_proc_show")),
			Check{Status: Pass, Reason: "replace set 2: no loaded patch is in it, so it replaces nothing"}},
		{"replaces its set", on(setMod(2, "cmdline_proc_show"), inSet("old", 2, "cmdline_proc_show")),
			Check{Status: Pass, Reason: "replace set 2: it replaces old and patches every function they patch"}},
		{"replaces its set, drops one", on(setMod(0, "cmdline_proc_show"), inSet("old", 0, "cmdline_proc_show", "version_proc_show"), inSet("b", 5, "meminfo_proc_show")),
			Check{Status: Warn, Reason: "replace set 0: it replaces old, and 1 function they patch will go back to the original code; it coexists with b (set 5), which change none of its functions",
				Fix:     "make sure this patch is meant to drop those fixes (a downgrade does); otherwise load the complete patch of the set",
				Details: []string{"vmlinux/version_proc_show,1 (from old)"}}},
		{"undetermined functions", on(func() *modinfo.Module { m := setMod(2); m.Targets.Undetermined = "no .symtab"; return m }(), inSet("old", 2, "cmdline_proc_show")),
			Check{Status: Warn, Reason: "replace set 2: it replaces old, and klp cannot tell which of their functions it still patches",
				Fix: "make sure this patch contains every fix of the patches of its set"}},
		{"function clash", on(setMod(2, "cmdline_proc_show", "version_proc_show"), inSet("a", 1, "cmdline_proc_show"), inSet("b", 7, "version_proc_show")),
			Check{Status: Fail, Reason: refused + "vmlinux/cmdline_proc_show,1 is changed by a (set 1), vmlinux/version_proc_show,1 is changed by b (set 7)",
				Fix:     refusedFix,
				Details: []string{"vmlinux/cmdline_proc_show,1 is changed by a (set 1)", "vmlinux/version_proc_show,1 is changed by b (set 7)"}}},
		{"state clash", states(map[string]reading[[]modinfo.KlpState]{"a": {v: []modinfo.KlpState{{ID: 7, Version: 3}}}}, inSet("a", 1, "meminfo_proc_show")),
			Check{Status: Fail, Reason: refused + "klp_state id 7 is used by a (set 1)", Fix: refusedFix, Details: []string{"klp_state id 7 is used by a (set 1)"}}},
		{"states apart", states(map[string]reading[[]modinfo.KlpState]{"a": {v: []modinfo.KlpState{{ID: 8, Version: 1}}}}, inSet("a", 1, "meminfo_proc_show")),
			Check{Status: Pass, Reason: "replace set 2: no loaded patch is in it, so it replaces nothing; it coexists with a (set 1), which change none of its functions"}},
		{"states unknown", states(map[string]reading[[]modinfo.KlpState]{"a": {err: errors.New("no installed module file")}}, inSet("a", 1, "meminfo_proc_show"), inSet("b", 3, "x")),
			Check{Status: Warn, Reason: "replace set 2: no loaded patch is in it, so it replaces nothing; it coexists with a (set 1), b (set 3), which change none of its functions; the kernel refuses the load if another set's patch uses one of its klp_state ids, and klp cannot read those of 2 patches",
				Fix:     "install the loaded patches (klp install) so that klp can read their klp_state ids, or check them in their sources",
				Details: []string{"a (set 1): no installed module file", "b (set 3): its module file is unknown"}}},
		{"same set's states do not matter", states(nil, inSet("old", 2, "cmdline_proc_show")),
			Check{Status: Pass, Reason: "replace set 2: it replaces old and patches every function they patch"}},
		{"set unknown", on(noSet, inSet("a", 1, "cmdline_proc_show")),
			Check{Status: Warn, Reason: "this kernel has replace sets, and klp cannot tell this patch's (the file has no static struct klp_patch); unless it is their set, 1 clash",
				Fix:     "find out the patch's replace set: the kernel refuses it if another set's patch changes one of its functions, and it replaces the patches of its own set",
				Details: []string{"vmlinux/cmdline_proc_show,1 is changed by a (set 1)"}}},
		{"klp-build set unknown", on(klpBuild, inSet("a", 1, "meminfo_proc_show")),
			Check{Status: Warn, Reason: "this kernel has replace sets, and klp cannot tell this patch's (a klp-build patch sets it in its init code)",
				Fix: "find out the patch's replace set: the kernel refuses it if another set's patch changes one of its functions, and it replaces the patches of its own set"}},
	})
}

func TestReplaceSetsNeedLoadedStates(t *testing.T) {
	m := setMod(1, "f")
	if n := replaceNeeds(m); n&needLoadedStates != 0 {
		t.Errorf("a module without states needs loaded states: %b", n)
	}
	m.Targets.States = []modinfo.KlpState{{ID: 1}}
	if n := replaceNeeds(m); n&needLoadedStates == 0 {
		t.Errorf("a module with states does not need loaded states: %b", n)
	}
}

// TestReplaceSetReadsLoadedStates runs preflight on the fixture tree of the
// proposed layout: the loaded patches' klp_state ids come from their module
// files through Inputs.LoadedModule.
func TestReplaceSetReadsLoadedStates(t *testing.T) {
	root := fakefs.Load(t, filepath.Join("..", "..", "testdata", "replace-set.txtar"))
	h, err := kernel.Open(kernel.Roots{Sys: filepath.Join(root, "sys"), Proc: filepath.Join(root, "proc")})
	if err != nil {
		t.Fatal(err)
	}
	mod := setMod(3, "slab_show")
	mod.Targets.States = []modinfo.KlpState{{ID: 7, Version: 1}}
	var asked []string
	loaded := func(name string) (*modinfo.Module, error) {
		asked = append(asked, name)
		switch name {
		case "livepatch_hotfix":
			m := setMod(0)
			m.Targets.States = []modinfo.KlpState{{ID: 7, Version: 2}}
			return m, nil
		case "livepatch_sle_7_1":
			return setMod(1), nil
		}
		return nil, errors.New("not installed")
	}
	rep, err := Run(context.Background(), Inputs{Kernel: h, Module: mod, LoadedModule: loaded})
	if err != nil {
		t.Fatal(err)
	}
	var c *Check
	for i := range rep.Checks {
		if rep.Checks[i].ID == IDReplace {
			c = &rep.Checks[i]
		}
	}
	if c == nil || c.Status != Fail || !strings.Contains(c.Reason, "klp_state id 7 is used by livepatch_hotfix (set 0)") {
		t.Errorf("replace check = %+v, want a state clash with livepatch_hotfix", c)
	}
	sort.Strings(asked)
	if want := []string{"livepatch_db_tune_1", "livepatch_hotfix", "livepatch_sle_7_1"}; !slices.Equal(asked, want) {
		t.Errorf("asked for %v, want %v", asked, want)
	}
	// Without states of its own, the module needs no file of the others.
	asked = nil
	if _, err := Run(context.Background(), Inputs{Kernel: h, Module: setMod(3, "slab_show"), LoadedModule: loaded}); err != nil {
		t.Fatal(err)
	}
	if len(asked) != 0 {
		t.Errorf("asked for %v without states to compare", asked)
	}
}
