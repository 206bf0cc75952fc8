package pkgmeta

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Available is one version of a package that the repositories (or the
// installed system) offer.
type Available struct {
	// Edition is the version as the package manager prints and accepts it
	// after "NAME=": [EPOCH:]VERSION-RELEASE for zypper, the Debian
	// version for apt.
	Edition string
	// Arch is the architecture; empty when the tool does not say (apt).
	Arch string
	// Repository names where it comes from.
	Repository string
	// Installed is true for the installed version.
	Installed bool
}

// errNoRepos reports zypper's exit status 6, ZYPPER_EXIT_NO_REPOS.
var errNoRepos = errors.New("zypper has no repositories defined")

// zypper exit codes (zypper(8) "EXIT CODES").
const (
	zypperNoRepos     = 6   // ZYPPER_EXIT_NO_REPOS
	zypperCapNotFound = 104 // ZYPPER_EXIT_INF_CAP_NOT_FOUND: nothing matched
)

// Versions lists the versions of pkg that its package manager can install:
// zypper search for rpm, apt-cache policy for dpkg. It returns a
// [*ToolError] when the tool is missing.
func (s *Source) Versions(ctx context.Context, pkg Package) ([]Available, error) {
	switch pkg.Manager {
	case RPM:
		return s.zypperVersions(ctx, pkg)
	case Dpkg:
		vs, _, err := s.aptPolicy(ctx, pkg)
		return vs, err
	}
	return nil, fmt.Errorf("list versions of %s: unknown package manager %q", pkg.Name, pkg.Manager)
}

// zypperVersions runs
//
//	zypper --non-interactive --quiet --xmlout search -s --match-exact NAME
//
// --xmlout because the table layout changes between zypper versions and
// the XML does not; -s (--details) to get one line per version and
// repository instead of one per name. Exit status 104 means no repository
// has the package: an empty answer, as zypper-lifecycle treats it. Exit
// status 6 means there are no repositories at all, which is reported as
// [errNoRepos], because "up to date" would be a guess. Solvables of another name (zypper
// matches exactly but we check anyway), of another kind (srcpackage,
// patch) or of another architecture than the installed package are left
// out.
func (s *Source) zypperVersions(ctx context.Context, pkg Package) ([]Available, error) {
	if _, err := s.cfg.Runner.LookPath("zypper"); err != nil {
		return nil, &ToolError{Name: "zypper", Purpose: "to list the versions of " + pkg.Name}
	}
	out, err := s.run(ctx, "zypper", "--non-interactive", "--quiet", "--xmlout", "search", "-s", "--match-exact", pkg.Name)
	if code, ok := exitCode(err); ok && code == zypperCapNotFound {
		return nil, nil
	}
	if code, ok := exitCode(err); ok && code == zypperNoRepos {
		return nil, fmt.Errorf("search for %s: %w", pkg.Name, errNoRepos)
	}
	if err != nil {
		// With --xmlout, zypper writes its error messages into the XML
		// on stdout; put them in the error instead of "exit status 7".
		if msgs := zypperMessages(out); msgs != "" {
			return nil, fmt.Errorf("search for %s: %w (%s)", pkg.Name, err, msgs)
		}
		return nil, fmt.Errorf("search for %s: %w", pkg.Name, err)
	}
	all, err := parseZypperSearch(out)
	if err != nil {
		return nil, fmt.Errorf("search for %s: %w", pkg.Name, err)
	}
	var vs []Available
	for _, sv := range all {
		if sv.Name != pkg.Name || (sv.Kind != "" && sv.Kind != "package") {
			continue
		}
		if pkg.Arch != "" && sv.Arch != "" && sv.Arch != pkg.Arch {
			continue
		}
		vs = append(vs, Available{Edition: sv.Edition, Arch: sv.Arch, Repository: sv.Repository, Installed: sv.Status == "installed"})
	}
	return vs, nil
}

// zypperSolvable is one <solvable> of zypper's search XML:
//
//	<stream><search-result version="0.0"><solvable-list>
//	<solvable status="installed" name="..." kind="package" edition="2-2.1" arch="x86_64" repository="(System Packages)"/>
//	</solvable-list></search-result></stream>
//
// status is "installed", "other-version" (another version of the
// package is installed) or "not-installed".
type zypperSolvable struct {
	Status     string `xml:"status,attr"`
	Name       string `xml:"name,attr"`
	Kind       string `xml:"kind,attr"`
	Edition    string `xml:"edition,attr"`
	Arch       string `xml:"arch,attr"`
	Repository string `xml:"repository,attr"`
}

type zypperStream struct {
	Messages []struct {
		Type string `xml:"type,attr"`
		Text string `xml:",chardata"`
	} `xml:"message"`
	Solvables []zypperSolvable `xml:"search-result>solvable-list>solvable"`
}

func parseZypperSearch(out []byte) ([]zypperSolvable, error) {
	if len(bytes.TrimSpace(out)) == 0 {
		return nil, nil
	}
	var st zypperStream
	if err := xml.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("parse zypper XML: %w", err)
	}
	return st.Solvables, nil
}

