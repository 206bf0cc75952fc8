package admin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/klp-project/klp/ftrace"
	"github.com/klp-project/klp/internal/preflight"
	"github.com/klp-project/klp/internal/store"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/kmod"
	"github.com/klp-project/klp/livepatch"
	"github.com/klp-project/klp/modinfo"
)

var (
	// ErrNotLivepatch reports a module file without livepatch=Y in its
	// .modinfo: loading it would not patch anything.
	ErrNotLivepatch = errors.New("not a livepatch module")
	// ErrWrongKernel reports a module built for another kernel release
	// (its vermagic names another release).
	ErrWrongKernel = errors.New("module built for another kernel")
)

// PreflightCheck is one preflight check's outcome.
type PreflightCheck = preflight.Check

// RefusedError is a load refused by a failed preflight check: the kernel
// (or the load itself) would refuse the module anyway, and this refusal
// comes with a reason and a fix instead of an errno. It is
// [kernel.ErrPermission] when a permission check failed (the module loader
// checks modules_disabled, the signature and lockdown before the patch's
// init runs, so that is what the kernel would have answered), else
// [kernel.ErrNotSupported] when live patching is missing.
type RefusedError struct {
	Patch  string
	Failed []PreflightCheck
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("load %s refused: %d preflight check(s) failed (--skip-preflight loads anyway)", e.Patch, len(e.Failed))
}

// Is makes errors.Is see the kernel's answer the checks predict.
func (e *RefusedError) Is(target error) bool {
	perm, unsupported := false, false
	for _, c := range e.Failed {
		switch c.ID {
		case preflight.IDSigEnforce, preflight.IDLockdown, preflight.IDModulesDisabled:
			perm = true
		case preflight.IDLivepatchSupported:
			unsupported = true
		}
	}
	switch target {
	case kernel.ErrPermission:
		return perm
	case kernel.ErrNotSupported:
		return unsupported && !perm
	}
	return false
}

// ResolveModule turns a FILE.ko|NAME argument into a module file: an
// argument with a '/' or ".ko" is a path (it must exist); a bare name is
// looked up among the patches installed for the running kernel, in '-' or
// '_' spelling.
func (s *System) ResolveModule(st Installed, verb, arg string) (string, error) {
	if strings.Contains(arg, "/") || strings.Contains(arg, ".ko") {
		if _, err := os.Stat(arg); err != nil {
			return "", fmt.Errorf("%s %s: %w", verb, arg, errors.Unwrap(err))
		}
		return arg, nil
	}
	if err := kernel.ValidateModuleName(arg); err != nil {
		return "", fmt.Errorf("%s: %w", verb, err)
	}
	rel, err := s.Release()
	if err != nil {
		return "", err
	}
	in, err := st.Find(arg, rel)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w; give the path of a .ko file", verb, arg, err)
	}
	return in.Path, nil
}

// InstalledModule returns a reader of a loaded patch's installed module
// file (in st, for the running release), parsed by inspect: what
// preflight.Inputs.LoadedModule wants, for what sysfs does not show of a
// loaded patch. The installed file is taken to be the loaded build.
func (s *System) InstalledModule(st store.Store, inspect func(path string) (*modinfo.Module, error)) func(name string) (*modinfo.Module, error) {
	return func(name string) (*modinfo.Module, error) {
		rel, err := s.Release()
		if err != nil {
			return nil, err
		}
		in, err := st.Find(name, rel)
		if errors.Is(err, store.ErrNotInstalled) {
			return nil, fmt.Errorf("no module file of it is installed for %s", rel)
		}
		if err != nil {
			return nil, err
		}
		return inspect(in.Path)
	}
}

// CheckModule refuses what cannot be a patch for this kernel: a file that
// is not a livepatch module, or one built for another kernel release (the
// kernel would refuse it with ENOEXEC, and say why only in its log).
func (s *System) CheckModule(path string, mod *modinfo.Module) error {
	if mod.Name == "" {
		return fmt.Errorf("%s: cannot tell the module's name", path)
	}
	if err := kernel.ValidateModuleName(mod.Name); err != nil {
		return fmt.Errorf("%s: the module's own name: %w", path, err)
	}
	if !mod.Livepatch {
		return fmt.Errorf("%s: %w (its .modinfo has no livepatch=Y)", path, ErrNotLivepatch)
	}
	rel, err := s.Release()
	if err != nil {
		return err
	}
	if built := strings.Fields(mod.Vermagic); len(built) > 0 && built[0] != rel {
		return fmt.Errorf("%s: %w: built for %s, running %s", path, ErrWrongKernel, built[0], rel)
	}
	return nil
}

// LoadRequest is a load.
type LoadRequest struct {
	Path   string
	Params string
	Wait   WaitOptions
	// SkipPreflight loads even when a cheap preflight check fails.
	SkipPreflight bool
}

