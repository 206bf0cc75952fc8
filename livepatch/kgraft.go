package livepatch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/klp-project/klp/kernel"
)

// KGraftPatch is one patch of the SLE 12 kGraft interface:
// /sys/kernel/kgraft/<Name>.
type KGraftPatch struct {
	Name string
	// Active is false when every function of the patch has been reverted
	// or replaced (state REVERT_SLOW or REVERTED), as happens to an older
	// patch after a replace_all patch; such a module stays loaded until it
	// is removed. A patch whose state table cannot be read counts as active.
	Active bool
	// Refs counts newer patches stacked on this one; nil when absent.
	// /sys/kernel/kgraft/<Name>/refs
	Refs *int
	// ReplaceAll is true for a cumulative patch; nil when absent.
	// /sys/kernel/kgraft/<Name>/replace_all
	ReplaceAll *bool
	// Functions are the rows of /sys/kernel/kgraft/<Name>/state.
	Functions []KGraftFunction
}

// KGraftFunction is one row of a kGraft patch's state table.
type KGraftFunction struct {
	Name   string
	Object string // empty in the older three-column table
	Sympos int
	// State is enum kgr_patch_state: 0 init, 1 slow, 2 applied,
	// 3 revert_slow, 4 reverted, 5 skipped (target module not loaded).
	State int
}

// kGraft's enum kgr_patch_state, the State of a [KGraftFunction].
const (
	KGraftStateInit       = 0
	KGraftStateSlow       = 1 // being applied: tasks may still run the old code
	KGraftStateApplied    = 2
	KGraftStateRevertSlow = 3
	KGraftStateReverted   = 4
	KGraftStateSkipped    = 5 // the target module is not loaded
)

// KGraftInProgress reads /sys/kernel/kgraft/in_progress.
func (fs FS) KGraftInProgress() (bool, error) {
	v, err := fs.k.ReadBool(fs.SysPath(kgraftDir, "in_progress"))
	if errors.Is(err, os.ErrNotExist) && !fs.k.Exists(fs.SysPath(kgraftDir)) {
		return false, fmt.Errorf("%w: %s does not exist", ErrNotSupported, fs.SysPath(kgraftDir))
	}
	if err != nil {
		return false, fmt.Errorf("read kgraft state: %w", err)
	}
	return v, nil
}

// KGraftPatches lists the kGraft patches in name order.
func (fs FS) KGraftPatches() ([]KGraftPatch, error) {
	dir := fs.SysPath(kgraftDir)
	entries, err := fs.k.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s does not exist", ErrNotSupported, dir)
		}
		return nil, fmt.Errorf("list kgraft patches: %w", err)
	}
	var patches []KGraftPatch
	for _, e := range entries {
		if !fs.k.IsDirEntry(dir, e) {
			continue
		}
		p, err := fs.readKGraftPatch(filepath.Join(dir, e.Name()), e.Name())
		if err != nil {
			return nil, err
		}
		patches = append(patches, p)
	}
	return patches, nil
}

func (fs FS) readKGraftPatch(dir, name string) (KGraftPatch, error) {
	p := KGraftPatch{Name: name, Active: true}
	var err error
	if p.Refs, err = fs.optionalInt(filepath.Join(dir, "refs")); err != nil {
		return p, fmt.Errorf("read kgraft patch %s: %w", name, err)
	}
	if p.ReplaceAll, err = fs.optionalBool(filepath.Join(dir, "replace_all")); err != nil {
		return p, fmt.Errorf("read kgraft patch %s: %w", name, err)
	}
	b, err := fs.k.ReadBytes(filepath.Join(dir, "state"), kernel.MaxAttrSize)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return p, nil
	case err != nil:
		return p, fmt.Errorf("read kgraft patch %s: %w", name, err)
	}
	p.Functions = parseKGraftState(b)
	if len(p.Functions) > 0 {
		p.Active = false
		for _, f := range p.Functions {
			if f.State != KGraftStateRevertSlow && f.State != KGraftStateReverted {
				p.Active = true
			}
		}
	}
	return p, nil
}

// parseKGraftState parses the state table. Older kernels print
// "name state abort_if_missing", later ones "Function Object Sympos State"
// with a header line; rows that do not parse (headers) are skipped.
func parseKGraftState(b []byte) []KGraftFunction {
	var fns []KGraftFunction
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 3:
			st, err := strconv.Atoi(f[1])
			if err != nil {
				continue
			}
			fns = append(fns, KGraftFunction{Name: f[0], State: st})
		case len(f) >= 4:
			st, err1 := strconv.Atoi(f[3])
			pos, err2 := strconv.Atoi(f[2])
			if err1 != nil || err2 != nil {
				continue
			}
			fns = append(fns, KGraftFunction{Name: f[0], Object: f[1], Sympos: pos, State: st})
		}
	}
	return fns
}

// KGraftBlocking finds the processes (or, with threads, the threads) whose
// kgr_in_progress flag is set while a kGraft patch is in progress.
func (fs FS) KGraftBlocking(threads bool) (Blocking, error) {
	inProgress, err := fs.KGraftInProgress()
	if err != nil || !inProgress {
		return Blocking{}, err
	}
	// kGraft has one global transition and does not name its patch.
	tr := &Transition{Target: StatePatched}
	return fs.blockingFor(tr, ScanOptions{File: "kgr_in_progress", Processes: !threads}, func(v PatchState) bool {
		return v != 0
	})
}
