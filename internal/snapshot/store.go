package snapshot

import (
	"errors"
	"fmt"
	"sort"

	"github.com/klp-project/klp/internal/store"
	"github.com/klp-project/klp/kernel"
)

// StoreListing answers questions about the installed patches from the
// listing a snapshot holds, as the machine's store would: klp list, and the
// NAME a command takes for an installed patch.
type StoreListing struct{ s Store }

// Store returns the snapshot's store listing.
func (a *Archive) Store() StoreListing { return StoreListing{a.manifest.Store} }

// List returns the installed patches of release ("" for all), klp's before
// kpatch's, each sorted by release and name, as [store.Store.List] does.
func (l StoreListing) List(release string) ([]store.Installed, error) {
	if l.s.Error != nil {
		return nil, fmt.Errorf("list installed patches: %s (when the snapshot was taken)", *l.s.Error)
	}
	var out []store.Installed
	for _, in := range l.s.Installed {
		if release == "" || in.Release == release {
			out = append(out, store.Installed{Name: in.Name, Release: in.Release, Path: in.Path, Source: in.Source})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Source != b.Source {
			return a.Source == "klp"
		}
		if a.Release != b.Release {
			return a.Release < b.Release
		}
		return a.Name < b.Name
	})
	return out, nil
}

// ErrNoModuleFiles reports a NAME found in a snapshot's store listing: the
// file is on the machine the snapshot was taken on, not in the snapshot.
var ErrNoModuleFiles = errors.New("a snapshot holds the store's listing, not its module files")

// Find looks name up for release. A patch that is installed there is still
// an error wrapping [ErrNoModuleFiles] that says where the file is.
func (l StoreListing) Find(name, release string) (store.Installed, error) {
	name = kernel.FileModuleName(name)
	list, err := l.List(release)
	if err != nil {
		return store.Installed{}, err
	}
	for _, in := range list {
		if in.Name == name {
			return in, fmt.Errorf("%s is installed for %s as %s on the snapshot's machine: %w", name, release, in.Path, ErrNoModuleFiles)
		}
	}
	return store.Installed{}, fmt.Errorf("%w: %s for kernel %s (in the snapshot's listing of %v)", store.ErrNotInstalled, name, release, l.s.Dirs)
}
