package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/klp-project/klp/internal/pkgmeta"
)

// packageSource is the PackageSource of a real system. It answers through
// pkgmeta, which runs rpm, dpkg, zypper and apt and reads /lib/modules, the
// lifecycle data and Debian changelogs. It also implements Downgrader.
type packageSource struct {
	cfg pkgmeta.Config
	src *pkgmeta.Source
}

// newPackageSource returns the package source for cfg. It does no I/O, so
// building the Env costs nothing for commands that ask no package
// questions.
func newPackageSource(cfg pkgmeta.Config) *packageSource {
	return &packageSource{cfg: cfg, src: pkgmeta.New(cfg)}
}

// procRootBinder is implemented by package sources that read host files
// relative to klp's --procfs root (the kernel release, to find the module
// directory), so that a snapshot of another machine is answered for that
// machine's kernel.
type procRootBinder interface {
	withProcRoot(procRoot string) PackageSource
}

// withProcRoot returns a source that reads the kernel release under
// procRoot.
func (p *packageSource) withProcRoot(procRoot string) PackageSource {
	if procRoot == "" || procRoot == p.src.Config().ProcRoot {
		return p
	}
	cfg := p.cfg
	cfg.ProcRoot = procRoot
	return newPackageSource(cfg)
}

// packages returns the Env's package source bound to the --procfs root,
// or nil when there is none.
func (o *rootOptions) packages() PackageSource {
	if b, ok := o.env.Packages.(procRootBinder); ok {
		return b.withProcRoot(o.procRoot)
	}
	return o.env.Packages
}

// Describe implements PackageSource.
func (p *packageSource) Describe(module string, verbose int) (*PackageInfo, []string, error) {
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
	pi := &PackageInfo{
		Manager: string(info.Manager),
		Name:    info.Name,
		Version: info.Version,
		Release: info.Release,
		Arch:    info.Arch,
		Full:    info.Full(),
		// Empty lists, not null, so JSON consumers can iterate.
		CVEs:       append([]string{}, info.CVEs...),
		Bugs:       append([]string{}, info.Bugs...),
		Expiration: info.Expiration,
		Update:     info.Update,
	}
	return pi
}

// PlanDowngrade implements Downgrader.
func (p *packageSource) PlanDowngrade(module string, nonInteractive bool) (*DowngradePlan, []string, error) {
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

// RunDowngrade implements Downgrader.
func (p *packageSource) RunDowngrade(plan *DowngradePlan, stdin io.Reader, stdout, stderr io.Writer) ([]string, error) {
	return p.src.Execute(context.Background(), &pkgmeta.Plan{Command: plan.Command},
		pkgmeta.Stdio{In: stdin, Out: stdout, Err: stderr})
}

// defaultPackageSource is the Env's package source for the running system:
// pkgmeta's defaults (the real programs, /lib/modules, /proc).
func defaultPackageSource() PackageSource { return newPackageSource(pkgmeta.Config{}) }
