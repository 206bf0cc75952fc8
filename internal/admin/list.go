package admin

import (
	"errors"
	"sort"
	"strings"

	"github.com/klp-project/klp/internal/store"
	"github.com/klp-project/klp/livepatch"
)

// PatchState is the state of a loaded patch as klp list shows it.
type PatchState string

// The states of a loaded patch.
const (
	StateEnabled    PatchState = "enabled"
	StateDisabled   PatchState = "disabled" // kernels before 5.1 keep a disabled patch
	StatePatching   PatchState = "patching"
	StateUnpatching PatchState = "unpatching"
	// StateSuperseded is a live patch module still loaded without a live
	// patch and without references, as an atomic replace or a disable
	// leaves it: klp unload removes it.
	StateSuperseded PatchState = "superseded"
	// StatePinned is such a module that still holds its reference because
	// its patch was forced: it cannot be removed until reboot.
	StatePinned PatchState = "pinned"
)

// StateOf returns the state of a patch that has a directory.
func StateOf(p livepatch.Patch) PatchState {
	switch {
	case p.InTransition() && p.Enabled:
		return StatePatching
	case p.InTransition():
		return StateUnpatching
	case !p.Enabled:
		return StateDisabled
	}
	return StateEnabled
}

// LoadedPatch is one loaded patch (or patch module) of klp list.
type LoadedPatch struct {
	Name       string
	State      PatchState
	Replace    *bool
	ReplaceSet *uint32
	StackOrder *int
}

// ProvidedFunction is one patched function with the patches that change it.
type ProvidedFunction struct {
	Object   string
	Function string
	Sympos   int
	Patches  []string
	// ProvidedBy is the patch whose code runs (see [OwnerBasis]); "" when
	// klp cannot tell, or when no patch is active.
	ProvidedBy string
	// Basis says how ProvidedBy was determined; "" when klp cannot tell,
	// [OwnerNoneActive] when the original code runs.
	Basis OwnerBasis
}

// List is what klp list reports.
type List struct {
	// Release is the running kernel's release; "" when unreadable.
	Release   string
	Loaded    []LoadedPatch
	Installed []store.Installed
	Functions []ProvidedFunction
	// OtherUsers are the patched functions that have users other than
	// live patching (BPF programs, kprobes): some win over the patch
	// without a word. OtherUsersErr says why they could not be read (then
	// OtherUsers is nil).
	OtherUsers    []FunctionUsers
	OtherUsersErr error
}

// Installed answers what is installed for boot: the machine's store
// ([store.Store]), or the listing a snapshot holds.
type Installed interface {
	// List returns the installed patches of release, or of every release
	// for "".
	List(release string) ([]store.Installed, error)
	// Find returns the installed file of the named patch for release.
	Find(name, release string) (store.Installed, error)
}

var _ Installed = store.Store{}

// List reads the loaded patches with their states, the patch modules left
// loaded without a patch (superseded or pinned), the installed patches of
// st, and every patched function with the patch that provides it.
func (s *System) List(st Installed) (*List, error) {
	l := &List{}
	l.Release, _ = s.Release()
	var patches []livepatch.Patch
	switch s.iface {
	case livepatch.InterfaceLivepatch:
		var err error
		if patches, err = s.LP.Patches(); err != nil {
			return nil, err
		}
		for _, p := range patches {
			l.Loaded = append(l.Loaded, LoadedPatch{Name: p.Name, State: StateOf(p), Replace: p.Replace, ReplaceSet: p.ReplaceSet, StackOrder: p.StackOrder})
		}
	case livepatch.InterfaceKGraft:
		kps, err := s.LP.KGraftPatches()
		if err != nil {
			return nil, err
		}
		for _, kp := range kps {
			state := StateEnabled
			if !kp.Active {
				state = StateSuperseded
			}
			l.Loaded = append(l.Loaded, LoadedPatch{Name: kp.Name, State: state, Replace: kp.ReplaceAll})
			patches = append(patches, kgraftAsPatch(kp))
		}
	}
	// Patch modules without a patch directory: an atomic replace or a
	// disable left them loaded with no reference (superseded, removable),
	// or a force pinned them (the kernel keeps their reference).
	if s.iface == livepatch.InterfaceLivepatch {
		if names, err := s.LivepatchModules(); err == nil {
			live := map[string]bool{}
			for _, p := range patches {
				live[p.Name] = true
			}
			for _, n := range names {
				if live[n] {
					continue
				}
				state := StateSuperseded
				if ref, err := s.Mod.Refcnt(n); err == nil && ref > 0 {
					state = StatePinned
				}
				l.Loaded = append(l.Loaded, LoadedPatch{Name: n, State: state})
			}
		}
	}
	var err error
	if l.Installed, err = st.List(""); err != nil {
		return nil, err
	}
	// kGraft's order of patches is not known to klp: only the upstream
	// interface infers the owner from the load order.
	var load map[string]int
	if s.iface == livepatch.InterfaceLivepatch {
		load = loadOrder(s.Mod)
	}
	l.Functions = providers(patches, load)
	if s.iface == livepatch.InterfaceLivepatch {
		l.OtherUsers, l.OtherUsersErr = s.OtherUsers(patchFuncs(patches...))
	}
	return l, nil
}