// zypperMessages returns the error and warning messages of zypper's XML
// output, joined, or "" when there are none or it is not XML.
func zypperMessages(out []byte) string {
	var st zypperStream
	if xml.Unmarshal(out, &st) != nil {
		return ""
	}
	var msgs []string
	for _, m := range st.Messages {
		if m.Type == "error" || m.Type == "warning" {
			if t := strings.TrimSpace(m.Text); t != "" {
				msgs = append(msgs, t)
			}
		}
	}
	return strings.Join(msgs, "; ")
}

// Compare orders two editions of pkg's package manager: [CompareEVR] for
// rpm, [DebVersionCompare] for dpkg.
func Compare(m Manager, a, b string) int {
	if m == Dpkg {
		return DebVersionCompare(a, b)
	}
	return CompareEVR(ParseEVR(a), ParseEVR(b))
}

// Previous returns the highest of vs that is lower than installed: the
// version a downgrade goes back to. SUSE releases live patch versions 1,
// 2, 3, ..., so this is usually installed minus one, but a withdrawn
// release leaves a gap, which is why it is not computed.
func Previous(m Manager, installed string, vs []Available) (Available, bool) {
	return pick(m, vs, func(e string) bool { return Compare(m, e, installed) < 0 })
}

// Newest returns the highest of vs that is higher than installed: the
// update that is available.
func Newest(m Manager, installed string, vs []Available) (Available, bool) {
	return pick(m, vs, func(e string) bool { return Compare(m, e, installed) > 0 })
}

func pick(m Manager, vs []Available, ok func(string) bool) (Available, bool) {
	var best Available
	found := false
	for _, v := range vs {
		if v.Edition == "" || !ok(v.Edition) {
			continue
		}
		if !found || Compare(m, v.Edition, best.Edition) > 0 {
			best, found = v, true
		}
	}
	return best, found
}

// aptPolicy runs apt-cache policy NAME, the Debian counterpart of zypper
// search -s, and returns the versions of its version table and the
// candidate (the version apt would install).
func (s *Source) aptPolicy(ctx context.Context, pkg Package) ([]Available, string, error) {
	if _, err := s.cfg.Runner.LookPath("apt-cache"); err != nil {
		return nil, "", &ToolError{Name: "apt-cache", Purpose: "to list the versions of " + pkg.Name}
	}
	out, err := s.run(ctx, "apt-cache", "policy", pkg.Name)
	if err != nil {
		return nil, "", fmt.Errorf("query versions of %s: %w", pkg.Name, err)
	}
	vs, candidate := parseAptPolicy(out)
	return vs, candidate, nil
}

// aptVersionLine matches a version line of apt-cache policy's table: the
// installed one is marked " *** ", the others are indented by five
// spaces; the number is the pin priority. The source lines under each
// ("        500 http://... Packages") are indented further and do not match.
var aptVersionLine = regexp.MustCompile(`^ (\*\*\*|   ) (\S+) (-?\d+)\s*$`)

