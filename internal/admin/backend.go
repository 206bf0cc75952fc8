package admin

import (
	"errors"
	"fmt"

	"github.com/klp-project/klp/kmod"
	"github.com/klp-project/klp/livepatch"
)

// backend is the live patching interface of a kernel: upstream
// (/sys/kernel/livepatch), SLE 12's kGraft (/sys/kernel/kgraft), or none.
// It is chosen once, in [NewSystem], so no use case switches on it.
type backend interface {
	status() (Status, error)
	patches() ([]PatchEntry, error)
	// blocking finds the blocking tasks; processes lists processes rather
	// than threads where the interface can (kGraft's per-process flag).
	blocking(processes bool) (livepatch.Blocking, error)
	// changedFunctions are the functions the transition in progress
	// changes, and the live patch modules whose code counts as changed
	// (for the stall explanation).
	changedFunctions(tr *livepatch.Transition) (funcs []string, modules map[string]bool, err error)
	activePatch() (string, error)
}

// upstreamBackend reads /sys/kernel/livepatch, and /proc/modules for the
// order in which the patches were loaded.
type upstreamBackend struct {
	lp  livepatch.FS
	mod *kmod.FS
}

func (b upstreamBackend) status() (Status, error) {
	st := Status{Interface: livepatch.InterfaceLivepatch, Path: b.lp.LivepatchPath()}
	tr, err := b.lp.Transition()
	if err != nil {
		return st, err
	}
	st.Transition, st.InProgress = tr, tr != nil
	return st, nil
}

func (b upstreamBackend) patches() ([]PatchEntry, error) {
	patches, err := b.lp.Patches()
	if err != nil {
		return nil, err
	}
	out := make([]PatchEntry, 0, len(patches))
	for _, p := range patches {
		out = append(out, PatchEntry{Name: p.Name, Active: p.Enabled, Upstream: &p})
	}
	return out, nil
}

func (b upstreamBackend) blocking(bool) (livepatch.Blocking, error) {
	return b.lp.Blocking()
}

func (b upstreamBackend) changedFunctions(tr *livepatch.Transition) ([]string, map[string]bool, error) {
	patches, err := b.lp.Patches()
	if err != nil {
		return nil, nil, err
	}
	var funcs []string
	seen := map[string]bool{}
	modules := map[string]bool{}
	for _, p := range patches {
		modules[p.Name] = true
		if p.Name != tr.Patch {
			continue
		}
		for _, o := range p.Objects {
			for _, f := range o.Functions {
				if !seen[f.Name] {
					seen[f.Name] = true
					funcs = append(funcs, f.Name)
				}
			}
		}
	}
	return funcs, modules, nil
}

// activePatch returns the patch a downgrade replaces: the enabled patch.
// Several are enabled when patches were stacked without atomic replace (or
// belong to different replace sets); then the topmost wins: the highest
// stack_order (Linux 6.14+), else the one whose module was loaded last
// (/proc/modules, see [OwnerLoadOrder]), else the last by name, the best
// guess left.
//
// While a transition is in progress the kernel refuses to enable another
// patch (klp_enable_patch fails with EBUSY), so the package's scripts would
// fail after the package was already swapped; downgrade refuses early
// instead. (This is also why "the one in transition" never needs to be
// chosen among several enabled patches.)
func (b upstreamBackend) activePatch() (string, error) {
	patches, err := b.lp.Patches()
	if err != nil {
		return "", fmt.Errorf("downgrade: %w", err)
	}
	if tr := livepatch.TransitionOf(patches); tr != nil {
		return "", fmt.Errorf("downgrade: %s is in transition (%s); try again when 'klp status' says ready", tr.Patch, tr.Direction())
	}
	var enabled []livepatch.Patch
	for _, p := range patches {
		if p.Enabled {
			enabled = append(enabled, p)
		}
	}
	switch len(enabled) {
	case 0:
		if len(patches) > 0 {
			return "", errors.New("downgrade: no live patch is enabled")
		}
		return "", errors.New("downgrade: no live patch is loaded")
	case 1:
		return enabled[0].Name, nil
	}
	if best, _ := topmost(enabled, loadOrder(b.mod)); best != "" {
		return best, nil
	}
	return enabled[len(enabled)-1].Name, nil // last by name: Patches() sorts by name
}

// kgraftBackend reads SLE 12's /sys/kernel/kgraft.
type kgraftBackend struct{ lp livepatch.FS }

func (b kgraftBackend) status() (Status, error) {
	st := Status{Interface: livepatch.InterfaceKGraft, Path: b.lp.LivepatchPath()}
	ip, err := b.lp.KGraftInProgress()
	if err != nil {
		return st, err
	}
	st.InProgress = ip
	if ip {
		// kGraft has one global transition and does not name its patch.
		st.Transition = &livepatch.Transition{Target: livepatch.StatePatched}
	}
	return st, nil
}

func (b kgraftBackend) patches() ([]PatchEntry, error) {
	patches, err := b.lp.KGraftPatches()
	if err != nil {
		return nil, err
	}
	out := make([]PatchEntry, 0, len(patches))
	for _, p := range patches {
		out = append(out, PatchEntry{Name: p.Name, Active: p.Active, KGraft: &p})
	}
	return out, nil
}

func (b kgraftBackend) blocking(processes bool) (livepatch.Blocking, error) {
	return b.lp.KGraftBlocking(!processes)
}

// changedFunctions: kGraft does not name the patch in transition; the
// functions of every patch still being applied (state "slow") are what a
// blocking task may sleep in.
func (b kgraftBackend) changedFunctions(*livepatch.Transition) ([]string, map[string]bool, error) {
	patches, err := b.lp.KGraftPatches()
	if err != nil {
		return nil, nil, err
	}
	var funcs []string
	seen := map[string]bool{}
	modules := map[string]bool{}
	for _, p := range patches {
		modules[p.Name] = true
		for _, f := range p.Functions {
			if f.State == livepatch.KGraftStateSlow && !seen[f.Name] {
				seen[f.Name] = true
				funcs = append(funcs, f.Name)
			}
		}
	}
	return funcs, modules, nil
}

func (b kgraftBackend) activePatch() (string, error) {
	inProgress, err := b.lp.KGraftInProgress()
	if err != nil {
		return "", err
	}
	if inProgress {
		return "", errors.New("downgrade: a kGraft patch transition is in progress; try again when 'klp status' says ready")
	}
	patches, err := b.lp.KGraftPatches()
	if err != nil {
		return "", err
	}
	name := ""
	for _, p := range patches {
		if p.Active {
			name = p.Name
		}
	}
	if name == "" {
		return "", errors.New("downgrade: no live patch is loaded")
	}
	return name, nil
}

// noBackend is a kernel without live patching.
type noBackend struct{ lp livepatch.FS }

func (b noBackend) status() (Status, error) {
	return Status{Interface: livepatch.InterfaceNone, Path: b.lp.LivepatchPath()}, nil
}

func (b noBackend) patches() ([]PatchEntry, error) { return nil, nil }

func (b noBackend) blocking(bool) (livepatch.Blocking, error) { return livepatch.Blocking{}, nil }

func (b noBackend) changedFunctions(*livepatch.Transition) ([]string, map[string]bool, error) {
	return nil, nil, nil
}

func (b noBackend) activePatch() (string, error) {
	// The upstream reader says what is missing.
	_, err := b.lp.Patches()
	return "", fmt.Errorf("downgrade: %w", err)
}
