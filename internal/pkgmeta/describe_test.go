package pkgmeta

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestDescribe(t *testing.T) {
	t.Parallel()
	const krel = "5.14.21-150400.24.33-default"
	const modRel = "lib/modules/" + krel + "/livepatch/livepatch-6-150400_2_2.ko"
	const lifecycle = "kernel-livepatch-5_14_21-150400_24_33-default, *, 2024-06-01\n"

	// replies for a SUSE system where the module belongs to lpPkg; the
	// module path is filled in per test, since it lies in a temp dir.
	suse := func(file string) map[string]reply {
		return map[string]reply{
			rpmQF + file: {out: lpRPMOut},
			"rpm -q --changelog kernel-livepatch-5_14_21-150400_24_33-default-6-150400.2.2.x86_64": {out: suseChangelog},
			zypperSearch: {out: zypperXML},
		}
	}
	cves := []string{"CVE-2023-0266", "CVE-2022-43945", "CVE-2022-4378", "CVE-2022-2588"}
	bugs := []string{"bsc#1205999", "jsc#PED-1234", "boo#1203000", "bsc#1204000", "bnc#920633"}

	tests := []struct {
		name      string
		installed []string
		replies   func(file string) map[string]reply
		files     map[string]string
		lifecycle bool
		detail    Detail
		module    string
		want      *Info // File is filled in
		wantNotes []string
		wantErr   string
	}{
		{
			name: "-v", installed: []string{"rpm", "zypper"}, replies: suse,
			files: map[string]string{modRel: ""}, detail: DetailChangelog, module: "livepatch_6_150400_2_2",
			want: &Info{Package: lpPkg, Changelog: Changelog{CVEs: cves, Bugs: bugs}},
		},
		{
			name: "-vv", installed: []string{"rpm", "zypper"}, replies: suse,
			files: map[string]string{modRel: ""}, lifecycle: true, detail: DetailStatus, module: "livepatch_6_150400_2_2",
			want: &Info{Package: lpPkg, Changelog: Changelog{CVEs: cves, Bugs: bugs},
				Expiration: "2024-06-01", Update: "update available (7-150400.2.1)"},
		},
		{
			name: "-vv without zypper and lifecycle data", installed: []string{"rpm"},
			replies: func(file string) map[string]reply {
				r := suse(file)
				delete(r, zypperSearch)
				return r
			},
			files: map[string]string{modRel: ""}, detail: DetailStatus, module: "livepatch_6_150400_2_2",
			want: &Info{Package: lpPkg, Changelog: Changelog{CVEs: cves, Bugs: bugs}, Update: "unknown (zypper not installed)"},
			wantNotes: []string{
				"no lifecycle data in ", // the dirs are temporary
				"zypper is not installed; the update status of live patch packages is unknown",
			},
		},
		{
			name: "module not on disk", installed: []string{"rpm"}, replies: suse,
			detail: DetailChangelog, module: "livepatch_6_150400_2_2",
		},
		{
			name: "module not owned", installed: []string{"rpm"},
			replies: func(file string) map[string]reply {
				return map[string]reply{rpmQF + file: {code: 1}, rpmQF + "/usr" + file: {code: 1}}
			},
			files: map[string]string{modRel: ""}, detail: DetailChangelog, module: "livepatch_6_150400_2_2",
		},
		{
			name: "no rpm, no dpkg", replies: suse,
			files: map[string]string{modRel: ""}, detail: DetailChangelog, module: "livepatch_6_150400_2_2",
			wantNotes: []string{"neither rpm nor dpkg is installed; package, CVE and bug fix information is not shown"},
		},
		{
			name: "changelog fails", installed: []string{"rpm"},
			replies: func(file string) map[string]reply {
				r := suse(file)
				r["rpm -q --changelog kernel-livepatch-5_14_21-150400_24_33-default-6-150400.2.2.x86_64"] = reply{code: 1, stderr: "error: broken"}
				return r
			},
			files: map[string]string{modRel: ""}, detail: DetailChangelog, module: "livepatch_6_150400_2_2",
			want:    &Info{Package: lpPkg},
			wantErr: "read changelog of kernel-livepatch-5_14_21-150400_24_33-default: rpm: exit status 1: error: broken",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, root := testConfig(t, nil, krel)
			writeFiles(t, root, tt.files)
			if tt.lifecycle {
				writeFiles(t, cfg.LifecycleDirs[1], map[string]string{"sle-module-live-patching.lifecycle": lifecycle})
			}
			file := filepath.Join(root, modRel)
			f := newFake(t, tt.installed, tt.replies(file))
			cfg.Runner = f
			got, notes, err := New(cfg).Describe(context.Background(), tt.module, tt.detail)
			if tt.want != nil {
				tt.want.File = file
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("info (-want +got):\n%s", diff)
			}
			if len(notes) != len(tt.wantNotes) {
				t.Errorf("notes = %q, want %q", notes, tt.wantNotes)
			} else {
				for i := range notes {
					if !strings.HasPrefix(notes[i], tt.wantNotes[i]) {
						t.Errorf("note %d = %q, want prefix %q", i, notes[i], tt.wantNotes[i])
					}
				}
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestDescribeBadProcfs(t *testing.T) {
	t.Parallel()
	// A procfs snapshot without osrelease: one note, no error, no package.
	s := New(Config{ProcRoot: t.TempDir(), Runner: newFake(t, []string{"rpm"}, nil)})
	info, notes, err := s.Describe(context.Background(), "lp", DetailStatus)
	if info != nil || err != nil || len(notes) != 1 || !strings.HasPrefix(notes[0], "read kernel release: ") {
		t.Errorf("got %+v, %q, %v", info, notes, err)
	}
	// The same note for every patch, so that it is printed once.
	if _, notes2, _ := s.Describe(context.Background(), "other", DetailChangelog); !cmp.Equal(notes, notes2) {
		t.Errorf("notes differ between patches: %q, %q", notes, notes2)
	}
}
