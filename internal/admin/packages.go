package admin

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/klp-project/klp/internal/pkgmeta"
)

// PackageSource finds the package that installed a patch module and what
// its changelog says, for patches -v. It runs rpm, dpkg and zypper, so it
// sits behind an interface that tests replace.
type PackageSource interface {
	// Describe returns the package owning the module file of the named
	// loaded patch, or nil when no package owns it. With verbose >= 2 it
	// also fills in expiration and update status. Notes are things the user
	// should know about missing information (a missing rpm, say).
	Describe(module string, verbose int) (pkg *PackageInfo, notes []string, err error)
}

// Downgrader is what downgrade needs from the package manager. The
// PackageSource of a real system implements it; tests use a fake.
type Downgrader interface {
	// PlanDowngrade finds the package that owns the loaded module and the
	// newest version of it older than the installed one, and builds the
	// command that installs it. nonInteractive makes the command ask no
	// questions.
	PlanDowngrade(module string, nonInteractive bool) (*DowngradePlan, []string, error)
	// RunDowngrade runs the plan's command with the given streams. Notes
	// report informational exit statuses that still mean success.
	RunDowngrade(plan *DowngradePlan, stdin io.Reader, stdout, stderr io.Writer) ([]string, error)
}

// PackageInfo describes the package of a patch module.
type PackageInfo struct {
	// Manager is "rpm" or "dpkg".
	Manager string
	// Name is the package name, e.g. kernel-livepatch-5_14_21-150400_24_33-default.
	Name string
	// Version and Release are the package's version and release (Release is
	// empty for dpkg, whose version holds both).
	Version, Release string
	// Arch is the package architecture.
	Arch string
	// Full is the text SUSE prints after "RPM: ": NAME-VERSION-RELEASE.ARCH
	// for rpm, NAME_VERSION_ARCH for dpkg.
	Full string
	// CVEs are the CVE ids in the changelog, unique, newest first.
	CVEs []string
	// Bugs are the bug references of changelog entries without a CVE.
	Bugs []string
	// Expiration is the end of support (YYYY-MM-DD) from the lifecycle data,
	// empty when unknown; filled with -vv.
	Expiration string
	// Update says whether a newer package is available; filled with -vv.
	Update string
}

// Key is the label SUSE prints for the package line: "RPM" or "DEB".
func (p *PackageInfo) Key() string {
	if p.Manager == "dpkg" {
		return "DEB"
	}
	return "RPM"
}

// DowngradePlan is a downgrade about to be done.
type DowngradePlan struct {
	// Manager is "rpm" or "dpkg".
	Manager string
	// Package is the package name.
	Package string
	// From is the installed version (VERSION-RELEASE for rpm), To the
	// older version to install.
	From, To string
	// Command is the program and its arguments.
	Command []string
}

// Packages is the PackageSource of a real system. It answers through
// pkgmeta, which runs rpm, dpkg, zypper and apt and reads /lib/modules, the
// lifecycle data and Debian changelogs. It also implements [Downgrader].
type Packages struct {
	cfg pkgmeta.Config
	src *pkgmeta.Source
}

// NewPackages returns the package source for cfg. It does no I/O, so
// building it costs nothing for commands that ask no package questions.
func NewPackages(cfg pkgmeta.Config) *Packages {
	return &Packages{cfg: cfg, src: pkgmeta.New(cfg)}
}

// ForProcRoot returns a source that reads the kernel release below
// procRoot, so that a snapshot of another machine is answered for that
// machine's kernel.
func (p *Packages) ForProcRoot(procRoot string) *Packages {
	if procRoot == "" || procRoot == p.src.Config().ProcRoot {
		return p
	}
	cfg := p.cfg
	cfg.ProcRoot = procRoot
	return NewPackages(cfg)
}

// KernelRelease is the release whose modules the source looks at.
func (p *Packages) KernelRelease() (string, error) { return p.src.KernelRelease() }

// Describe implements [PackageSource].
func (p *Packages) Describe(module string, verbose int) (*PackageInfo, []string, error) {
	detail := pkgmeta.DetailChangelog
	if verbose >= 2 {
		detail = pkgmeta.DetailStatus
	}
	info, notes, err := p.src.Describe(context.Background(), module, detail)
	return toPackageInfo(info), notes, err
}

func toPackageInfo(info *pkgmeta.Info) *PackageInfo {
	if info == nil {
		return nil
	}
	return &PackageInfo{
		Manager: string(info.Manager),
		Name:    info.Name,
		Version: info.Version,
		Release: info.Release,
		Arch:    info.Arch,
		Full:    info.Full(),
		// Empty lists, not nil, so JSON consumers can iterate.
		CVEs:       append([]string{}, info.CVEs...),
		Bugs:       append([]string{}, info.Bugs...),
		Expiration: info.Expiration,
		Update:     info.Update,
	}
}

// PlanDowngrade implements [Downgrader].
func (p *Packages) PlanDowngrade(module string, nonInteractive bool) (*DowngradePlan, []string, error) {
	ctx := context.Background()
	pkg, _, notes, err := p.src.FindPackage(ctx, module)
	switch {
	case errors.Is(err, pkgmeta.ErrModuleNotFound), errors.Is(err, pkgmeta.ErrNotOwned):
		return nil, notes, fmt.Errorf("%w; only patches installed from a package can be downgraded", err)
	case err != nil:
		return nil, notes, err
	}
	plan, err := p.src.PlanDowngrade(ctx, *pkg, nonInteractive)
	if err != nil {
		return nil, notes, err
	}
	return &DowngradePlan{
		Manager: string(pkg.Manager),
		Package: pkg.Name,
		From:    plan.From,
		To:      plan.To,
		Command: plan.Command,
	}, notes, nil
}

// RunDowngrade implements [Downgrader].
func (p *Packages) RunDowngrade(plan *DowngradePlan, stdin io.Reader, stdout, stderr io.Writer) ([]string, error) {
	return p.src.Execute(context.Background(), &pkgmeta.Plan{Command: plan.Command},
		pkgmeta.Stdio{In: stdin, Out: stdout, Err: stderr})
}
