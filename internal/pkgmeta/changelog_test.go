package pkgmeta

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// suseChangelog is rpm -q --changelog output in the shape SUSE's
// kernel-livepatch packages have: gitlog2changes.pl turns each commit into
// a "- " item, rpm prints each .changes block under a "* DATE AUTHOR"
// header.
const suseChangelog = `* Thu Mar 09 2023 nstange@suse.de
- Fix for CVE-2023-0266 (bsc#1207190)
- Fix for CVE-2022-4378 (bsc#1206224)
  Also references bsc#1206225, which is part of the CVE fix.

* Fri Feb 03 2023 mbenes@suse.cz
- Fix for CVE-2022-43945 (bsc#1205130)
- Reduce the number of spurious warnings on module load (bsc#1205999)
- Update build infrastructure:
  * tune build flags (jsc#PED-1234)
  * support for new compiler (boo#1203000)
- Fix for cve-2022-2588 (bsc#1202488), written lower-case

* Mon Nov 14 2022 mpdesouza@suse.com
- Initial live patch for 5.14.21-150400.24.33 (bsc#1204000, bnc#920633)
- Fix for bsc#1204000 again, which must not repeat
`

func TestParseRPMChangelog(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		text string
		want Changelog
	}{
		{
			name: "suse",
			text: suseChangelog,
			want: Changelog{
				CVEs: []string{"CVE-2023-0266", "CVE-2022-43945", "CVE-2022-4378", "CVE-2022-2588"},
				// Changelog order; bsc#1206225 and the CVEs' own
				// bsc numbers belong to CVE entries.
				Bugs: []string{"bsc#1205999", "jsc#PED-1234", "boo#1203000", "bsc#1204000", "bnc#920633"},
			},
		},
		{
			name: "initial patch",
			text: "* Mon Nov 14 2022 mpdesouza@suse.com\n- Initial live patch\n",
			want: Changelog{},
		},
		{
			name: "empty",
			text: "",
			want: Changelog{},
		},
		{
			name: "fedora style header with version",
			text: "* Wed Jan 10 2024 Jane Doe <jane@example.com> - 2-1\n- Fix bug#42 and CVE-2024-0001\n- Fix bug #43\n",
			want: Changelog{CVEs: []string{"CVE-2024-0001"}, Bugs: []string{"bug#43"}},
		},
		{
			name: "free text line is its own entry",
			text: "* Wed Jan 10 2024 someone\nrebuilt (bsc#7)\nCVE-2024-1111 fixed\n",
			want: Changelog{CVEs: []string{"CVE-2024-1111"}, Bugs: []string{"bsc#7"}},
		},
		{
			name: "tracker names are normalised",
			text: "- BSC#1 Boo#2 FATE#3 jsc#sle-4\n",
			want: Changelog{Bugs: []string{"bsc#1", "boo#2", "fate#3", "jsc#SLE-4"}},
		},
		{
			name: "not a CVE",
			text: "- CVE-22-1 and XCVE-2022-1234 and CVE-2022-123\n",
			want: Changelog{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := ParseRPMChangelog(tt.text)
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSplitRPMEntries(t *testing.T) {
	t.Parallel()
	got := splitRPMEntries(suseChangelog)
	if len(got) != 8 {
		t.Fatalf("got %d entries, want 8:\n%q", len(got), got)
	}
	if want := "- Update build infrastructure:\n  * tune build flags (jsc#PED-1234)\n  * support for new compiler (boo#1203000)\n"; got[4] != want {
		t.Errorf("entry 4 = %q, want %q", got[4], want)
	}
}

// TestCVEOrder checks the order against SUSE's published sample (klp -v
// patches on an AWS lab machine), shuffled, and the case
// where numeric and string order differ.
func TestCVEOrder(t *testing.T) {
	t.Parallel()
	sample := strings.Fields("CVE-2023-26545 CVE-2023-1652 CVE-2023-1118 CVE-2023-1078 CVE-2023-0590 CVE-2023-0266 CVE-2023-0179 CVE-2022-43945 CVE-2022-4379 CVE-2022-4378 CVE-2022-4139 CVE-2022-2602 CVE-2021-39698")
	shuffled := append([]string(nil), sample...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	var text strings.Builder
	for _, c := range shuffled {
		text.WriteString("- Fix for " + c + "\n")
	}
	// and duplicates
	text.WriteString("- Fix for " + sample[0] + " again\n")
	if diff := cmp.Diff(sample, ParseRPMChangelog(text.String()).CVEs); diff != "" {
		t.Errorf("sample order (-want +got):\n%s", diff)
	}

	// SUSE's kgr sample (SLE 12).
	kgr := strings.Fields("CVE-2016-2384 CVE-2016-0774 CVE-2015-8812 CVE-2015-8709 CVE-2015-8660 CVE-2015-8539 CVE-2013-7446")
	if diff := cmp.Diff(kgr, ParseRPMChangelog("- "+strings.Join(kgr[3:], " ")+"\n- "+strings.Join(kgr[:3], ", ")+"\n").CVEs); diff != "" {
		t.Errorf("kgr sample order (-want +got):\n%s", diff)
	}

	// Reverse-version order: five-digit numbers are larger.
	got := ParseRPMChangelog("- CVE-2022-9999 CVE-2022-10000 CVE-2021-99999\n").CVEs
	if want := []string{"CVE-2022-10000", "CVE-2022-9999", "CVE-2021-99999"}; !cmp.Equal(want, got) {
		t.Errorf("got %q, want %q", got, want)
	}
}

const debianChangelog = `linux-livepatch (3) bookworm-security; urgency=high

  [ Ben Hutchings ]
  * Fix CVE-2024-1234 in netfilter (Closes: #1060001)
  * Fix a crash on boot (Closes: #1060002, #1060003)
    - Also reported on Ubuntu (LP: #2000001, #2000002)

  [ Salvatore Bonaccorso ]
  * Fix the build
    with a long description

    over two paragraphs; closes: bug#1060004

 -- Ben Hutchings <ben@decadent.org.uk>  Mon, 01 Jan 2024 12:00:00 +0000

linux-livepatch (2) bookworm; urgency=medium

  * Fix CVE-2023-5678 and CVE-2023-12345 (Closes: #1050000)
  * Initial release. Closes: #1000

 -- Ben Hutchings <ben@decadent.org.uk>  Mon, 01 Dec 2023 12:00:00 +0000
`

func TestParseDebianChangelog(t *testing.T) {
	t.Parallel()
	got := ParseDebianChangelog(debianChangelog)
	want := Changelog{
		CVEs: []string{"CVE-2024-1234", "CVE-2023-12345", "CVE-2023-5678"},
		Bugs: []string{"Debian#1060002", "Debian#1060003", "LP#2000001", "LP#2000002", "Debian#1060004", "Debian#1000"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func gz(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestChangelogSources(t *testing.T) {
	t.Parallel()
	rpmPkg := Package{Manager: RPM, Name: "kernel-livepatch-5_14_21-150400_24_33-default", Version: "6", Release: "150400.2.2", Arch: "x86_64"}

	t.Run("rpm", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, []string{"rpm"}, map[string]reply{
			"rpm -q --changelog kernel-livepatch-5_14_21-150400_24_33-default-6-150400.2.2.x86_64": {out: suseChangelog},
		})
		cfg, _ := testConfig(t, f, "5.14.21-150400.24.33-default")
		got, err := New(cfg).Changelog(context.Background(), rpmPkg)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.CVEs) != 4 {
			t.Errorf("CVEs = %q", got.CVEs)
		}
	})

	t.Run("rpm fails", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, []string{"rpm"}, map[string]reply{
			"rpm -q --changelog kernel-livepatch-5_14_21-150400_24_33-default-6-150400.2.2.x86_64": {code: 1, stderr: "error: rpmdb: damaged"},
		})
		cfg, _ := testConfig(t, f, "x")
		_, err := New(cfg).Changelog(context.Background(), rpmPkg)
		if err == nil || !strings.Contains(err.Error(), "rpmdb: damaged") || !strings.HasPrefix(err.Error(), "read changelog of ") {
			t.Errorf("err = %v", err)
		}
	})

	for _, file := range []string{"changelog.Debian.gz", "changelog.gz", "changelog.Debian"} {
		t.Run("dpkg "+file, func(t *testing.T) {
			t.Parallel()
			cfg, _ := testConfig(t, newFake(t, nil, nil), "x")
			content := debianChangelog
			if strings.HasSuffix(file, ".gz") {
				content = gz(t, content)
			}
			writeFiles(t, cfg.DocDir, map[string]string{"linux-livepatch/" + file: content})
			got, err := New(cfg).Changelog(context.Background(), Package{Manager: Dpkg, Name: "linux-livepatch", Version: "3", Arch: "amd64"})
			if err != nil {
				t.Fatal(err)
			}
			if len(got.CVEs) != 3 || len(got.Bugs) != 6 {
				t.Errorf("got %+v", got)
			}
		})
	}

	t.Run("dpkg without changelog", func(t *testing.T) {
		t.Parallel()
		cfg, _ := testConfig(t, newFake(t, nil, nil), "x")
		got, err := New(cfg).Changelog(context.Background(), Package{Manager: Dpkg, Name: "nodoc", Version: "1"})
		if err != nil || len(got.CVEs)+len(got.Bugs) != 0 {
			t.Errorf("got %+v, %v", got, err)
		}
	})

	t.Run("dpkg corrupt gzip", func(t *testing.T) {
		t.Parallel()
		cfg, _ := testConfig(t, newFake(t, nil, nil), "x")
		writeFiles(t, cfg.DocDir, map[string]string{"bad/changelog.Debian.gz": "not gzip"})
		_, err := New(cfg).Changelog(context.Background(), Package{Manager: Dpkg, Name: "bad", Version: "1"})
		if err == nil || !strings.Contains(err.Error(), filepath.Join("bad", "changelog.Debian.gz")) {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("dpkg hostile name", func(t *testing.T) {
		t.Parallel()
		cfg, _ := testConfig(t, newFake(t, nil, nil), "x")
		_, err := New(cfg).Changelog(context.Background(), Package{Manager: Dpkg, Name: "../etc", Version: "1"})
		if err == nil {
			t.Error("no error for a package name with a slash")
		}
	})
}

// TestChangelogLimit: a changelog of maxChangelog bytes (after gunzip) is
// read whole; one byte more is refused, naming the file.
func TestChangelogLimit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, size := range []int{maxChangelog, maxChangelog + 1} {
		path := filepath.Join(dir, fmt.Sprintf("changelog-%d.gz", size))
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(bytes.Repeat([]byte("x"), size))
		zw.Close()
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		text, err := readMaybeGzip(path)
		if size == maxChangelog {
			if err != nil || len(text) != size {
				t.Errorf("%d bytes: %d read, %v", size, len(text), err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("%d bytes: %d read, error %v; want it refused", size, len(text), err)
		}
	}
}

// TestBugRefsEveryMatch: every reference of each kind in an entry, in the
// order of the text.
func TestBugRefsEveryMatch(t *testing.T) {
	t.Parallel()
	entry := "Fix a (LP: #11), then b (LP: #12).\nCloses: #21\nCloses: #22\n" +
		"jsc#SLE-1 and jsc#SLE-2, fate#31 and fate#32, bsc#41 and bsc#42"
	want := []string{"LP#11", "LP#12", "Debian#21", "Debian#22", "jsc#SLE-1", "jsc#SLE-2", "fate#31", "fate#32", "bsc#41", "bsc#42"}
	if diff := cmp.Diff(want, bugRefs(entry)); diff != "" {
		t.Errorf("bugRefs (-want +got):\n%s", diff)
	}
}
