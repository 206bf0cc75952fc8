package pkgmeta

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Changelog is what a package's changelog says it fixes.
type Changelog struct {
	// CVEs are the CVE ids named anywhere in the changelog, unique,
	// newest first.
	CVEs []string
	// Bugs are the bug references of changelog entries that name no CVE,
	// unique, in changelog order (newest entry first).
	Bugs []string
}

// maxChangelog caps a Debian changelog after decompression. Kernel
// changelogs are a few MiB; the cap stops a gzip bomb.
const maxChangelog = 32 << 20

// Changelog reads pkg's changelog: rpm -q --changelog for rpm,
// /usr/share/doc/<name>/changelog.Debian.gz (or changelog.gz) for dpkg. A
// dpkg package without a changelog file gives an empty Changelog: Debian
// policy lets packages share a doc directory, and minimal images delete
// /usr/share/doc.
func (s *Source) Changelog(ctx context.Context, pkg Package) (Changelog, error) {
	switch pkg.Manager {
	case RPM:
		// NAME-VERSION-RELEASE.ARCH picks this package even when several
		// versions are installed side by side, as kernels are.
		out, err := s.run(ctx, "rpm", "-q", "--changelog", pkg.Full())
		if err != nil {
			return Changelog{}, fmt.Errorf("read changelog of %s: %w", pkg.Name, err)
		}
		return parseChangelog(splitRPMEntries(string(out))), nil
	case Dpkg:
		text, err := s.debianChangelog(pkg.Name)
		if err != nil {
			return Changelog{}, fmt.Errorf("read changelog of %s: %w", pkg.Name, err)
		}
		return parseChangelog(splitDebianEntries(text)), nil
	}
	return Changelog{}, fmt.Errorf("read changelog of %s: unknown package manager %q", pkg.Name, pkg.Manager)
}

func (s *Source) debianChangelog(name string) (string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return "", fmt.Errorf("invalid package name %q", name)
	}
	dir := filepath.Join(s.cfg.DocDir, name)
	for _, f := range []string{"changelog.Debian.gz", "changelog.gz", "changelog.Debian", "changelog"} {
		text, err := readMaybeGzip(filepath.Join(dir, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		return text, err
	}
	return "", nil
}

func readMaybeGzip(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	b, err := io.ReadAll(io.LimitReader(r, maxChangelog+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxChangelog {
		return "", fmt.Errorf("read %s: larger than %d bytes", path, maxChangelog)
	}
	return string(b), nil
}

// splitRPMEntries splits rpm -q --changelog output into entries. rpm prints
// each changelog block as a "* DATE AUTHOR [- VERSION]" header followed by
// its text; SUSE's .changes items are "- " lines, continued by indented
// lines (sub-items "  * ..." included).
//
// The unit is one "- " item, not one dated block: SUSE's kernel-livepatch
// changelog is generated from the git log (scripts/gitlog2changes.pl), one
// "- " item per commit, and a release block usually mixes CVE fixes with
// other fixes. Taking the whole block would hide every bug fix released
// together with a CVE fix, which is not what "fixes which do not have CVEs
// assigned" (klp(8)) means. A non-indented line that is not a "- " item
// (free text in hand-written changelogs) is an entry of its own.
func splitRPMEntries(text string) []string {
	var entries []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			entries = append(entries, cur.String())
			cur.Reset()
		}
	}
	for line := range strings.Lines(text) {
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case strings.HasPrefix(line, "* "):
			flush() // a header: its date and author are not an entry
		case line[0] == ' ' || line[0] == '\t':
			cur.WriteString(line) // continuation of the current item
		default:
			flush()
			cur.WriteString(line)
		}
	}
	flush()
	return entries
}

// splitDebianEntries splits a Debian changelog into its "  * " items (with
// their indented continuation and "    - " sub-items), for the same reason
// as [splitRPMEntries]. Version headers, "  [ Name ]" group lines and
// " -- maintainer" trailers end an item and are not part of one.
func splitDebianEntries(text string) []string {
	var entries []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			entries = append(entries, cur.String())
			cur.Reset()
		}
	}
	for line := range strings.Lines(text) {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			// Blank lines separate paragraphs of one item too, so they do
			// not end it; headers and trailers do.
		case line[0] != ' ' && line[0] != '\t', strings.HasPrefix(line, " -- "), strings.HasPrefix(trimmed, "[ "):
			flush()
		case strings.HasPrefix(trimmed, "* ") && indent(line) <= 2:
			flush()
			cur.WriteString(line)
		default:
			// A continuation line; text before any "*" item starts an
			// entry of its own.
			cur.WriteString(line)
		}
	}
	flush()
	return entries
}

func indent(line string) int {
	return len(line) - len(strings.TrimLeft(line, " \t"))
}

