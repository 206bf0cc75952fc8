//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klp-project/klp/e2e/internal/harness"
)

// Environment variables of the Debian guests (besides those of TestKernels):
//
//	KLP_E2E_DEBIAN       0 skips TestDebian
//	KLP_E2E_PACKAGES     a directory where "make packages-build" left klp's
//	                     packages (make e2e's): used instead of building them
//	KLP_E2E_BOOT_TIMEOUT bounds each Debian boot until SSH answers (default
//	                     10m: a boot takes about 20 s on an idle machine,
//	                     several minutes when its cores are shared)

// debianModules are the test modules copied into each Debian guest
// (e2e/modules, built for its kernel), for the Debian and the Ansible
// scenarios.
var debianModules = []string{"klp_e2e_cmdline", "klp_e2e_target", "klp_e2e_target_patch", "klp_e2e_broken", "klp_e2e_slow", "klp_e2e_deb_v1", "klp_e2e_deb_v2"}

// guestModules is where they go in the guest.
const guestModules = "/root/modules"

// debianScenario is one scenario of the Debian guests: fn runs on one
// kernel's guest, after the scenarios registered before it, on the same disk.
type debianScenario struct {
	name string
	fn   func(t *testing.T, g *guest)
}

// debianScenarios run on each kernel's guest, in this order (subtests
// TestDebian/scenarios/<kernel>/<name>). A new scenario is one line here;
// it finds klp's .deb and the test modules in the guest (see startGuest)
// and leaves the guest up.
var debianScenarios = []debianScenario{
	{"klp-deb", scenarioKlpDeb},
	{"audit-journal", scenarioAuditJournal},
	{"patch-deb", scenarioPatchDeb},
	{"boot-load", scenarioBootLoad},
	{"boot-disabled", scenarioBootDisabled},
	{"boot-crash", scenarioBootCrash},
}

