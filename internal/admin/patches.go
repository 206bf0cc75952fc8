package admin

import (
	"errors"

	"github.com/klp-project/klp/ftrace"
	"github.com/klp-project/klp/livepatch"
)

// PatchEntry is one loaded patch as `patches` lists it.
type PatchEntry struct {
	Name string
	// Active is what SUSE's klp -v patches prints as "active": the enabled
	// attribute upstream; on kGraft, false once every function of the
	// patch was reverted or replaced.
	Active bool
	// Upstream is the patch as /sys/kernel/livepatch shows it; nil on
	// kGraft.
	Upstream *livepatch.Patch
	// KGraft is the patch as /sys/kernel/kgraft shows it; nil upstream.
	KGraft *livepatch.KGraftPatch
	// Package is the package that installed the module, when asked for.
	Package *PackageInfo
	// OtherUsers are the patch's functions that have users other than
	// live patching (with verbose; see [System.OtherUsers]).
	OtherUsers []FunctionUsers
}

// PatchList is the answer of [System.Patches].
type PatchList struct {
	Interface livepatch.Interface
	Patches   []PatchEntry
	// Diagnostics are, in the order they came, the errors of package
	// lookups and the notes about missing package information (each note
	// once).
	Diagnostics []Diagnostic
	// UsersRead: the other users of the functions were read (verbose,
	// upstream interface); UsersErr says why they could not be.
	UsersRead bool
	UsersErr  error
}

// Diagnostic is an error or a note met while answering.
type Diagnostic struct {
	Err  error  // a package lookup failed (a *PackageError)
	Note string // something the user should know
}

// Patches lists the loaded patches. With a non-nil source and verbose > 0
// each is described with its package (which runs the package manager).
func (s *System) Patches(src PackageSource, verbose int) (*PatchList, error) {
	entries, err := s.backend.patches()
	if err != nil {
		return nil, err
	}
	pl := &PatchList{Interface: s.iface, Patches: entries}
	if verbose > 0 && s.iface == livepatch.InterfaceLivepatch {
		s.patchUsers(pl)
	}
	if src == nil || verbose == 0 {
		return pl, nil
	}
	seen := map[string]bool{}
	for i := range pl.Patches {
		pkg, notes, err := src.Describe(pl.Patches[i].Name, verbose)
		if err != nil {
			pl.Diagnostics = append(pl.Diagnostics, Diagnostic{Err: &PackageError{Patch: pl.Patches[i].Name, Err: err}})
		}
		pl.Patches[i].Package = pkg
		for _, n := range notes {
			if !seen[n] {
				seen[n] = true
				pl.Diagnostics = append(pl.Diagnostics, Diagnostic{Note: n})
			}
		}
	}
	return pl, nil
}

// patchUsers fills each patch's other users.
func (s *System) patchUsers(pl *PatchList) {
	var all []ftrace.Func
	for _, e := range pl.Patches {
		if e.Upstream != nil {
			all = append(all, patchFuncs(*e.Upstream)...)
		}
	}
	users, err := s.OtherUsers(all)
	if err != nil {
		pl.UsersErr = err
		return
	}
	pl.UsersRead = true
	for i, e := range pl.Patches {
		if e.Upstream == nil {
			continue
		}
		mine := map[ftrace.Func]bool{}
		for _, f := range patchFuncs(*e.Upstream) {
			mine[f] = true
		}
		for _, u := range users {
			if mine[ftrace.Func{Object: u.Object, Name: u.Function}] {
				pl.Patches[i].OtherUsers = append(pl.Patches[i].OtherUsers, u)
			}
		}
	}
}

// PackageError is a package lookup that failed for one patch.
type PackageError struct {
	Patch string
	Err   error
}

func (e *PackageError) Error() string { return e.Patch + ": " + e.Err.Error() }
func (e *PackageError) Unwrap() error { return e.Err }

// ActivePatch returns the patch a downgrade replaces (see the backends).
func (s *System) ActivePatch() (string, error) { return s.backend.activePatch() }

// errNoTransition is what signal and force say when nothing is in
// transition.
var errNoTransition = errors.New("no transition in progress")