// parseAptPolicy reads the output of apt-cache policy for one package:
//
//	bash:
//	  Installed: 5.2.15-2+b8
//	  Candidate: 5.2.15-2+b13
//	  Version table:
//	     5.2.15-2+b13 500
//	        500 http://deb.debian.org/debian bookworm/main amd64 Packages
//	 *** 5.2.15-2+b8 100
//	        100 /var/lib/dpkg/status
//
// An unknown package prints nothing (and a notice on stderr). The
// candidate is "" when apt has none ("(none)").
func parseAptPolicy(out []byte) ([]Available, string) {
	var vs []Available
	candidate := ""
	var cur *Available
	for line := range strings.Lines(string(out)) {
		line = strings.TrimRight(line, "\r\n")
		if m := aptVersionLine.FindStringSubmatch(line); m != nil {
			vs = append(vs, Available{Edition: m[2], Installed: m[1] == "***"})
			cur = &vs[len(vs)-1]
			continue
		}
		t := strings.TrimSpace(line)
		if c, ok := strings.CutPrefix(t, "Candidate:"); ok {
			if c = strings.TrimSpace(c); c != "(none)" {
				candidate = c
			}
			continue
		}
		// A source line: priority, then where the version comes from.
		if cur != nil && cur.Repository == "" && strings.HasPrefix(line, "        ") {
			if _, src, ok := strings.Cut(t, " "); ok {
				cur.Repository = strings.TrimSpace(src)
			}
		}
	}
	return vs, candidate
}

// UpToDate is the update status of a package with no newer version
// available; klp -vv patches prints it after "update: ".
const UpToDate = "up to date"

// UpdateStatus says whether a newer version of pkg is available: "up to
// date", "update available (EDITION)", or "unknown (REASON)" with a note
// when it cannot be told. For rpm it asks zypper; for dpkg it compares
// apt-cache policy's candidate with the installed version, since the
// candidate is what an upgrade would install.
func (s *Source) UpdateStatus(ctx context.Context, pkg Package) (string, []string) {
	switch pkg.Manager {
	case RPM:
		vs, err := s.zypperVersions(ctx, pkg)
		if err != nil {
			return unknownStatus(err)
		}
		if v, ok := Newest(RPM, pkg.Edition(), vs); ok {
			return "update available (" + v.Edition + ")", nil
		}
		return UpToDate, nil
	case Dpkg:
		_, candidate, err := s.aptPolicy(ctx, pkg)
		if err != nil {
			return unknownStatus(err)
		}
		if candidate != "" && DebVersionCompare(candidate, pkg.Version) > 0 {
			return "update available (" + candidate + ")", nil
		}
		return UpToDate, nil
	}
	return "unknown", nil
}

func unknownStatus(err error) (string, []string) {
	var te *ToolError
	if errors.As(err, &te) {
		return "unknown (" + te.Name + " not installed)", []string{te.Name + " is not installed; the update status of live patch packages is unknown"}
	}
	reason := "query failed"
	if errors.Is(err, errNoRepos) {
		reason = "no repositories"
	} else if code, ok := exitCode(err); ok {
		var ee *ExitError
		errors.As(err, &ee)
		reason = fmt.Sprintf("%s failed: exit status %d", ee.Name, code)
	}
	return "unknown (" + reason + ")", []string{err.Error()}
}

// DowngradeCommand returns the command that installs version to of pkg in
// place of the newer installed one. For rpm it is SUSE's documented manual
// procedure:
//
//	zypper in --oldpackage NAME=VERSION-RELEASE
//
// with the full edition, not just VERSION, so that exactly the chosen
// build is installed even if a rebuild shares the version. nonInteractive
// adds zypper's global --non-interactive, since "klp -n" promises no
// questions and zypper would otherwise ask its own. For dpkg it is
//
//	apt-get install --allow-downgrades NAME=VERSION
//
// with --yes for nonInteractive.
func DowngradeCommand(pkg Package, to string, nonInteractive bool) []string {
	if pkg.Manager == Dpkg {
		cmd := []string{"apt-get"}
		if nonInteractive {
			cmd = append(cmd, "--yes")
		}
		return append(cmd, "install", "--allow-downgrades", pkg.Name+"="+to)
	}
	cmd := []string{"zypper"}
	if nonInteractive {
		cmd = append(cmd, "--non-interactive")
	}
	return append(cmd, "in", "--oldpackage", pkg.Name+"="+to)
}