// TestDebian boots the Debian guest (e2e/debian: Debian 12 made with
// mmdebstrap, systemd, sshd) once on each kernel and runs two groups of
// scenarios in those guests, one group after the other:
//
//   - scenarios: debianScenarios on each kernel's guest, both kernels at
//     once, checking klp as Debian runs it: the .deb of "make packages"
//     installed and purged; the audit records in the journal; a live
//     patch shipped as a .deb, klp -v patches and klp downgrade through
//     apt; klp.service at boot, with klp.enable=0, with a broken patch, and
//     after the machine went down while a patch was loading.
//   - ansible: fleetScenarios (ansible_test.go) over both guests at once
//     with Debian's ansible-core and contrib/ansible, after a reset that
//     purges klp and unloads every patch.
//
// Booting each guest once for both groups saves two TCG boots (the Ansible
// scenarios had guests of their own). -run 'TestDebian/ansible' runs the
// Ansible group alone; its guests are then booted for it.
func TestDebian(t *testing.T) {
	if os.Getenv("KLP_E2E_DEBIAN") == "0" {
		t.Skip("KLP_E2E_DEBIAN=0")
	}
	if !serial() {
		debianGate.planned.Store(true)
		defer debianScenariosOver()
		t.Parallel()
	}
	ctx := context.Background()
	repo, err := harness.RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	env, err := harness.Setup(ctx, repo, &logWriter{t: t})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: setup %v", time.Since(start).Round(time.Millisecond))
	timeout := 10 * time.Minute
	if v := os.Getenv("KLP_E2E_BOOT_TIMEOUT"); v != "" {
		if timeout, err = time.ParseDuration(v); err != nil {
			t.Fatalf("KLP_E2E_BOOT_TIMEOUT: %v", err)
		}
	}

	work := filepath.Join(repo, "e2e", ".work", "debian")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	// The image, the packages and the modules are independent.
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		img     *harness.DebianImage
		pkgs    harness.Packages
		modDirs = map[string]string{}
		errs    []error
		took    = map[string]time.Duration{}
	)
	do := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			err := fn()
			mu.Lock()
			defer mu.Unlock()
			took[name] = time.Since(start)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}()
	}
	do("image", func() (err error) { img, err = env.DebianImage(ctx, &logWriter{t: t}); return err })
	do("packages", func() (err error) {
		if dist := os.Getenv("KLP_E2E_PACKAGES"); dist != "" {
			pkgs, err = harness.FindPackages(ctx, dist)
			return err
		}
		pkgs, err = harness.BuildPackages(ctx, repo, filepath.Join(work, "dist"))
		return err
	})
	for _, k := range env.Kernels {
		do("modules "+k, func() error {
			dir, err := env.Modules(ctx, k, &logWriter{t: t})
			mu.Lock()
			modDirs[k] = dir
			mu.Unlock()
			return err
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	for name, d := range took {
		t.Logf("timing: %s %v", name, d.Round(time.Millisecond))
	}
	if img.BuildTime > 0 {
		t.Logf("timing: Debian image built in %v (%s)", img.BuildTime.Round(time.Second), img.Dir)
	} else {
		t.Logf("Debian image from the cache: %s", img.Dir)
	}
	t.Logf("klp packages: %s, %s (version %s)", filepath.Base(pkgs.Deb), filepath.Base(pkgs.RPM), pkgs.Version)

	// One guest per kernel, kept up from its first scenario to the last
	// Ansible scenario.
	guests := map[string]*guest{}
	defer func() {
		for _, g := range guests {
			g.vm.Close()
		}
	}()
	boot := func(t *testing.T, k string) *guest {
		t.Helper()
		g, err := startGuest(ctx, t, img, k, modDirs[k], pkgs, filepath.Join(work, k), timeout)
		mu.Lock()
		if g != nil {
			guests[k] = g
		}
		mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		return g
	}

	t.Run("scenarios", func(t *testing.T) {
		for _, k := range env.Kernels {
			t.Run(k, func(t *testing.T) {
				if !serial() {
					t.Parallel()
				}
				runDebian(t, boot(t, k))
			})
		}
	})
	debianScenariosOver()
	t.Run("ansible", func(t *testing.T) {
		// Guests the scenarios did not boot (a -run that left them out),
		// booted now.
		var missing []string
		for _, k := range env.Kernels {
			if guests[k] == nil {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			t.Run("boot", func(t *testing.T) {
				for _, k := range missing {
					t.Run(k, func(t *testing.T) {
						if !serial() {
							t.Parallel()
						}
						boot(t, k)
					})
				}
			})
		}
		var gs []*guest
		for _, k := range env.Kernels {
			g := guests[k]
			if g == nil || !g.vm.Running() {
				t.Fatalf("the %s guest is not up", k)
			}
			g.modDir = modDirs[k]
			gs = append(gs, g)
		}
		runFleet(t, gs, filepath.Join(work, "ansible"))
	})
}

// guest is one Debian guest under test.
type guest struct {
	vm      *harness.VM
	kernel  string
	modDir  string // the test modules built for kernel, on the host
	pkgs    harness.Packages
	timeout time.Duration
	timings []string
}

// startGuest boots the Debian guest on kver and copies in what the
// scenarios need: klp's .deb and the two versions of the packaged live
// patch in /root/debs, the test modules in guestModules. It returns the
// guest whenever its VM was made, to be closed by the caller.
func startGuest(ctx context.Context, t *testing.T, img *harness.DebianImage, kver, modDir string, pkgs harness.Packages, work string, timeout time.Duration) (*guest, error) {
	vm, err := harness.NewVM(ctx, harness.VMConfig{Image: img, Kernel: kver, Dir: work, Log: &logWriter{t: t},
		Forward: []int{fleetExporterPort}})
	if err != nil {
		return nil, err
	}
	g := &guest{vm: vm, kernel: kver, modDir: modDir, pkgs: pkgs, timeout: timeout}
	d, err := vm.Boot(ctx, "", timeout)
	if err != nil && !vm.Running() {
		// Under TCG on a loaded host a boot can fail (a kernel panic
		// before SSH): tried once more.
		t.Logf("%s: boot failed (%v), booting again", kver, err)
		d, err = vm.Boot(ctx, "", timeout)
	}
	if err != nil {
		return g, fmt.Errorf("boot %s: %w", kver, err)
	}
	g.timings = append(g.timings, fmt.Sprintf("first boot until SSH %v", d.Round(100*time.Millisecond)))

	debs, err := buildPatchDebs(ctx, kver, modDir, filepath.Join(work, "debs"))
	if err != nil {
		return g, err
	}
	var kos []string
	for _, m := range debianModules {
		kos = append(kos, filepath.Join(modDir, m+".ko"))
	}
	if r, err := vm.Run(ctx, "mkdir -p "+guestModules+" /root/debs"); err != nil || !r.OK() {
		return g, fmt.Errorf("mkdir in the guest: %v %v", err, r)
	}
	for dir, files := range map[string][]string{guestModules: kos, "/root/debs": append([]string{pkgs.Deb}, debs...)} {
		if err := vm.CopyIn(ctx, dir+"/", files...); err != nil {
			return g, fmt.Errorf("copy into %s: %w", dir, err)
		}
	}
	return g, nil
}

// runDebian runs debianScenarios on one guest.
func runDebian(t *testing.T, g *guest) {
	defer func() {
		for _, l := range g.timings {
			t.Logf("timing: %s", l)
		}
	}()
	for _, sc := range debianScenarios {
		start := time.Now()
		ok := t.Run(sc.name, func(t *testing.T) { sc.fn(t, g) })
		g.timings = append(g.timings, fmt.Sprintf("%s %v", sc.name, time.Since(start).Round(100*time.Millisecond)))
		if !ok && !g.vm.Running() {
			t.Fatalf("the guest is down after %s; the remaining scenarios cannot run\n--- console tail:\n%s", sc.name, harness.Tail(g.vm.Console(), 40))
		}
	}
	if len(g.vm.BootTimes) > 0 {
		var ds []string
		for _, b := range g.vm.BootTimes {
			ds = append(ds, b.Round(100*time.Millisecond).String())
		}
		g.timings = append(g.timings, fmt.Sprintf("boots until SSH: %s", strings.Join(ds, ", ")))
	}
}

// run runs a command in the guest; an SSH failure ends the test.
func (g *guest) run(t *testing.T, command string) harness.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	r, err := g.vm.Run(ctx, command)
	if err != nil {
		t.Fatalf("%v\n--- console tail:\n%s", err, harness.Tail(g.vm.Console(), 30))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Logf("slow command (%v): %s", d.Round(100*time.Millisecond), command)
	}
	return r
}

// mustRun runs a command that must succeed, and returns its stdout.
func (g *guest) mustRun(t *testing.T, command string) string {
	t.Helper()
	r := g.run(t, command)
	if !r.OK() {
		t.Fatalf("%s: %v", command, r)
	}
	return r.Stdout
}

// expect records a check: a failure is reported and the test goes on.
func expect(t *testing.T, name string, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Errorf("%s: "+format, append([]any{name}, args...)...)
	}
}

// journalEntry is one journal entry, its fields as strings (journalctl
// -o json writes binary values as byte arrays; those are decoded too).
type journalEntry map[string]string

// journal returns the entries journalctl selects with args (a boot, a
// unit, FIELD=VALUE matches), oldest first.
func (g *guest) journal(t *testing.T, args string) []journalEntry {
	t.Helper()
	r := g.run(t, "journalctl --no-pager -o json "+args)
	if !r.OK() && !strings.Contains(r.Stdout+r.Stderr, "No entries") {
		t.Fatalf("journalctl %s: %v", args, r)
	}
	var out []journalEntry
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		if line == "" {
			continue
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &raw); err != nil {
			t.Fatalf("journalctl %s: %v: %q", args, err, line)
		}
		e := journalEntry{}
		for k, v := range raw {
			var s string
			if json.Unmarshal(v, &s) == nil {
				e[k] = s
				continue
			}
			var b []byte
			var ints []int
			if json.Unmarshal(v, &ints) == nil {
				for _, i := range ints {
					b = append(b, byte(i))
				}
				e[k] = string(b)
			}
		}
		out = append(out, e)
	}
	return out
}

