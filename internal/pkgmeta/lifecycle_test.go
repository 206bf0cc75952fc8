package pkgmeta

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLifecycleMatch(t *testing.T) {
	t.Parallel()
	const data = `# SUSE Linux Enterprise Live Patching lifecycle data
# format: name, version, date[, successor]

kgraft-patch-4_12_14-122_46-default, *, 2024-10-30
kernel-livepatch-5_14_21-150400_24_33-default,   6-*,   2024-06-01
kernel-livepatch-5_14_21-150400_24_3?-default, *, 2030-01-01
kernel-livepatch-5_3_18-*-default, *, 2023-01-01
/^kernel-livepatch-6_4_0-.*-rt$/, *, 2027-05-05
hdf5_*-gnu*-hpc, *, , hdf5_*-gnu<2>-hpc
`
	entries, bad, err := parseLifecycle(strings.NewReader(data), "sle.lifecycle")
	if err != nil || len(bad) != 0 {
		t.Fatalf("parse: %v, %q", err, bad)
	}
	tests := []struct {
		name, edition string
		want          []int // lines of the matching entries
	}{
		{"kgraft-patch-4_12_14-122_46-default", "1-8.5.1", []int{4}},
		{"kernel-livepatch-5_14_21-150400_24_33-default", "6-150400.2.2", []int{5}},
		{"kernel-livepatch-5_14_21-150400_24_33-default", "16-150400.2.2", nil}, // "6-*" is anchored
		{"kernel-livepatch-5_14_21-150400_24_34-default", "1-1", nil},           // "?" is literal
		{"kernel-livepatch-5_14_21-150400_24_3?-default", "1-1", []int{6}},
		{"kernel-livepatch-5_3_18-24_34-default", "1-5.3.2", []int{7}},
		{"kernel-livepatch-5_3_18-24_34-default-extra", "1-5.3.2", nil},
		{"kernel-livepatch-6_4_0-150600_10-rt", "3-1", []int{8}},
		{"hdf5_1_10-gnu-hpc", "1-1", []int{9}},
	}
	for _, tt := range tests {
		var got []int
		for _, e := range entries {
			if e.Matches(tt.name, tt.edition) {
				got = append(got, e.Line)
			}
		}
		if !cmp.Equal(tt.want, got) {
			t.Errorf("%s %s matched lines %v, want %v", tt.name, tt.edition, got, tt.want)
		}
	}
}

func TestParseLifecycleBadLines(t *testing.T) {
	t.Parallel()
	const data = "a, *, 2024-13-45\nb, *\n/[/, *, 2024-01-01\n, *, 2024-01-01\nc, *, 2024-01-01\n"
	entries, bad, err := parseLifecycle(strings.NewReader(data), "x.lifecycle")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name != "c" {
		t.Errorf("entries = %+v", entries)
	}
	want := []string{
		`x.lifecycle:1: date "2024-13-45" is not YYYY-MM-DD`,
		"x.lifecycle:2: want NAME, VERSION, DATE",
		"x.lifecycle:3: bad regular expression /[/: error parsing regexp: missing closing ]: `[`",
		"x.lifecycle:4: want NAME, VERSION, DATE",
	}
	if diff := cmp.Diff(want, bad); diff != "" {
		t.Errorf("bad lines (-want +got):\n%s", diff)
	}
}

func TestExpiration(t *testing.T) {
	t.Parallel()
	pkg := Package{Manager: RPM, Name: "kernel-livepatch-5_14_21-150400_24_33-default", Version: "6", Release: "150400.2.2", Arch: "x86_64"}

	t.Run("last match wins across dirs and files", func(t *testing.T) {
		t.Parallel()
		cfg, _ := testConfig(t, nil, "x")
		writeFiles(t, cfg.LifecycleDirs[0], map[string]string{
			"sle-live-patching.lifecycle": "kernel-livepatch-*-default, *, 2024-01-01\n",
			"zz.lifecycle":                "kernel-livepatch-5_14_21-150400_24_33-default, 6-*, 2024-02-02\n",
			"ignored.txt":                 "kernel-livepatch-5_14_21-150400_24_33-default, *, 1999-01-01\n",
		})
		writeFiles(t, cfg.LifecycleDirs[1], map[string]string{
			"sle-module-live-patching.lifecycle": "other, *, 2025-01-01\nkernel-livepatch-5_14_21-150400_24_33-default, 6-150400.2.2, 2024-03-03\n",
		})
		date, found, notes := New(cfg).Expiration(pkg)
		if date != "2024-03-03" || !found || len(notes) != 0 {
			t.Errorf("got %q, %v, %q", date, found, notes)
		}
	})

	t.Run("no match", func(t *testing.T) {
		t.Parallel()
		cfg, _ := testConfig(t, nil, "x")
		writeFiles(t, cfg.LifecycleDirs[0], map[string]string{"a.lifecycle": "other, *, 2024-01-01\n"})
		date, found, notes := New(cfg).Expiration(pkg)
		if date != "" || !found || len(notes) != 0 {
			t.Errorf("got %q, %v, %q", date, found, notes)
		}
	})

	t.Run("no data", func(t *testing.T) {
		t.Parallel()
		cfg, _ := testConfig(t, nil, "x")
		cfg.LifecycleDirs = append(cfg.LifecycleDirs, filepath.Join(t.TempDir(), "missing"))
		date, found, notes := New(cfg).Expiration(pkg)
		if date != "" || found || len(notes) != 0 {
			t.Errorf("got %q, %v, %q", date, found, notes)
		}
	})

	t.Run("unreadable file and bad line are notes", func(t *testing.T) {
		t.Parallel()
		cfg, _ := testConfig(t, nil, "x")
		writeFiles(t, cfg.LifecycleDirs[0], map[string]string{
			"a.lifecycle": "garbage\nkernel-livepatch-*, *, 2026-06-06\n",
			// A directory cannot be read, even by root.
			"b.lifecycle/": "",
		})
		date, found, notes := New(cfg).Expiration(pkg)
		if date != "2026-06-06" || !found || len(notes) != 2 {
			t.Errorf("got %q, %v, %q", date, found, notes)
		}
		if len(notes) == 2 && !strings.HasPrefix(notes[1], "read lifecycle data ") {
			t.Errorf("note = %q", notes[1])
		}
	})
}

// TestLifecyclePatternSlashes: "//" is the empty regular expression (it
// matches every name); "/" alone is a name.
func TestLifecyclePatternSlashes(t *testing.T) {
	t.Parallel()
	re, err := lifecyclePattern("//", true)
	if err != nil || !re.MatchString("kernel-livepatch-6_4_0-1-default") {
		t.Errorf(`"//": %v, %v; want a pattern matching every name`, re, err)
	}
	re, err = lifecyclePattern("/", true)
	if err != nil || !re.MatchString("/") || re.MatchString("x") {
		t.Errorf(`"/": %v, %v; want the name "/"`, re, err)
	}
	re, err = lifecyclePattern("//", false)
	if err != nil || re.MatchString("x") || !re.MatchString("//") {
		t.Errorf(`"//" where no regular expression is allowed: %v, %v; want the name "//"`, re, err)
	}
}