// Load loads a patch module file and waits for its transition, under the
// lock: the module is read once, the cheap preflight checks run on it (so
// "no transition in progress" holds when the load is made), then the load.
//
// A patch that is already loaded and enabled is reported ("already
// loaded"), not an error, so that loading every installed patch at boot is
// idempotent. A module of the same name that an atomic replace left loaded
// but disabled is removed first, because the kernel would refuse the load
// with EEXIST. On kernels before 5.1, a loaded but disabled patch is
// enabled again.
func (c *Changer) Load(ctx context.Context, req LoadRequest) (*Outcome, error) {
	return c.change(ctx, &Outcome{Action: "load", File: req.Path}, func(ctx context.Context, o *Outcome) error {
		return c.load(ctx, o, req)
	})
}

func (c *Changer) load(ctx context.Context, o *Outcome, req LoadRequest) error {
	start := time.Now()
	mod, err := c.cfg.Inspect(req.Path)
	if err != nil {
		return err
	}
	o.Patch = kernel.ModuleName(mod.Name)
	if !req.SkipPreflight {
		rep, err := preflight.Run(ctx, preflight.Inputs{Kernel: c.K, Module: mod, Cheap: true})
		if ctx.Err() != nil {
			o.Result = ResultRefused
			return fmt.Errorf("load %s: %w during the preflight checks; nothing was changed", o.Patch, ErrInterrupted)
		}
		if err != nil {
			return fmt.Errorf("preflight: %w", err)
		}
		o.Preflight = rep.Checks
		if failed := rep.Failed(); len(failed) > 0 {
			o.Result = ResultRefused
			name := mod.Name
			if name == "" {
				name = req.Path
			}
			return &RefusedError{Patch: name, Failed: failed}
		}
	}
	if err := c.CheckModule(req.Path, mod); err != nil {
		return err
	}
	patches, err := c.LP.Patches()
	if err != nil {
		return err
	}
	if tr := livepatch.TransitionOf(patches); tr != nil && tr.Patch != o.Patch {
		return fmt.Errorf("load %s: %w: %s is %s; wait for it (klp wait %s) or reverse it first", o.Patch, livepatch.ErrTransitionInProgress, tr.Patch, tr.Direction(), tr.Patch)
	}
	for _, p := range patches {
		if p.Name != o.Patch {
			continue
		}
		switch {
		case p.Enabled && !p.InTransition():
			o.Result = ResultAlreadyLoaded
			c.event(o, "patch %s is already loaded and enabled", p.Name)
			o.Elapsed = time.Since(start)
			return nil
		case p.Enabled:
			c.event(o, "patch %s is already loaded and patching; waiting for it", p.Name)
			return c.wait(ctx, o, start, req.Wait, StallLeave)
		default:
			// Only kernels before 5.1 keep a disabled patch registered.
			c.event(o, "patch %s is loaded but disabled; enabling it again", p.Name)
			if err := c.Ctl.Enable(p.Name); err != nil {
				return err
			}
			return c.wait(ctx, o, start, req.Wait, req.Wait.OnStall)
		}
	}
	if loaded, err := c.Mod.Module(o.Patch); err == nil {
		if loaded.Refcnt != 0 {
			return fmt.Errorf("load %s: module %s is loaded without a live patch and holds %d reference(s); remove it first", o.Patch, o.Patch, loaded.Refcnt)
		}
		c.event(o, "removing module %s, left loaded after it was disabled or replaced", o.Patch)
		if err := c.Loader.Unload(o.Patch, 0); err != nil {
			return fmt.Errorf("load %s: remove the stale module first: %w", o.Patch, err)
		}
	}
	res, err := c.Loader.Load(req.Path, req.Params)
	var lerr *kmod.LoadError
	switch {
	case res != nil:
		o.KernelLog = kmod.Messages(res.Log)
	case errors.As(err, &lerr):
		o.KernelLog = kmod.Messages(lerr.Log)
	}
	if err != nil {
		return fmt.Errorf("load %s: %w", o.Patch, err)
	}
	err = c.wait(ctx, o, start, req.Wait, req.Wait.OnStall)
	if err == nil && o.Result == ResultPatched {
		c.noteOverrides(o)
	}
	return err
}

// noteOverrides says, after a load, which of the patch's functions another
// user overrides: the kernel took the patch, and will not say that a BPF
// fmod_ret or LSM program answers in its place. Nothing is said when the
// users cannot be read.
func (c *Changer) noteOverrides(o *Outcome) {
	p, err := c.LP.Patch(o.Patch)
	if err != nil {
		return
	}
	users, err := c.OtherUsers(patchFuncs(p))
	if err != nil {
		return
	}
	for _, fu := range users {
		for _, u := range fu.Overriders() {
			what := "overrides"
			if u.Effect == ftrace.MayOverride {
				what = "may override"
			}
			c.event(o, "warning: %s %s the patch of %s: callers get its value, not the patched code's (klp list)", u, what, fu.Function)
		}
	}
}
