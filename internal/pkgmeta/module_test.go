package pkgmeta

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindModule(t *testing.T) {
	t.Parallel()
	const krel = "5.14.21-150400.24.33-default"
	tests := []struct {
		name   string
		files  map[string]string // relative to the test root
		module string
		want   string // relative to the test root; "" for not found
	}{
		{
			name:   "suse livepatch dir, dash in file name",
			files:  map[string]string{"lib/modules/" + krel + "/livepatch/livepatch-6-150400_2_2.ko": ""},
			module: "livepatch_6_150400_2_2",
			want:   "lib/modules/" + krel + "/livepatch/livepatch-6-150400_2_2.ko",
		},
		{
			name:   "compressed",
			files:  map[string]string{"lib/modules/" + krel + "/updates/sub/kpatch-fix.ko.zst": ""},
			module: "kpatch_fix",
			want:   "lib/modules/" + krel + "/updates/sub/kpatch-fix.ko.zst",
		},
		{
			name: "preferred dirs win over the rest of the tree",
			files: map[string]string{
				"lib/modules/" + krel + "/kernel/a/lp.ko":   "",
				"lib/modules/" + krel + "/extra/lp.ko.xz":   "",
				"lib/modules/" + krel + "/updates/lp.ko.gz": "",
			},
			module: "lp",
			want:   "lib/modules/" + krel + "/updates/lp.ko.gz",
		},
		{
			name: "livepatch before klp store",
			files: map[string]string{
				"var/lib/klp/" + krel + "/lp.ko":              "",
				"lib/modules/" + krel + "/livepatch/lp.ko.xz": "",
			},
			module: "lp",
			want:   "lib/modules/" + krel + "/livepatch/lp.ko.xz",
		},
		{
			name: "klp store before kpatch store before the tree",
			files: map[string]string{
				"var/lib/kpatch/" + krel + "/lp.ko":   "",
				"var/lib/klp/" + krel + "/lp.ko":      "",
				"lib/modules/" + krel + "/misc/lp.ko": "",
			},
			module: "lp",
			want:   "var/lib/klp/" + krel + "/lp.ko",
		},
		{
			name: "sle 12 kgraft dir before updates",
			files: map[string]string{
				"lib/modules/" + krel + "/kgraft/kgraft-patch-3_2_1.ko":  "",
				"lib/modules/" + krel + "/updates/kgraft_patch_3_2_1.ko": "",
			},
			module: "kgraft_patch_3_2_1",
			want:   "lib/modules/" + krel + "/kgraft/kgraft-patch-3_2_1.ko",
		},
		{
			name:   "kpatch store",
			files:  map[string]string{"var/lib/kpatch/" + krel + "/kpatch-cve.ko": ""},
			module: "kpatch_cve",
			want:   "var/lib/kpatch/" + krel + "/kpatch-cve.ko",
		},
		{
			name:   "anywhere in the tree",
			files:  map[string]string{"lib/modules/" + krel + "/kernel/drivers/x/my_patch.ko": ""},
			module: "my-patch",
			want:   "lib/modules/" + krel + "/kernel/drivers/x/my_patch.ko",
		},
		{
			name:   "comma maps to underscore",
			files:  map[string]string{"lib/modules/" + krel + "/livepatch/lp,1.ko": ""},
			module: "lp_1",
			want:   "lib/modules/" + krel + "/livepatch/lp,1.ko",
		},
		{
			name: "other kernel and other suffixes do not match",
			files: map[string]string{
				"lib/modules/6.0.0/livepatch/lp.ko":             "",
				"lib/modules/" + krel + "/livepatch/lp.ko.bak":  "",
				"lib/modules/" + krel + "/livepatch/lp.o":       "",
				"lib/modules/" + krel + "/livepatch/lp.ko.dir/": "",
				"lib/modules/" + krel + "/livepatch/lpx.ko":     "",
			},
			module: "lp",
		},
		{
			name: "symlinked dirs are not followed inside the tree",
			files: map[string]string{
				"src/lp.ko":                        "",
				"lib/modules/" + krel + "/build":   "-> ../../../src",
				"lib/modules/" + krel + "/kernel/": "",
			},
			module: "lp",
		},
		{
			name: "a symlinked preferred dir is searched",
			files: map[string]string{
				"dkms/lp.ko":                       "",
				"lib/modules/" + krel + "/updates": "-> ../../../dkms",
			},
			module: "lp",
			want:   "lib/modules/" + krel + "/updates/lp.ko",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, root := testConfig(t, nil, krel)
			writeFiles(t, root, tt.files)
			got, notes, err := New(cfg).FindModule(tt.module)
			if len(notes) != 0 {
				t.Errorf("notes: %q", notes)
			}
			if tt.want == "" {
				if !errors.Is(err, ErrModuleNotFound) {
					t.Errorf("got %q, %v; want ErrModuleNotFound", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(root, tt.want); got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}

func TestFindModuleUsrMergeWalkedOnce(t *testing.T) {
	t.Parallel()
	cfg, root := testConfig(t, nil, "k")
	writeFiles(t, root, map[string]string{
		"usr/lib/modules/k/kernel/x.ko": "",
		"lib2":                          "-> usr/lib",
	})
	cfg.ModulesDirs = []string{filepath.Join(root, "lib2/modules"), filepath.Join(root, "usr/lib/modules")}
	cfg.MaxEntries = 3 // kernel/ and x.ko once; walking twice would exceed it
	got, notes, err := New(cfg).FindModule("nothere")
	if !errors.Is(err, ErrModuleNotFound) || len(notes) != 0 {
		t.Errorf("got %q, %q, %v", got, notes, err)
	}
	got, _, err = New(cfg).FindModule("x")
	if err != nil || got != filepath.Join(root, "lib2/modules/k/kernel/x.ko") {
		t.Errorf("got %q, %v", got, err)
	}
}

func TestFindModuleBounds(t *testing.T) {
	t.Parallel()
	cfg, root := testConfig(t, nil, "k")
	files := map[string]string{"lib/modules/k/deep/a/b/c/d/e/f/g/h/i/j/lp.ko": ""}
	for i := range 50 {
		files[fmt.Sprintf("lib/modules/k/kernel/m%02d.ko", i)] = ""
	}
	files["lib/modules/k/zz/lp2.ko"] = ""
	writeFiles(t, root, files)

	// Too deep: not found, no note.
	cfg.MaxDepth = 5
	if _, notes, err := New(cfg).FindModule("lp"); !errors.Is(err, ErrModuleNotFound) || len(notes) != 0 {
		t.Errorf("deep module: %v, %q", err, notes)
	}

	// Too many entries: stops, with a note.
	cfg.MaxEntries = 30
	_, notes, err := New(cfg).FindModule("lp2")
	if !errors.Is(err, ErrModuleNotFound) || len(notes) != 1 || !strings.Contains(notes[0], "stopped early") {
		t.Errorf("limited search: %v, %q", err, notes)
	}
	cfg.MaxEntries = 0 // default
	if got, _, err := New(cfg).FindModule("lp2"); err != nil || !strings.HasSuffix(got, "zz/lp2.ko") {
		t.Errorf("unlimited search: %q, %v", got, err)
	}
}

func TestKernelRelease(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content *string
		want    string
		wantErr string
	}{
		{name: "ok", content: ptr("6.4.0-150600.23.7-default\n"), want: "6.4.0-150600.23.7-default"},
		{name: "missing", wantErr: "read kernel release: open "},
		{name: "slash", content: ptr("../../etc\n"), wantErr: "unusable value"},
		{name: "dotdot", content: ptr("..\n"), wantErr: "unusable value"},
		{name: "empty", content: ptr("\n"), wantErr: "unusable value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			proc := t.TempDir()
			if tt.content != nil {
				writeFiles(t, proc, map[string]string{"sys/kernel/osrelease": *tt.content})
			}
			s := New(Config{ProcRoot: proc})
			got, err := s.KernelRelease()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want %q", err, tt.wantErr)
				}
				// FindModule reports it too, before any walk.
				if _, _, err := s.FindModule("lp"); err == nil || errors.Is(err, ErrModuleNotFound) {
					t.Errorf("FindModule err = %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v", got, err)
			}
		})
	}
	if got, _ := New(Config{KernelRelease: "fixed", ProcRoot: "/nonexistent"}).KernelRelease(); got != "fixed" {
		t.Errorf("Config.KernelRelease ignored: %q", got)
	}
	if _, _, err := New(Config{KernelRelease: "k"}).FindModule("a/b"); err == nil {
		t.Error("FindModule accepted a name with a slash")
	}
}

func ptr[T any](v T) *T { return &v }

// The real defaults must not be what a test tree uses by accident.
func TestDefaults(t *testing.T) {
	t.Parallel()
	cfg := New(Config{}).Config()
	if cfg.ProcRoot != "/proc" || cfg.ModulesDirs[0] != "/lib/modules" || cfg.StoreDirs[0] != "/var/lib/klp" ||
		cfg.StoreDirs[1] != "/var/lib/kpatch" || cfg.LifecycleDirs[0] != "/var/lib/lifecycle/data" ||
		cfg.DocDir != "/usr/share/doc" || cfg.Runner == nil || cfg.Timeout <= 0 {
		t.Errorf("defaults: %+v", cfg)
	}
	if _, err := os.Stat("/proc/sys/kernel/osrelease"); err == nil {
		if _, err := New(Config{}).KernelRelease(); err != nil {
			t.Errorf("KernelRelease on this host: %v", err)
		}
	}
}

// TestWalkerEdges: the search's budget of entries and its depth, met
// exactly and passed by one, and the top directories it skips.
func TestWalkerEdges(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	// x.ko is the fourth entry (a, a/b, a/b/c, a/b/c/x.ko), three
	// directories deep.
	writeFiles(t, root, map[string]string{"a/b/c/x.ko": "", "skip/y.ko": "", "a/skip/y.ko": "", "skip/z.ko": ""})
	for _, tc := range []struct {
		budget, depth int
		want          string // the file found, relative to root
		limited       bool
	}{
		{budget: 4, depth: 4, want: "a/b/c/x.ko"},
		{budget: 3, depth: 4, limited: true},
		{budget: 100, depth: 3},
	} {
		want := ""
		if tc.want != "" {
			want = filepath.Join(root, tc.want)
		}
		// a comes before skip, which is not entered either way.
		w := walker{want: "x", budget: tc.budget, maxDepth: tc.depth}
		found, err := w.walk(root, map[string]bool{"skip": true})
		if err != nil || found != want || w.limited != tc.limited || (len(w.notes()) > 0) != tc.limited {
			t.Errorf("budget %d, depth %d: found %q, %v, limited %v; want %q, limited %v", tc.budget, tc.depth, found, err, w.limited, want, tc.limited)
		}
	}
	// skip/ is not entered at the top; a/skip/ is.
	w := walker{want: "y", budget: 100, maxDepth: 4}
	if found, err := w.walk(root, map[string]bool{"skip": true}); err != nil || found != filepath.Join(root, "a/skip/y.ko") {
		t.Errorf("skipped top directory: found %q, %v", found, err)
	}
	w = walker{want: "z", budget: 100, maxDepth: 4}
	if found, err := w.walk(root, map[string]bool{"skip": true}); err != nil || found != "" {
		t.Errorf("a file only in the skipped top directory: found %q, %v", found, err)
	}
}
