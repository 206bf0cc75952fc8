package harness

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Packages are klp's packages as "make packages-build" makes them.
type Packages struct {
	Deb, RPM string
	Version  string // the .deb's version, as dpkg shows it
}

// BuildPackages runs "make packages-build DIST=dist" in the repository
// (packaging/nfpm.yaml) and returns the files it made.
func BuildPackages(ctx context.Context, repo, dist string) (Packages, error) {
	cmd := exec.CommandContext(ctx, "make", "-s", "packages-build", "DIST="+dist)
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return Packages{}, fmt.Errorf("make packages-build: %w\n%s", err, out)
	}
	return FindPackages(ctx, dist)
}

// FindPackages returns the packages "make packages-build" left in dist.
func FindPackages(ctx context.Context, dist string) (Packages, error) {
	var p Packages
	debs, _ := filepath.Glob(filepath.Join(dist, "klp_*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(dist, "klp-*.rpm"))
	if len(debs) != 1 || len(rpms) != 1 {
		return p, fmt.Errorf("make packages-build: want one .deb and one .rpm in %s, got %v %v", dist, debs, rpms)
	}
	p.Deb, p.RPM = debs[0], rpms[0]
	out, err := exec.CommandContext(ctx, "dpkg-deb", "-f", p.Deb, "Version").Output()
	if err != nil {
		return p, fmt.Errorf("dpkg-deb -f %s: %w", p.Deb, err)
	}
	p.Version = strings.TrimSpace(string(out))
	return p, nil
}

// DebSpec describes a small binary package that a test builds with
// dpkg-deb, such as a live patch package.
type DebSpec struct {
	Package, Version, Architecture string
	Depends                        string // optional
	Description                    string // one line
	// Files maps paths in the package ("lib/modules/...") to local files.
	Files map[string]string
	// Changelog is the text of /usr/share/doc/<package>/changelog.Debian
	// (gzip-compressed into the package).
	Changelog string
	// Postinst, Prerm, Postrm are maintainer scripts, "" for none.
	Postinst, Prerm, Postrm string
}

// BuildDeb builds the package into dir and returns its path,
// <package>_<version>_<arch>.deb.
func BuildDeb(ctx context.Context, spec DebSpec, dir string) (string, error) {
	root, err := os.MkdirTemp(dir, "deb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(root)
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: klp e2e suite <root@localhost>\nSection: kernel\nPriority: optional\n",
		spec.Package, spec.Version, spec.Architecture)
	if spec.Depends != "" {
		control += "Depends: " + spec.Depends + "\n"
	}
	control += "Description: " + spec.Description + "\n Built by klp's end-to-end suite.\n"
	write := func(rel string, data []byte, mode os.FileMode) error {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, data, mode)
	}
	if err := write("DEBIAN/control", []byte(control), 0o644); err != nil {
		return "", err
	}
	for name, script := range map[string]string{"postinst": spec.Postinst, "prerm": spec.Prerm, "postrm": spec.Postrm} {
		if script != "" {
			if err := write("DEBIAN/"+name, []byte(script), 0o755); err != nil {
				return "", err
			}
		}
	}
	dsts := make([]string, 0, len(spec.Files))
	for dst := range spec.Files {
		dsts = append(dsts, dst)
	}
	sort.Strings(dsts)
	for _, dst := range dsts {
		data, err := os.ReadFile(spec.Files[dst])
		if err != nil {
			return "", err
		}
		if err := write(dst, data, 0o644); err != nil {
			return "", err
		}
	}
	if spec.Changelog != "" {
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		zw.Write([]byte(spec.Changelog))
		if err := zw.Close(); err != nil {
			return "", err
		}
		if err := write(filepath.Join("usr/share/doc", spec.Package, "changelog.Debian.gz"), gz.Bytes(), 0o644); err != nil {
			return "", err
		}
	}
	out := filepath.Join(dir, fmt.Sprintf("%s_%s_%s.deb", spec.Package, spec.Version, spec.Architecture))
	if b, err := exec.CommandContext(ctx, "dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, out).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb --build %s: %w: %s", spec.Package, err, b)
	}
	return out, nil
}
