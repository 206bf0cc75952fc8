package admin

import (
	"context"
	"fmt"
	"strings"

	"github.com/klp-project/klp/internal/audit"
	"github.com/klp-project/klp/internal/lock"
	"github.com/klp-project/klp/internal/store"
	"github.com/klp-project/klp/kernel"
)

// InstallResult is what install or uninstall did.
type InstallResult struct {
	Action    string // "install" or "uninstall"
	Installed store.Installed
}

// Install copies a live patch module into the store for release ("" = the
// running kernel's). The module must be a livepatch module whose vermagic
// names that release. It is a change of this machine, so it exists only on
// the running kernel's handle: a snapshot of another machine must not fill
// this machine's store.
func (i *Changer) Install(ctx context.Context, file, release string) (*InstallResult, error) {
	res := &InstallResult{Action: "install"}
	err := i.locked(ctx, "install", func(rec *audit.Record) error {
		rec.File = file
		mod, err := i.cfg.Inspect(file)
		if err != nil {
			return err
		}
		rec.Patch = mod.Name
		if !mod.Livepatch {
			return fmt.Errorf("install %s: %w (its .modinfo has no livepatch=Y)", file, ErrNotLivepatch)
		}
		if release == "" {
			if release, err = i.Release(); err != nil {
				return err
			}
		}
		rec.Release = release
		if built := strings.Fields(mod.Vermagic); len(built) == 0 || built[0] != release {
			return fmt.Errorf("install %s: %w: its vermagic is %q, not for %s", file, ErrWrongKernel, mod.Vermagic, release)
		}
		in, err := i.cfg.Store.Install(file, mod.Name, release)
		res.Installed = in
		if err == nil {
			rec.Result = "installed"
		}
		return err
	})
	return res, err
}

// Uninstall removes an installed patch from klp's store for release ("" =
// the running kernel's). The name may be spelt with '-' or '_'.
func (i *Changer) Uninstall(ctx context.Context, name, release string) (*InstallResult, error) {
	res := &InstallResult{Action: "uninstall"}
	name = strings.TrimSuffix(name, ".ko")
	if err := kernel.ValidateModuleName(name); err != nil {
		return res, fmt.Errorf("uninstall %q: give the patch name, not a path: %w", name, err)
	}
	err := i.locked(ctx, "uninstall", func(rec *audit.Record) error {
		rec.Patch = kernel.ModuleName(name)
		if release == "" {
			var err error
			if release, err = i.Release(); err != nil {
				return err
			}
		}
		rec.Release = release
		in, err := i.cfg.Store.Uninstall(name, release)
		res.Installed = in
		if err == nil {
			rec.Result = "uninstalled"
		}
		return err
	})
	return res, err
}

// locked runs a store change as root, under klp's lock, and audits it.
func (i *Changer) locked(ctx context.Context, action string, fn func(rec *audit.Record) error) error {
	if i.cfg.Euid != 0 {
		return &NotRootError{action}
	}
	l, err := lock.Acquire(ctx, i.cfg.LockPath, i.cfg.LockWait)
	if err != nil {
		return fmt.Errorf("%s: %w; nothing was changed", action, err)
	}
	defer l.Release()
	rec := audit.Record{Action: action}
	err = fn(&rec)
	if err != nil {
		rec.Result, rec.Err = ResultFailed, err
	}
	if i.cfg.Audit != nil {
		if a := i.cfg.Audit(); a != nil {
			a.Record(rec)
		}
	}
	return err
}
