package pkgmeta

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// maxLifecycleFile caps one lifecycle data file; SUSE's are a few hundred
// KiB.
const maxLifecycleFile = 16 << 20

// LifecycleEntry is one line of a zypper lifecycle data file:
// "NAME, VERSION, DATE[, SUCCESSOR]".
type LifecycleEntry struct {
	// File and Line locate the entry, for messages.
	File string
	Line int
	// Name is a package name, a glob with "*", or a regular expression
	// between slashes ("/^kernel-livepatch-.*$/").
	Name string
	// Version is a glob with "*" matched against the whole edition
	// (VERSION-RELEASE).
	Version string
	// Date is the end of support, YYYY-MM-DD; empty when the line only
	// names a successor.
	Date string

	name, version *regexp.Regexp
}

// Matches reports whether the entry applies to a package of that name and
// edition.
func (e *LifecycleEntry) Matches(name, edition string) bool {
	return e.name.MatchString(name) && e.version.MatchString(edition)
}

// Expiration returns the end-of-support date of pkg from the lifecycle data
// files (*.lifecycle) in [Config.LifecycleDirs], or "" when no entry
// matches. As in zypper lifecycle, the last matching entry wins, reading
// the directories in order and each directory's files by name; this lets
// an update of the data in /usr/share override /var/lib. Notes report
// unreadable files and malformed lines, which are skipped; found reports
// whether any data file exists, so the caller can say why the date is
// unknown.
func (s *Source) Expiration(pkg Package) (date string, found bool, notes []string) {
	for _, dir := range s.cfg.LifecycleDirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.lifecycle"))
		if err != nil {
			continue // only ErrBadPattern, and the pattern is ours
		}
		sort.Strings(files)
		for _, file := range files {
			entries, bad, err := readLifecycleFile(file)
			if err != nil {
				notes = append(notes, err.Error())
				continue
			}
			found = true
			notes = append(notes, bad...)
			for i := range entries {
				if entries[i].Matches(pkg.Name, pkg.Edition()) {
					// zypper-lifecycle assigns even an empty date,
					// so a later successor-only line clears it.
					date = entries[i].Date
				}
			}
		}
	}
	return date, found, notes
}

func readLifecycleFile(path string) ([]LifecycleEntry, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read lifecycle data: %w", err)
	}
	defer f.Close()
	entries, bad, err := parseLifecycle(io.LimitReader(f, maxLifecycleFile), path)
	if err != nil {
		return nil, nil, fmt.Errorf("read lifecycle data %s: %w", path, err)
	}
	return entries, bad, nil
}

// parseLifecycle reads the format of SUSE's zypper-lifecycle: one
// comma-separated entry per line, fields trimmed, "#" lines and blank
// lines ignored. Lines that cannot be used are returned as messages, not
// errors, so one bad line does not hide the rest.
func parseLifecycle(r io.Reader, file string) ([]LifecycleEntry, []string, error) {
	var entries []LifecycleEntry
	var bad []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, ",")
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		if len(fields) < 3 || fields[0] == "" {
			bad = append(bad, fmt.Sprintf("%s:%d: want NAME, VERSION, DATE", file, n))
			continue
		}
		e := LifecycleEntry{File: file, Line: n, Name: fields[0], Version: fields[1], Date: fields[2]}
		if e.Date != "" {
			if _, err := time.Parse(time.DateOnly, e.Date); err != nil {
				bad = append(bad, fmt.Sprintf("%s:%d: date %q is not YYYY-MM-DD", file, n, e.Date))
				continue
			}
		}
		var err error
		if e.name, err = lifecyclePattern(e.Name, true); err != nil {
			bad = append(bad, fmt.Sprintf("%s:%d: %v", file, n, err))
			continue
		}
		if e.version, err = lifecyclePattern(e.Version, false); err != nil {
			bad = append(bad, fmt.Sprintf("%s:%d: %v", file, n, err))
			continue
		}
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	return entries, bad, nil
}

// lifecyclePattern compiles a name or version field the way
// zypper-lifecycle does: "*" matches any text and every other character
// stands for itself, so the glob must match the whole string. Unlike
// path.Match, "?" and "[" are literal: zypper-lifecycle quotes them, and
// the data files are written for it. A name may also be a regular
// expression between slashes, used as is (unanchored, as Ruby's match is).
// An empty version matches nothing, since zypper-lifecycle's "^$" cannot
// match an edition.
func lifecyclePattern(p string, allowRegexp bool) (*regexp.Regexp, error) {
	if allowRegexp && len(p) >= 2 && strings.HasPrefix(p, "/") && strings.HasSuffix(p, "/") {
		re, err := regexp.Compile(p[1 : len(p)-1])
		if err != nil {
			return nil, fmt.Errorf("bad regular expression %s: %w", p, err)
		}
		return re, nil
	}
	parts := strings.Split(p, "*")
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	re, err := regexp.Compile("^" + strings.Join(parts, ".*") + "$")
	if err != nil {
		return nil, errors.New("bad pattern " + p)
	}
	return re, nil
}