// kgraftAsPatch turns a kGraft patch's state table into the objects and
// functions of the upstream view, for the function list.
func kgraftAsPatch(kp livepatch.KGraftPatch) livepatch.Patch {
	p := livepatch.Patch{Name: kp.Name, Enabled: kp.Active}
	byObj := map[string]int{}
	for _, f := range kp.Functions {
		if f.State == livepatch.KGraftStateReverted || f.State == livepatch.KGraftStateRevertSlow {
			continue
		}
		obj := f.Object
		if obj == "" {
			obj = "vmlinux"
		}
		i, ok := byObj[obj]
		if !ok {
			i = len(p.Objects)
			byObj[obj] = i
			p.Objects = append(p.Objects, livepatch.Object{Name: obj})
		}
		p.Objects[i].Functions = append(p.Objects[i].Functions, livepatch.Function{Name: f.Name, Sympos: f.Sympos})
	}
	return p
}

// LivepatchModules lists the loaded modules that are live patches, newest
// first (the order of /proc/modules): those the kernel tainted with K
// (TAINT_LIVEPATCH), which includes the ones that no longer have a patch
// directory (replaced, disabled, or forced and pinned), and any patch
// directory whose module /proc/modules does not show.
func (s *System) LivepatchModules() ([]string, error) {
	var names []string
	seen := map[string]bool{}
	mods, err := s.Mod.Modules()
	if err != nil {
		return nil, err
	}
	for _, mod := range mods {
		if strings.Contains(mod.Taints, "K") {
			seen[mod.Name] = true
			names = append(names, mod.Name)
		}
	}
	patches, err := s.LP.Patches()
	if err != nil && !errors.Is(err, livepatch.ErrNotSupported) {
		return nil, err
	}
	for _, p := range patches {
		if !seen[p.Name] {
			names = append(names, p.Name)
		}
	}
	return names, nil
}

// providers lists every patched function with the patches that change it
// and the one whose code runs ([topmost]); load ranks the modules by load
// order (nil: unknown).
func providers(patches []livepatch.Patch, load map[string]int) []ProvidedFunction {
	type key struct {
		obj, fn string
		pos     int
	}
	byKey := map[key]*ProvidedFunction{}
	changers := map[key][]livepatch.Patch{}
	var keys []key
	for _, p := range patches {
		for _, o := range p.Objects {
			for _, f := range o.Functions {
				k := key{o.Name, f.Name, f.Sympos}
				e := byKey[k]
				if e == nil {
					e = &ProvidedFunction{Object: o.Name, Function: f.Name, Sympos: f.Sympos}
					byKey[k] = e
					keys = append(keys, k)
				}
				e.Patches = append(e.Patches, p.Name)
				changers[k] = append(changers[k], p)
			}
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.obj != b.obj {
			return a.obj < b.obj
		}
		if a.fn != b.fn {
			return a.fn < b.fn
		}
		return a.pos < b.pos
	})
	out := make([]ProvidedFunction, 0, len(keys))
	for _, k := range keys {
		e := byKey[k]
		e.ProvidedBy, e.Basis = topmost(changers[k], load)
		out = append(out, *e)
	}
	return out
}