// fsSnapshot lists the guest's files (type, mode, owner, path), leaving out
// what changes by itself: the journal, /tmp, the run-time file systems,
// /root (where the suite copies its files), and dpkg's log of every package
// operation (the image has none yet: mmdebstrap removes it).
func (g *guest) fsSnapshot(t *testing.T) map[string]string {
	t.Helper()
	out := g.mustRun(t, `find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp -o -path /var/tmp -o -path /var/log/journal -o -path /root -o -path /var/log/dpkg.log \) -prune -o -printf '%p\t%y %m %U:%G\n'`)
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		p, attr, _ := strings.Cut(l, "\t")
		m[p] = attr
	}
	return m
}

// fsDiff describes what differs between two snapshots.
func fsDiff(before, after map[string]string) []string {
	var d []string
	for p, a := range after {
		if b, ok := before[p]; !ok {
			d = append(d, "added "+p+" ("+a+")")
		} else if a != b {
			d = append(d, "changed "+p+" ("+b+" -> "+a+")")
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			d = append(d, "removed "+p)
		}
	}
	sort.Strings(d)
	return d
}

// patchPackage is the name of the packaged live patch's .deb.
const patchPackage = "klp-e2e-livepatch"

// patchModuleDir is where its modules go: a subdirectory of the kernel's
// module tree where klp -v patches looks first.
func patchModuleDir(kver string) string { return "/lib/modules/" + kver + "/livepatch" }

