//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klp-project/klp/e2e/internal/harness"
)

// fleet is what the Ansible scenarios share: the Debian guests (one per
// kernel, hosts[0] first in the inventory), the inventory and a way to run
// a playbook of contrib/ansible over them.
type fleet struct {
	hosts []*host
	work  string
	// play runs ansible-playbook with args over the inventory; its output
	// goes to <work>/<name>.log too.
	play func(t *testing.T, name string, args ...string) (string, time.Duration, error)
}

// host is one guest as Ansible knows it.
type host struct {
	name string // its inventory name: klp-<major>.<minor>
	*guest
}

// eachHost runs fn on every host at once, each in a subtest
// <name>/<host>, and says whether all passed. Under TCG a guest's dpkg or
// systemd commands take tens of seconds, and the hosts are independent.
func (f *fleet) eachHost(t *testing.T, name string, fn func(t *testing.T, h *host)) bool {
	t.Helper()
	return t.Run(name, func(t *testing.T) {
		for _, h := range f.hosts {
			t.Run(h.name, func(t *testing.T) {
				t.Parallel()
				fn(t, h)
			})
		}
	})
}

// enabled reads a patch's enabled attribute on h ("absent" when the kernel
// has no such patch).
func (h *host) enabled(t *testing.T, patch string) string {
	t.Helper()
	return strings.TrimSpace(h.run(t, "cat /sys/kernel/livepatch/"+patch+"/enabled 2>/dev/null || echo absent").Stdout)
}

// fleetScenario is one Ansible scenario. When a required one fails, the
// scenarios after it do not run.
type fleetScenario struct {
	name     string
	fn       func(t *testing.T, f *fleet)
	required bool
}

// fleetScenarios run over both Debian guests at once, in this order
// (subtests TestDebian/ansible/<name>), after the Debian scenarios and a
// reset: klp is not installed and no patch is loaded or installed. A new
// scenario is one line here.
var fleetScenarios = []fleetScenario{
	{"rollout-first", fleetRolloutFirst, true},
	{"rollout-again", fleetRolloutAgain, false},
	{"rollback-check", fleetRollbackCheck, false},
	{"rollout-stall", fleetRolloutStall, false},
	{"rollback", fleetRollback, false},
	{"fleet", testFleet, false},
}

// fleetReset is what the Ansible scenarios start from on every guest: the
// Debian scenarios' patches unloaded (their modules removed), klp purged,
// nothing installed for boot.
const fleetReset = `if command -v klp >/dev/null; then klp unload --all >/dev/null; fi &&
dpkg --purge klp klp-e2e-livepatch 2>&1 && rm -rf /var/lib/klp /etc/apt/sources.list.d/klp-e2e.list`

// fleetLeft lists what the reset must have removed: live patches, test
// modules, klp's state and units.
const fleetLeft = `find /sys/kernel/livepatch -mindepth 1 -maxdepth 1; ls -d /var/lib/klp /usr/bin/klp /etc/systemd/system/multi-user.target.wants/klp.service 2>/dev/null; grep '^klp_e2e' /proc/modules; true`

