package pkgmeta

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Manager names the package manager that installed a package.
type Manager string

const (
	// RPM is rpm (SUSE, Fedora, RHEL); versions are VERSION-RELEASE.
	RPM Manager = "rpm"
	// Dpkg is dpkg (Debian, Ubuntu); the version holds the revision.
	Dpkg Manager = "dpkg"
)

// Package is an installed package.
type Package struct {
	Manager Manager
	// Name is the package name, e.g. kernel-livepatch-5_14_21-150400_24_33-default.
	Name string
	// Version is rpm's %{VERSION}, or dpkg's whole ${Version}
	// ([epoch:]upstream[-revision]).
	Version string
	// Release is rpm's %{RELEASE}; empty for dpkg.
	Release string
	// Arch is the package architecture (x86_64, amd64, noarch, all).
	Arch string
}

// Edition is the version as the repository tools print and accept it after
// "NAME=": VERSION-RELEASE for rpm (zypper), the Debian version for dpkg.
func (p Package) Edition() string {
	if p.Manager == Dpkg || p.Release == "" {
		return p.Version
	}
	return p.Version + "-" + p.Release
}

// Full is the text SUSE's klp prints after "RPM: ":
// NAME-VERSION-RELEASE.ARCH, which openQA compares with the installed
// package after removing ".ARCH". For dpkg it is NAME_VERSION_ARCH, the
// name of the .deb file, which like rpm's NEVRA leaves out the epoch.
func (p Package) Full() string {
	if p.Manager == Dpkg {
		v := p.Version
		if i := strings.IndexByte(v, ':'); i > 0 && allDigits(v[:i]) {
			v = v[i+1:]
		}
		return p.Name + "_" + v + "_" + p.Arch
	}
	return p.Name + "-" + p.Version + "-" + p.Release + "." + p.Arch
}

// rpmQueryFormat gives the fields of rpm -qf separated by tabs, which no
// field can contain.
const rpmQueryFormat = `%{NAME}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\n`

// Owner returns the installed package that owns file. rpm is asked first
// when it is installed, then dpkg: a Debian host may have the rpm program
// with an empty database, and a SUSE host has no dpkg. It returns
// [ErrNotOwned] when neither knows the file, and [ErrNoPackageManager] when
// neither is installed.
//
// On usr-merged systems a module reached as /lib/modules/... may be
// registered as /usr/lib/modules/... (or the reverse; Debian 12's dpkg
// knows only /lib/...), so the other spelling is tried too.
func (s *Source) Owner(ctx context.Context, file string) (*Package, error) {
	r := s.cfg.Runner
	_, rpmErr := r.LookPath("rpm")
	_, dpkgErr := r.LookPath("dpkg")
	if rpmErr != nil && dpkgErr != nil {
		return nil, ErrNoPackageManager
	}
	paths := []string{file}
	if alt := usrMergeAlternate(file); alt != "" {
		paths = append(paths, alt)
	}
	var errs []error
	if rpmErr == nil {
		for _, p := range paths {
			pkg, err := s.rpmOwner(ctx, p)
			if pkg != nil {
				return pkg, nil
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if dpkgErr == nil {
		for _, p := range paths {
			pkg, err := s.dpkgOwner(ctx, p)
			if pkg != nil {
				return pkg, nil
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("find owner of %s: %w", file, errors.Join(errs...))
	}
	return nil, fmt.Errorf("%w: %s", ErrNotOwned, file)
}

func usrMergeAlternate(file string) string {
	if rest, ok := strings.CutPrefix(file, "/usr/lib/"); ok {
		return "/lib/" + rest
	}
	if rest, ok := strings.CutPrefix(file, "/lib/"); ok {
		return "/usr/lib/" + rest
	}
	return ""
}

// rpmOwner returns nil, nil when rpm does not know the file: rpm -qf exits
// 1 both for "is not owned by any package" and for a missing file, and
// either way the answer is "not rpm's". Other failures (a signal, a
// timeout) are errors.
func (s *Source) rpmOwner(ctx context.Context, file string) (*Package, error) {
	out, err := s.run(ctx, "rpm", "-qf", "--qf", rpmQueryFormat, file)
	if code, ok := exitCode(err); ok && code == 1 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseRPMOwner(out), nil
}

// parseRPMOwner takes the first line with four fields; a file shared by
// several packages (rare for a module) gives one line per package.
func parseRPMOwner(out []byte) *Package {
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimRight(line, "\r\n"), "\t")
		if len(f) == 4 && f[0] != "" && f[1] != "" {
			return &Package{Manager: RPM, Name: f[0], Version: f[1], Release: f[2], Arch: f[3]}
		}
	}
	return nil
}

// dpkgOwner asks dpkg -S, which exits 1 when no package has the path, and
// then dpkg-query for the version and architecture.
func (s *Source) dpkgOwner(ctx context.Context, file string) (*Package, error) {
	out, err := s.run(ctx, "dpkg", "-S", file)
	if code, ok := exitCode(err); ok && code == 1 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	name := parseDpkgSearch(out)
	if name == "" {
		return nil, nil
	}
	out, err = s.run(ctx, "dpkg-query", "-W", "-f", `${Package}\t${Version}\t${Architecture}\n`, name)
	if err != nil {
		return nil, err
	}
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimRight(line, "\r\n"), "\t")
		if len(f) == 3 && f[0] != "" && f[1] != "" {
			return &Package{Manager: Dpkg, Name: f[0], Version: f[1], Arch: f[2]}, nil
		}
	}
	return nil, fmt.Errorf("query %s: unexpected dpkg-query output %q", name, firstLine(string(out)))
}

// parseDpkgSearch reads dpkg -S output, "pkg[:arch][, pkg2...]: /path",
// skipping the "diversion by ..." lines dpkg adds for diverted files, and
// returns the first package (with its arch qualifier, which dpkg-query
// accepts).
func parseDpkgSearch(out []byte) string {
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "diversion by ") {
			continue
		}
		pkgs, _, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		first, _, _ := strings.Cut(pkgs, ",")
		if first = strings.TrimSpace(first); first != "" {
			return first
		}
	}
	return ""
}

// run runs a query command with the configured timeout.
func (s *Source) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	return s.cfg.Runner.Run(ctx, name, args...)
}
