//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klp-project/klp/e2e/internal/harness"
)

// TestDebianAnsible boots the Debian guest on both kernels at once and
// drives them over SSH with Debian's ansible-core and the collection in
// contrib/ansible: the roll-out playbook installs klp's .deb with the role
// and loads a patch (changed), runs again (unchanged), runs in check mode;
// a roll-out whose first host stalls stops before the next batch, naming the
// blocking kernel thread, with the stalled host rolled back; the rollback
// playbook unloads the patch everywhere.
func TestDebianAnsible(t *testing.T) {
	if os.Getenv("KLP_E2E_DEBIAN") == "0" {
		t.Skip("KLP_E2E_DEBIAN=0")
	}
	playbook, err := exec.LookPath("ansible-playbook")
	if err != nil {
		t.Skip("ansible-playbook not installed (make deps-ansible)")
	}
	ctx := context.Background()
	repo, err := harness.RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	env, err := harness.Setup(ctx, repo, &logWriter{t: t})
	if err != nil {
		t.Fatal(err)
	}
	if len(env.Kernels) < 2 {
		t.Fatalf("need two kernels, have %v", env.Kernels)
	}
	work := filepath.Join(repo, "e2e", ".work", "ansible")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	timeout := 10 * time.Minute
	if v := os.Getenv("KLP_E2E_BOOT_TIMEOUT"); v != "" {
		if timeout, err = time.ParseDuration(v); err != nil {
			t.Fatalf("KLP_E2E_BOOT_TIMEOUT: %v", err)
		}
	}
	img, err := env.DebianImage(ctx, &logWriter{t: t})
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := harness.BuildPackages(ctx, repo, filepath.Join(work, "dist"))
	if err != nil {
		t.Fatal(err)
	}

	// Both guests, booted in parallel.
	type host struct {
		name, kernel, modDir string
		vm                   *harness.VM
		g                    *guest
	}
	hosts := make([]*host, len(env.Kernels))
	var wg sync.WaitGroup
	errs := make([]error, len(env.Kernels))
	for i, k := range env.Kernels {
		hosts[i] = &host{name: "klp-" + regexp.MustCompile(`^\d+\.\d+`).FindString(k), kernel: k}
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := hosts[i]
			if h.modDir, errs[i] = env.Modules(ctx, k, &logWriter{t: t}); errs[i] != nil {
				return
			}
			h.vm, errs[i] = harness.NewVM(ctx, harness.VMConfig{Image: img, Kernel: k, Dir: filepath.Join(work, k), Log: &logWriter{t: t}})
			if errs[i] != nil {
				return
			}
			// no_timer_check: under TCG on a loaded host the kernel's
			// IO-APIC timer check can fail and panic at boot ("IO-APIC +
			// timer doesn't work"); a boot that failed anyway is tried
			// once more.
			var d time.Duration
			if d, errs[i] = h.vm.Boot(ctx, "no_timer_check", timeout); errs[i] != nil && !h.vm.Running() {
				t.Logf("%s: boot failed (%v), booting again", h.name, errs[i])
				d, errs[i] = h.vm.Boot(ctx, "no_timer_check", timeout)
			}
			t.Logf("%s: boot until SSH %v", h.name, d.Round(100*time.Millisecond))
		}()
	}
	wg.Wait()
	for _, h := range hosts {
		if h.vm != nil {
			defer h.vm.Close()
			h.g = &guest{vm: h.vm, kernel: h.kernel, timeout: timeout}
		}
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range hosts {
		h.g.mustRun(t, "mkdir -p "+guestModules)
		if err := h.vm.CopyIn(ctx, guestModules+"/", filepath.Join(h.modDir, "klp_e2e_target.ko")); err != nil {
			t.Fatal(err)
		}
	}

	// The inventory: both guests, each with the modules built for its kernel.
	var inv strings.Builder
	inv.WriteString("[guests]\n")
	for _, h := range hosts {
		inv.WriteString(strings.TrimSuffix(h.vm.AnsibleInventory(h.name), "\n") + " klp_modules=" + h.modDir + "\n")
	}
	inventory := filepath.Join(work, "inventory")
	if err := os.WriteFile(inventory, []byte(inv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	colls := filepath.Join(work, "collections")
	ns := filepath.Join(colls, "ansible_collections", "klp_project")
	if err := os.MkdirAll(ns, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(filepath.Join(ns, "klp"))
	if err := os.Symlink(filepath.Join(repo, "contrib", "ansible"), filepath.Join(ns, "klp")); err != nil {
		t.Fatal(err)
	}
	play := func(t *testing.T, name string, args ...string) (string, time.Duration, error) {
		t.Helper()
		cmd := exec.Command(playbook, append([]string{"-i", inventory}, args...)...)
		cmd.Env = append(os.Environ(),
			"ANSIBLE_COLLECTIONS_PATH="+colls,
			"ANSIBLE_LOCAL_TEMP="+filepath.Join(work, "tmp"),
			"ANSIBLE_HOME="+filepath.Join(work, "home"),
			"ANSIBLE_CONFIG="+filepath.Join(work, "none.cfg"),
			"ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0",
			"ANSIBLE_SSH_PIPELINING=1",
			"LC_ALL=C.UTF-8")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(start)
		t.Logf("%s: ansible-playbook %s: %v in %v", name, strings.Join(args, " "), err, d.Round(100*time.Millisecond))
		if err := os.WriteFile(filepath.Join(work, name+".log"), out, 0o644); err != nil {
			t.Error(err)
		}
		return string(out), d, err
	}
	cmdline := "klp_patch_src={{ klp_modules }}/klp_e2e_cmdline.ko"
	enabled := func(t *testing.T, h *host, patch string) string {
		return strings.TrimSpace(h.g.run(t, "cat /sys/kernel/livepatch/"+patch+"/enabled 2>/dev/null || echo absent").Stdout)
	}

	if !t.Run("rollout-first", func(t *testing.T) {
		out, d, err := play(t, "rollout-first", "-e", cmdline, "-e", "klp_install=true", "-e", "klp_package="+pkgs.Deb,
			"klp_project.klp.rollout")
		if err != nil {
			t.Fatalf("first roll-out failed: %v\n%s", err, out)
		}
		t.Logf("timing: roll-out over %d guests (install klp's .deb, enable klp.service, preflight, load, install for boot, gate): %v", len(hosts), d.Round(100*time.Millisecond))
		for _, h := range hosts {
			expect(t, h.name, recap(out, h.name, "changed") > 0, "not changed:\n%s", out)
			expect(t, h.name, enabled(t, h, "klp_e2e_cmdline") == "1", "klp_e2e_cmdline not enabled")
			expect(t, h.name, h.g.run(t, "test -f /var/lib/klp/"+h.kernel+"/klp_e2e_cmdline.ko").OK(), "not installed for boot")
			expect(t, h.name, strings.TrimSpace(h.g.run(t, "systemctl is-enabled klp.service").Stdout) == "enabled", "klp.service not enabled")
		}
	}) {
		t.FailNow()
	}
	t.Run("rollout-again", func(t *testing.T) {
		out, d, err := play(t, "rollout-again", "-e", cmdline, "-e", "klp_install=true", "-e", "klp_package="+pkgs.Deb,
			"klp_project.klp.rollout")
		if err != nil {
			t.Fatalf("second roll-out failed: %v\n%s", err, out)
		}
		t.Logf("timing: unchanged roll-out %v", d.Round(100*time.Millisecond))
		for _, h := range hosts {
			expect(t, h.name, recap(out, h.name, "changed") == 0 && recap(out, h.name, "ok") > 0, "changed again:\n%s", out)
		}
	})
	t.Run("rollback-check", func(t *testing.T) {
		out, _, err := play(t, "rollback-check", "--check", "--diff", "-e", "klp_patch_name=klp_e2e_cmdline", "klp_project.klp.rollback")
		if err != nil {
			t.Fatalf("rollback in check mode failed: %v\n%s", err, out)
		}
		for _, h := range hosts {
			expect(t, h.name, recap(out, h.name, "changed") > 0, "check mode does not report a change:\n%s", out)
			expect(t, h.name, enabled(t, h, "klp_e2e_cmdline") == "1", "check mode changed the kernel")
			expect(t, h.name, h.g.run(t, "test -f /var/lib/klp/"+h.kernel+"/klp_e2e_cmdline.ko").OK(), "check mode uninstalled")
		}
		expect(t, "diff", strings.Contains(out, `"state": "absent"`) || strings.Contains(out, "state: absent"), "no diff:\n%s", out)
	})
	t.Run("rollout-stall", func(t *testing.T) {
		// Every host runs klp_e2e_target with its kthread parked in the
		// function klp_e2e_target_patch replaces: that patch cannot finish.
		for _, h := range hosts {
			h.g.mustRun(t, "insmod "+guestModules+"/klp_e2e_target.ko block_kthread=1 && for i in $(seq 50); do [ \"$(cat /sys/module/klp_e2e_target/parameters/kthread_waiting)\" = 1 ] && break; sleep 0.2; done")
		}
		defer func() {
			for _, h := range hosts {
				h.g.run(t, "echo 0 > /sys/module/klp_e2e_target/parameters/block_kthread; klp unload klp_e2e_target_patch >/dev/null 2>&1; sleep 1; rmmod klp_e2e_target")
			}
		}()
		out, _, err := play(t, "rollout-stall", "-e", "klp_patch_src={{ klp_modules }}/klp_e2e_target_patch.ko",
			"-e", "klp_wait=5", "-e", "klp_patch_state=loaded", "klp_project.klp.rollout")
		if err == nil {
			t.Fatalf("a stalled roll-out succeeded:\n%s", out)
		}
		first, second := hosts[0], hosts[1]
		expect(t, "message", strings.Contains(out, "klp roll-out stopped at "+first.name) && strings.Contains(out, "klp_e2e_busy") &&
			strings.Contains(out, "klp_e2e_target_patch"), "the failure does not name the host, the patch and the blocking thread:\n%s", out)
		expect(t, first.name, enabled(t, first, "klp_e2e_target_patch") == "absent", "the stalled load was not rolled back")
		expect(t, second.name, enabled(t, second, "klp_e2e_target_patch") == "absent", "the next batch was patched")
		expect(t, second.name, !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(second.name)+`\s*:`).MatchString(out), "the next batch ran:\n%s", out)
	})
	t.Run("rollback", func(t *testing.T) {
		out, d, err := play(t, "rollback", "-e", "klp_patch_name=klp_e2e_cmdline", "klp_project.klp.rollback")
		if err != nil {
			t.Fatalf("rollback failed: %v\n%s", err, out)
		}
		t.Logf("timing: rollback over %d guests %v", len(hosts), d.Round(100*time.Millisecond))
		for _, h := range hosts {
			expect(t, h.name, recap(out, h.name, "changed") > 0, "not changed:\n%s", out)
			expect(t, h.name, enabled(t, h, "klp_e2e_cmdline") == "absent", "still loaded")
			expect(t, h.name, !h.g.run(t, "test -e /var/lib/klp/"+h.kernel+"/klp_e2e_cmdline.ko").OK(), "still installed")
		}
	})
}

// recap reads one counter of a host's line in ansible-playbook's PLAY RECAP
// (-1 when the host has no line).
func recap(out, host, counter string) int {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(host) + `\s*:.*\b` + counter + `=(\d+)`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		return -1
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return -1
	}
	return n
}