// runFleet drives the guests over SSH with Debian's ansible-core and the
// collection in contrib/ansible: the roll-out playbook installs klp's .deb
// with the role and loads a patch (changed), runs again (unchanged), runs
// in check mode; a roll-out whose first host stalls stops before the next
// batch, naming the blocking kernel thread, with the stalled host rolled
// back; the rollback playbook unloads the patch everywhere.
func runFleet(t *testing.T, gs []*guest, work string) {
	playbook, err := exec.LookPath("ansible-playbook")
	if err != nil {
		t.Skip("ansible-playbook not installed (make deps-ansible)")
	}
	if len(gs) < 2 {
		t.Fatalf("need two guests, have %d", len(gs))
	}
	repo, err := harness.RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	f := &fleet{work: work}
	for _, g := range gs {
		f.hosts = append(f.hosts, &host{name: "klp-" + regexp.MustCompile(`^\d+\.\d+`).FindString(g.kernel), guest: g})
	}
	if !f.eachHost(t, "reset", func(t *testing.T, h *host) {
		h.mustRun(t, fleetReset)
		left := strings.TrimSpace(h.mustRun(t, fleetLeft))
		expect(t, h.name, left == "", "after the reset, patches or test modules are left:\n%s", left)
	}) {
		t.FailNow()
	}

	// The inventory: the guests, each with the modules built for its kernel.
	var inv strings.Builder
	inv.WriteString("[guests]\n")
	for _, h := range f.hosts {
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
	f.play = func(t *testing.T, name string, args ...string) (string, time.Duration, error) {
		t.Helper()
		cmd := exec.Command(playbook, append([]string{"-i", inventory}, args...)...)
		cmd.Env = append(os.Environ(),
			"ANSIBLE_COLLECTIONS_PATH="+colls,
			"ANSIBLE_LOCAL_TEMP="+filepath.Join(work, "tmp"),
			"ANSIBLE_HOME="+filepath.Join(work, "home"),
			"ANSIBLE_CONFIG="+filepath.Join(work, "none.cfg"),
			"ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0",
			"ANSIBLE_SSH_PIPELINING=1",
			// Each task's time per host, for what the plays cost:
			// <work>/junit/<playbook>-<time>.xml.
			"ANSIBLE_CALLBACKS_ENABLED=junit", "JUNIT_OUTPUT_DIR="+filepath.Join(work, "junit"), "JUNIT_TASK_CLASS=yes",
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

	for _, sc := range fleetScenarios {
		if !t.Run(sc.name, func(t *testing.T) { sc.fn(t, f) }) && sc.required {
			t.Fatalf("%s failed; the remaining Ansible scenarios cannot run", sc.name)
		}
	}
}

// fleetCmdline is the roll-out's patch: klp_e2e_cmdline of each host's
// kernel.
const fleetCmdline = "klp_patch_src={{ klp_modules }}/klp_e2e_cmdline.ko"

// fleetRolloutFirst installs klp's .deb with the role, enables klp.service
// and loads and installs klp_e2e_cmdline on every host: changed.
func fleetRolloutFirst(t *testing.T, f *fleet) {
	out, d, err := f.play(t, "rollout-first", "-e", fleetCmdline, "-e", "klp_install=true", "-e", "klp_package="+f.hosts[0].pkgs.Deb,
		"klp_project.klp.rollout")
	if err != nil {
		t.Fatalf("first roll-out failed: %v\n%s", err, out)
	}
	t.Logf("timing: roll-out over %d guests (install klp's .deb, enable klp.service, preflight, load, install for boot, gate): %v", len(f.hosts), d.Round(100*time.Millisecond))
	for _, h := range f.hosts {
		expect(t, h.name, recap(out, h.name, "changed") > 0, "not changed:\n%s", out)
		expect(t, h.name, h.enabled(t, "klp_e2e_cmdline") == "1", "klp_e2e_cmdline not enabled")
		expect(t, h.name, h.run(t, "test -f /var/lib/klp/"+h.kernel+"/klp_e2e_cmdline.ko").OK(), "not installed for boot")
		expect(t, h.name, strings.TrimSpace(h.run(t, "systemctl is-enabled klp.service").Stdout) == "enabled", "klp.service not enabled")
	}
}

// fleetRolloutAgain runs the same roll-out again: nothing changes.
func fleetRolloutAgain(t *testing.T, f *fleet) {
	// One batch: what this checks does not depend on the batches, which
	// the first roll-out and the stalled one go through.
	out, d, err := f.play(t, "rollout-again", "-e", fleetCmdline, "-e", "klp_install=true", "-e", "klp_package="+f.hosts[0].pkgs.Deb,
		"-e", "klp_serial=100%", "klp_project.klp.rollout")
	if err != nil {
		t.Fatalf("second roll-out failed: %v\n%s", err, out)
	}
	t.Logf("timing: unchanged roll-out %v", d.Round(100*time.Millisecond))
	for _, h := range f.hosts {
		expect(t, h.name, recap(out, h.name, "changed") == 0 && recap(out, h.name, "ok") > 0, "changed again:\n%s", out)
	}
}

// fleetRollbackCheck runs the rollback playbook in check mode: it reports
// a change and a diff, and changes nothing.
func fleetRollbackCheck(t *testing.T, f *fleet) {
	out, _, err := f.play(t, "rollback-check", "--check", "--diff", "-e", "klp_patch_name=klp_e2e_cmdline", "klp_project.klp.rollback")
	if err != nil {
		t.Fatalf("rollback in check mode failed: %v\n%s", err, out)
	}
	for _, h := range f.hosts {
		expect(t, h.name, recap(out, h.name, "changed") > 0, "check mode does not report a change:\n%s", out)
		expect(t, h.name, h.enabled(t, "klp_e2e_cmdline") == "1", "check mode changed the kernel")
		expect(t, h.name, h.run(t, "test -f /var/lib/klp/"+h.kernel+"/klp_e2e_cmdline.ko").OK(), "check mode uninstalled")
	}
	expect(t, "diff", strings.Contains(out, `"state": "absent"`) || strings.Contains(out, "state: absent"), "no diff:\n%s", out)
}

// fleetRolloutStall rolls out a patch that cannot finish on the first
// host: the roll-out stops there, naming the host, the patch and the
// blocking thread, rolls that host back, and leaves the next batch alone.
func fleetRolloutStall(t *testing.T, f *fleet) {
	// Every host runs klp_e2e_target with its kthread parked in the
	// function klp_e2e_target_patch replaces: that patch cannot finish.
	for _, h := range f.hosts {
		h.mustRun(t, "insmod "+guestModules+"/klp_e2e_target.ko block_kthread=1 && for i in $(seq 50); do [ \"$(cat /sys/module/klp_e2e_target/parameters/kthread_waiting)\" = 1 ] && break; sleep 0.2; done")
	}
	defer func() {
		for _, h := range f.hosts {
			h.run(t, "echo 0 > /sys/module/klp_e2e_target/parameters/block_kthread; klp unload klp_e2e_target_patch >/dev/null 2>&1; sleep 1; rmmod klp_e2e_target")
		}
	}()
	out, _, err := f.play(t, "rollout-stall", "-e", "klp_patch_src={{ klp_modules }}/klp_e2e_target_patch.ko",
		"-e", "klp_wait=5", "-e", "klp_patch_state=loaded", "klp_project.klp.rollout")
	if err == nil {
		t.Fatalf("a stalled roll-out succeeded:\n%s", out)
	}
	first, second := f.hosts[0], f.hosts[1]
	expect(t, "message", strings.Contains(out, "klp roll-out stopped at "+first.name) && strings.Contains(out, "klp_e2e_busy") &&
		strings.Contains(out, "klp_e2e_target_patch"), "the failure does not name the host, the patch and the blocking thread:\n%s", out)
	expect(t, first.name, first.enabled(t, "klp_e2e_target_patch") == "absent", "the stalled load was not rolled back")
	expect(t, second.name, second.enabled(t, "klp_e2e_target_patch") == "absent", "the next batch was patched")
	expect(t, second.name, !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(second.name)+`\s*:`).MatchString(out), "the next batch ran:\n%s", out)
}

// fleetRollback unloads and uninstalls klp_e2e_cmdline everywhere.
func fleetRollback(t *testing.T, f *fleet) {
	out, d, err := f.play(t, "rollback", "-e", "klp_patch_name=klp_e2e_cmdline", "klp_project.klp.rollback")
	if err != nil {
		t.Fatalf("rollback failed: %v\n%s", err, out)
	}
	t.Logf("timing: rollback over %d guests %v", len(f.hosts), d.Round(100*time.Millisecond))
	for _, h := range f.hosts {
		expect(t, h.name, recap(out, h.name, "changed") > 0, "not changed:\n%s", out)
		expect(t, h.name, h.enabled(t, "klp_e2e_cmdline") == "absent", "still loaded")
		expect(t, h.name, !h.run(t, "test -e /var/lib/klp/"+h.kernel+"/klp_e2e_cmdline.ko").OK(), "still installed")
	}
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