// patchChangelogs are the packaged patch's changelogs, newest entry first,
// as a patch vendor writes them: CVEs, and Debian bug numbers (Closes:).
var patchChangelogs = map[string]string{
	"1.0-1": `klp-e2e-livepatch (1.0-1) bookworm-security; urgency=high

  * Live patch for CVE-2026-9999: cmdline_proc_show() leaks the command line.
  * Avoid a stall when /proc/cmdline is read during a transition
    (Closes: #1050001, #1050003).

 -- klp e2e suite <root@localhost>  Mon, 02 Nov 2026 10:00:00 +0000
`,
	"2.0-1": `klp-e2e-livepatch (2.0-1) bookworm-security; urgency=high

  * Live patches for CVE-2026-10001 and CVE-2026-10002.
  * Say which version of the patch runs in /proc/cmdline (Closes: #1050002).

 -- klp e2e suite <root@localhost>  Mon, 16 Nov 2026 10:00:00 +0000

`,
}

// patchExpect is what klp -v patches must show for each version.
var patchExpect = map[string]struct{ module, cves, bugs string }{
	"1.0-1": {"klp_e2e_deb_v1", "CVE-2026-9999", "Debian#1050001 Debian#1050003"},
	"2.0-1": {"klp_e2e_deb_v2", "CVE-2026-10002 CVE-2026-10001 CVE-2026-9999", "Debian#1050002 Debian#1050001 Debian#1050003"},
}

// buildPatchDebs builds the two versions of the packaged live patch for
// kver. Each ships its module in /lib/modules/<kver>/livepatch/ and loads
// it from its postinst with klp, when the running kernel is kver.
func buildPatchDebs(ctx context.Context, kver, modDir, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []string
	for _, v := range []string{"1.0-1", "2.0-1"} {
		mod := patchExpect[v].module
		file := patchModuleDir(kver) + "/" + mod + ".ko"
		changelog := patchChangelogs[v]
		if v == "2.0-1" {
			changelog += patchChangelogs["1.0-1"]
		}
		deb, err := harness.BuildDeb(ctx, harness.DebSpec{
			Package: patchPackage, Version: v, Architecture: "amd64",
			Depends:     "klp",
			Description: "live patch for Linux " + kver + " (klp e2e suite)",
			Files:       map[string]string{strings.TrimPrefix(file, "/"): filepath.Join(modDir, mod+".ko")},
			Changelog:   changelog,
			Postinst: fmt.Sprintf(`#!/bin/sh
set -e
# Load the patch when it is for the running kernel; an atomic replace
# retires the version loaded before.
if [ "$1" = configure ] && [ "$(uname -r)" = %q ]; then
	klp load %s
fi
`, kver, file),
		}, dir)
		if err != nil {
			return nil, err
		}
		out = append(out, deb)
	}
	return out, nil
}