var (
	cveRe = regexp.MustCompile(`(?i)\bCVE-(\d{4})-(\d{4,})\b`)
	// SUSE's trackers: bsc (Bugzilla SUSE), bnc (Novell, the older
	// name), boo (openSUSE), bug; jsc (SUSE Jira, which carries the
	// "enhancements" of "bug fixes and enhancements") and fate (its
	// predecessor).
	suseBugRe = regexp.MustCompile(`(?i)\b(bsc|bnc|boo|bug)\s?#\s?(\d+)\b`)
	jiraRe    = regexp.MustCompile(`(?i)\bjsc\s?#\s?([A-Z][A-Z0-9]*-\d+)\b`)
	fateRe    = regexp.MustCompile(`(?i)\bfate\s?#\s?(\d+)\b`)
	// Launchpad, "LP: #123, #456", as Ubuntu changelogs close bugs.
	launchpadRe = regexp.MustCompile(`(?i)\bLP:\s*#\d+(?:\s*,\s*#\d+)*`)
	// Debian's own closes pattern, from Debian Policy §4.4.
	debianClosesRe = regexp.MustCompile(`(?i)closes:\s*(?:bug)?#?\s?\d+(?:,\s*(?:bug)?#?\s?\d+)*`)
	digitsRe       = regexp.MustCompile(`\d+`)
)

// parseChangelog collects the CVEs of all entries and the bug references of
// the entries without a CVE.
func parseChangelog(entries []string) Changelog {
	var cl Changelog
	cves := map[string]cveID{}
	seenBug := map[string]bool{}
	for _, e := range entries {
		found := cveRe.FindAllStringSubmatch(e, -1)
		for _, m := range found {
			id := cveID{year: m[1], num: strings.TrimLeft(m[2], "0")}
			cves[id.String()] = id
		}
		if len(found) > 0 {
			continue
		}
		for _, ref := range bugRefs(e) {
			if !seenBug[ref] {
				seenBug[ref] = true
				cl.Bugs = append(cl.Bugs, ref)
			}
		}
	}
	ids := make([]cveID, 0, len(cves))
	for _, id := range cves {
		ids = append(ids, id)
	}
	// Newest first: by year, then by number, both descending, as numbers.
	// SUSE's published klp -v patches samples are in this order; plain reverse
	// string order agrees with them but would put CVE-2022-9999 before
	// CVE-2022-10000, and five-digit numbers are common since 2021.
	slices.SortFunc(ids, func(a, b cveID) int { return -a.compare(b) })
	for _, id := range ids {
		cl.CVEs = append(cl.CVEs, id.String())
	}
	return cl
}

type cveID struct{ year, num string }

func (c cveID) String() string {
	// CVE numbers have at least four digits; keep the zero padding
	// that TrimLeft removed ("CVE-2023-0179").
	n := c.num
	for len(n) < 4 {
		n = "0" + n
	}
	return "CVE-" + c.year + "-" + n
}

func (c cveID) compare(d cveID) int {
	if x := strings.Compare(c.year, d.year); x != 0 {
		return x
	}
	return compareNumeric(c.num, d.num)
}

// bugRefs returns the bug references of one entry in the order they
// appear, normalised: "bsc#1202488" (tracker lower-case), "jsc#PED-1234",
// "LP#123456" (Launchpad) and "Debian#987654" (a Debian "Closes:").
func bugRefs(entry string) []string {
	type ref struct {
		at   int
		text string
	}
	var refs []ref
	// "Closes: bug#123" is Debian's, not a SUSE "bug#": spans already
	// claimed by a Debian or Launchpad reference are not matched again.
	var claimed [][]int
	for _, m := range launchpadRe.FindAllStringIndex(entry, -1) {
		claimed = append(claimed, m)
		for _, n := range digitsRe.FindAllString(entry[m[0]:m[1]], -1) {
			refs = append(refs, ref{m[0], "LP#" + n})
		}
	}
	for _, m := range debianClosesRe.FindAllStringIndex(entry, -1) {
		claimed = append(claimed, m)
		for _, n := range digitsRe.FindAllString(entry[m[0]:m[1]], -1) {
			refs = append(refs, ref{m[0], "Debian#" + n})
		}
	}
	inClaimed := func(at int) bool {
		for _, c := range claimed {
			if c[0] <= at && at < c[1] {
				return true
			}
		}
		return false
	}
	for _, m := range suseBugRe.FindAllStringSubmatchIndex(entry, -1) {
		if !inClaimed(m[0]) {
			refs = append(refs, ref{m[0], strings.ToLower(entry[m[2]:m[3]]) + "#" + entry[m[4]:m[5]]})
		}
	}
	for _, m := range jiraRe.FindAllStringSubmatchIndex(entry, -1) {
		refs = append(refs, ref{m[0], "jsc#" + strings.ToUpper(entry[m[2]:m[3]])})
	}
	for _, m := range fateRe.FindAllStringSubmatchIndex(entry, -1) {
		refs = append(refs, ref{m[0], "fate#" + entry[m[2]:m[3]]})
	}
	slices.SortStableFunc(refs, func(a, b ref) int { return a.at - b.at })
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.text
	}
	return out
}

// ParseRPMChangelog parses rpm -q --changelog output; it is exported for
// tools that already hold the text.
func ParseRPMChangelog(text string) Changelog { return parseChangelog(splitRPMEntries(text)) }

// ParseDebianChangelog parses a Debian changelog file's text.
func ParseDebianChangelog(text string) Changelog {
	return parseChangelog(splitDebianEntries(text))
}
