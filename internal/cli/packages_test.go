package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/pkgmeta"
)

const dgChangelog = `* Thu Mar 09 2023 nstange@suse.de
- Fix for CVE-2022-2588 (bsc#1202488)
- Reduce spurious warnings (bsc#1205999)
`

func dgSource(t *testing.T, root string, r *dgRunner) *admin.Packages {
	t.Helper()
	return admin.NewPackages(pkgmeta.Config{
		Runner:        r,
		ProcRoot:      filepath.Join(root, "proc"),
		ModulesDirs:   []string{filepath.Join(root, "lib/modules")},
		StoreDirs:     []string{},
		LifecycleDirs: []string{filepath.Join(root, "lifecycle")},
		DocDir:        filepath.Join(root, "doc"),
	})
}

func TestPackageSourceDescribe(t *testing.T) {
	t.Parallel()
	root := dgTree(t, dgOnePatch, map[string]string{
		"lifecycle/sle-module-live-patching.lifecycle": dgPkg + ", *, 2024-06-01\n",
	})
	r := dgSUSE(t, root)
	r.replies["rpm -q --changelog "+dgPkg+"-6-150400.2.2.x86_64"] = dgReply{out: dgChangelog}
	src := dgSource(t, root, r)

	want := &admin.PackageInfo{
		Manager: "rpm", Name: dgPkg, Version: "6", Release: "150400.2.2", Arch: "x86_64",
		Full: dgPkg + "-6-150400.2.2.x86_64",
		CVEs: []string{"CVE-2022-2588"}, Bugs: []string{"bsc#1205999"},
	}
	got, notes, err := src.Describe("livepatch_6_150400_2_2", 1)
	if err != nil || len(notes) != 0 {
		t.Fatalf("Describe: %q, %v", notes, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("-v (-want +got):\n%s", diff)
	}

	want.Expiration, want.Update = "2024-06-01", "up to date"
	got, notes, err = src.Describe("livepatch_6_150400_2_2", 2)
	if err != nil || len(notes) != 0 {
		t.Fatalf("Describe: %q, %v", notes, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("-vv (-want +got):\n%s", diff)
	}

	// A patch no package owns: nil, so the package lines are left out.
	got, notes, err = src.Describe("not_on_disk", 2)
	if got != nil || len(notes) != 0 || err != nil {
		t.Errorf("unowned: %+v, %q, %v", got, notes, err)
	}
}

func TestPackagesBindsProcRoot(t *testing.T) {
	t.Parallel()
	snap := t.TempDir()
	if err := os.MkdirAll(filepath.Join(snap, "sys/kernel"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(snap, "sys/kernel/osrelease"), []byte("6.4.0-snapshot\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := &rootOptions{procRoot: snap, env: &Env{Packages: admin.NewPackages(pkgmeta.Config{})}}
	ps, ok := opts.packages().(*admin.Packages)
	if !ok {
		t.Fatalf("packages() = %T", opts.packages())
	}
	if krel, err := ps.KernelRelease(); err != nil || krel != "6.4.0-snapshot" {
		t.Errorf("kernel release from --procfs: %q, %v", krel, err)
	}
	// The default root keeps the same source.
	def := &rootOptions{procRoot: "/proc", env: opts.env}
	if def.packages() != opts.env.Packages {
		t.Error("default --procfs built a new source")
	}
	// Other sources pass through.
	opts.env.Packages = describeOnly{}
	if _, ok := opts.packages().(describeOnly); !ok {
		t.Error("a test source was replaced")
	}
	opts.env.Packages = nil
	if opts.packages() != nil {
		t.Error("nil source became non-nil")
	}
}

// klp -v patches with the real adapter: the RPM, CVE and bug lines come
// from the fake rpm.
func TestPatchesWithPackageSource(t *testing.T) {
	t.Parallel()
	root := dgTree(t, dgOnePatch, nil)
	r := dgSUSE(t, root)
	r.replies["rpm -q --changelog "+dgPkg+"-6-150400.2.2.x86_64"] = dgReply{out: dgChangelog}
	var out, errOut bytes.Buffer
	env := &Env{IO: &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, Packages: dgSource(t, root, r)}
	code := Run([]string{"klp", "--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc"), "-v", "patches"}, env)
	if code != ExitOK || errOut.Len() != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, line := range []string{
		"    RPM: " + dgPkg + "-6-150400.2.2.x86_64\n",
		"    CVE: CVE-2022-2588\n",
		"    bug fixes and enhancements: bsc#1205999\n",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, out.String())
		}
	}
}
