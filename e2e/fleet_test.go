//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/klp-project/klp/e2e/internal/harness"
)

// fleetExporterPort is the guest port klp exporter listens on in the fleet
// scenario (its default port, on the guest's NIC: QEMU forwards it from
// 127.0.0.1 on the host, and nothing else reaches the guest).
const fleetExporterPort = 9877

// testFleet is the monitoring scenario of the Ansible group (TestDebian/ansible/fleet), on guests
// booted with fleetExporterPort forwarded: the role installs klp's .deb and
// runs klp-exporter.service; the exporter's privileges are probed; the
// host's Prometheus scrapes both guests through the forwarded ports with
// KlpTransitionStalled made fast (fleetRules); the patch module loads
// klp_e2e_target_patch with on_stall: leave while a root process and a
// kernel thread sleep in the patched functions, the alert fires, the tasks
// are released, the transition completes and the alert resolves.
func testFleet(t *testing.T, f *fleet) {
	hosts, play, deb, work := f.hosts, f.play, f.hosts[0].pkgs.Deb, f.work
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (make deps)")
	}
	dir := filepath.Join(work, "fleet")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	// The role: klp's .deb and the exporter, on the guest's NIC.
	deploy := filepath.Join(dir, "deploy.yml")
	if err := os.WriteFile(deploy, []byte(`---
- name: Install klp and its exporter
  hosts: guests
  become: true
  gather_facts: false
  roles:
    - role: klp_project.klp.klp
`), 0o644); err != nil {
		t.Fatal(err)
	}
	args := fmt.Sprintf("klp_exporter_args=--web.listen-address=10.0.2.15:%d", fleetExporterPort)
	out, d, err := play(t, "fleet-deploy", "-e", "klp_package="+deb, "-e", "klp_exporter_enabled=true", "-e", args, deploy)
	if err != nil {
		t.Fatalf("the role failed: %v\n%s", err, out)
	}
	t.Logf("timing: role with klp_exporter_enabled over %d guests %v", len(hosts), d.Round(100*time.Millisecond))
	if !f.eachHost(t, "deployed", func(t *testing.T, h *host) {
		files := h.mustRun(t, "dpkg -L klp")
		for _, u := range []string{"klp-exporter.service", "klp-metrics.service", "klp-metrics.timer"} {
			expect(t, h.name, strings.Contains(files, "/usr/lib/systemd/system/"+u+"\n"), "the .deb lacks %s", u)
		}
		expect(t, h.name, strings.TrimSpace(h.run(t, "systemctl is-enabled klp-metrics.timer").Stdout) == "disabled",
			"klp-metrics.timer is not left disabled")
		expect(t, h.name, strings.TrimSpace(h.run(t, "systemctl is-active klp-exporter.service").Stdout) == "active",
			"klp-exporter.service is not active: %s", h.run(t, "systemctl status klp-exporter.service").Stdout)
		// The exporter runs as a dynamic user with CAP_DAC_READ_SEARCH
		// (bit 2) and nothing else.
		status := h.mustRun(t, `p=$(systemctl show -P MainPID klp-exporter.service); grep -E '^(Uid|CapEff|CapPrm|CapBnd|CapAmb):' /proc/$p/status`)
		t.Logf("%s: klp exporter's credentials:\n%s", h.name, status)
		for _, c := range []string{"CapEff", "CapPrm", "CapBnd", "CapAmb"} {
			expect(t, h.name, strings.Contains(status, c+":\t0000000000000004\n"), "%s is not CAP_DAC_READ_SEARCH alone:\n%s", c, status)
		}
		expect(t, h.name, !strings.Contains(status, "Uid:\t0\t"), "the exporter runs as root:\n%s", status)
		probePrivileges(t, h)
	}) {
		t.FailNow()
	}

	// The role again, with the timer as well, into the directory Debian's
	// node_exporter reads (made here: the guests have no node_exporter):
	// exactly one change on each host, the timer, which also shows that
	// the rest of the role changes nothing on a second run (a run of its
	// own for that cost a minute under TCG); the exporter is not
	// restarted.
	pids := map[string]string{}
	for _, h := range hosts {
		pids[h.name] = h.mustRun(t, "mkdir -p /var/lib/prometheus/node-exporter && systemctl show -P MainPID klp-exporter.service")
	}
	out, _, err = play(t, "fleet-timer", "-e", "klp_package="+deb, "-e", "klp_exporter_enabled=true", "-e", args,
		"-e", "klp_metrics_timer_enabled=true", deploy)
	if err != nil {
		t.Fatalf("the role failed with klp_metrics_timer_enabled: %v\n%s", err, out)
	}
	for _, h := range hosts {
		expect(t, h.name, recap(out, h.name, "changed") == 1, "the role's second run, with klp_metrics_timer_enabled, did not change the timer alone:\n%s", out)
		expect(t, h.name, strings.TrimSpace(h.run(t, "systemctl is-enabled klp-metrics.timer; systemctl is-active klp-metrics.timer").Stdout) == "enabled\nactive",
			"klp-metrics.timer is not enabled and active")
		expect(t, h.name, h.mustRun(t, "systemctl show -P MainPID klp-exporter.service") == pids[h.name], "the exporter was restarted")
	}

	// Prometheus on the host, on loopback, scraping both exporters.
	rules := filepath.Join(dir, "klp-alerts.yml")
	writeFleetRules(t, rules)
	promPort := loopbackPort(t)
	var targets strings.Builder
	for _, h := range hosts {
		fmt.Fprintf(&targets, "      - targets: ['127.0.0.1:%d']\n        labels: {guest: %s}\n", h.vm.Ports[fleetExporterPort], h.name)
	}
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`global: {scrape_interval: 2s, evaluation_interval: 2s}
rule_files: [%q]
scrape_configs:
  - job_name: klp
    static_configs:
%s`, rules, targets.String())), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.RemoveAll(filepath.Join(dir, "tsdb"))
	startServer(t, dir, "prometheus", prom, "--config.file="+config, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", promPort))
	api := fmt.Sprintf("http://127.0.0.1:%d/api/v1/", promPort)
	waitFor(t, "both exporters scraped", 5*time.Minute, func() bool {
		return len(promQuery(t, api, `up{job="klp"} == 1 and on (instance) klp_livepatch_supported == 1`)) == len(hosts)
	})

	// A root process and a kernel thread asleep in the functions
	// klp_e2e_target_patch replaces; the reader uninterruptibly, so that
	// the kernel's fake signal does not move it.
	for _, h := range hosts {
		h.mustRun(t, "insmod "+guestModules+"/klp_e2e_target.ko block_kthread=1 block_read=1 read_uninterruptible=1 && "+
			"(setsid cat /proc/klp_e2e_target >/dev/null 2>&1 </dev/null &) && "+
			`for i in $(seq 100); do [ "$(cat /sys/module/klp_e2e_target/parameters/kthread_waiting)$(cat /sys/module/klp_e2e_target/parameters/read_waiting)" = 11 ] && break; sleep 0.2; done; `+
			`[ "$(cat /sys/module/klp_e2e_target/parameters/kthread_waiting)$(cat /sys/module/klp_e2e_target/parameters/read_waiting)" = 11 ]`)
	}
	defer func() {
		for _, h := range hosts {
			h.run(t, "echo 0 > /sys/module/klp_e2e_target/parameters/block_kthread; echo 0 > /sys/module/klp_e2e_target/parameters/block_read; "+
				"klp unload klp_e2e_target_patch >/dev/null 2>&1; sleep 1; rmmod klp_e2e_target; systemctl disable --now klp-exporter.service klp-metrics.timer")
		}
	}()

	// The patch module with on_stall: leave: the task fails, naming the
	// blocking tasks, and the transition goes on.
	load := filepath.Join(dir, "load.yml")
	if err := os.WriteFile(load, []byte(`---
- name: Load a patch whose transition stalls, and leave it
  hosts: guests
  become: true
  gather_facts: false
  tasks:
    - name: Load klp_e2e_target_patch
      klp_project.klp.patch:
        src: "{{ klp_modules }}/klp_e2e_target_patch.ko"
        state: loaded
        wait: 5
        on_stall: leave
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err = play(t, "fleet-leave", load)
	stalled := time.Now()
	if err == nil {
		t.Fatalf("a stalled load succeeded:\n%s", out)
	}
	for _, h := range hosts {
		expect(t, h.name, recap(out, h.name, "failed") == 1, "the load did not fail:\n%s", out)
		tr := strings.TrimSpace(h.run(t, "cat /sys/kernel/livepatch/klp_e2e_target_patch/transition 2>/dev/null || echo absent").Stdout)
		expect(t, h.name, tr == "1", "on_stall: leave did not leave the transition running (transition %s)", tr)
	}
	expect(t, "message", strings.Contains(out, "stalled") && strings.Contains(out, "klp_e2e_busy") && strings.Contains(out, "cat"),
		"the failure does not name the blocking tasks:\n%s", out)

	// The exporter, as its unprivileged user, counts root's reader and the
	// kernel thread: it read their patch_state.
	waitFor(t, "the blocking tasks counted", 3*time.Minute, func() bool {
		return len(promQuery(t, api, `klp_blocking_tasks{patch="klp_e2e_target_patch",kind="user"} >= 1`)) == len(hosts) &&
			len(promQuery(t, api, `klp_blocking_tasks{patch="klp_e2e_target_patch",kind="kernel"} >= 1`)) == len(hosts)
	})
	// klp-metrics.service (root, CAP_DAC_READ_SEARCH and CAP_DAC_OVERRIDE
	// only) counts them too, in klp.prom, within a few runs of the timer.
	f.eachHost(t, "klp.prom", func(t *testing.T, h *host) {
		prom := "/var/lib/prometheus/node-exporter/klp.prom"
		r := h.run(t, `for i in $(seq 120); do grep -q '^klp_blocking_tasks{kind="kernel",patch="klp_e2e_target_patch"} 1$' `+prom+` && `+
			`grep -q '^klp_blocking_tasks{kind="user",patch="klp_e2e_target_patch"} 1$' `+prom+` && break; sleep 1; done; grep -E '^klp_(blocking_tasks|transition_duration_seconds|scrape_errors_total)' `+prom)
		t.Logf("%s: %s during the stall:\n%s", h.name, prom, r.Stdout)
		expect(t, h.name, strings.Contains(r.Stdout, `klp_blocking_tasks{kind="kernel",patch="klp_e2e_target_patch"} 1`) &&
			strings.Contains(r.Stdout, `klp_blocking_tasks{kind="user",patch="klp_e2e_target_patch"} 1`), "klp.prom does not count the blocking tasks")
		expect(t, h.name, !regexp.MustCompile(`source="tasks"\} [1-9]`).MatchString(r.Stdout), "klp-metrics.service failed to read tasks")
	})
	for _, s := range promQuery(t, api, `klp_scrape_errors_total{source="tasks"} > 0`) {
		t.Errorf("%s: the exporter failed to read tasks: %v", s.Metric["guest"], s.Metric)
	}
	for _, s := range promQuery(t, api, `klp_transition_start_time_seconds{patch="klp_e2e_target_patch"}`) {
		t.Logf("%s: klp_transition_start_time_seconds %v (the load gave up at %v)", s.Metric["guest"], s.Value[1], float64(stalled.UnixMilli())/1000)
	}
	for _, s := range promQuery(t, api, `klp_blocking_tasks{patch="klp_e2e_target_patch"}`) {
		t.Logf("%s: klp_blocking_tasks{kind=%q} %v", s.Metric["guest"], s.Metric["kind"], s.Value[1])
	}

	// The alert fires on every guest.
	firing := map[string]time.Duration{}
	waitFor(t, "KlpTransitionStalled firing on every guest", 5*time.Minute, func() bool {
		for _, a := range promAlerts(t, api) {
			if a.Labels["alertname"] == "KlpTransitionStalled" && a.State == "firing" {
				if _, ok := firing[a.Labels["guest"]]; !ok {
					firing[a.Labels["guest"]] = time.Since(stalled)
					t.Logf("%s: KlpTransitionStalled firing %v after the load gave up, pending since %s (value %s): %s", a.Labels["guest"],
						firing[a.Labels["guest"]].Round(time.Second), a.ActiveAt, a.Value, a.Annotations["description"])
					expect(t, a.Labels["guest"], strings.Contains(a.Annotations["description"], " 1 user and\n1 kernel tasks") ||
						strings.Contains(a.Annotations["description"], " 1 user and 1 kernel tasks"),
						"the description does not count the blocking tasks: %q", a.Annotations["description"])
				}
			}
		}
		return len(firing) == len(hosts)
	})

	// Released, the tasks switch and the transition completes; the alert
	// resolves.
	for _, h := range hosts {
		h.mustRun(t, "echo 0 > /sys/module/klp_e2e_target/parameters/block_kthread; echo 0 > /sys/module/klp_e2e_target/parameters/block_read")
	}
	released := time.Now()
	waitFor(t, "KlpTransitionStalled resolved", 5*time.Minute, func() bool {
		for _, a := range promAlerts(t, api) {
			if a.Labels["alertname"] == "KlpTransitionStalled" {
				return false
			}
		}
		return true
	})
	t.Logf("timing: KlpTransitionStalled resolved on every guest %v after the tasks were released", time.Since(released).Round(time.Second))
	for _, h := range hosts {
		h.mustRun(t, "for i in $(seq 300); do [ \"$(cat /sys/kernel/livepatch/klp_e2e_target_patch/transition)\" = 0 ] && break; sleep 0.2; done; "+
			"[ \"$(cat /sys/kernel/livepatch/klp_e2e_target_patch/transition)\" = 0 ] && [ \"$(cat /sys/kernel/livepatch/klp_e2e_target_patch/enabled)\" = 1 ]")
		expect(t, h.name, strings.TrimSpace(h.mustRun(t, "cat /proc/klp_e2e_target")) == "patched", "the patched function does not run")
	}
	expect(t, "exporter", len(promQuery(t, api, `klp_transition_in_progress == 0`)) == len(hosts), "a guest still reports a transition")

	// The .deb's maintainer scripts: an upgrade (the same .deb again)
	// restarts the running exporter and timer, a removal stops them, and
	// installed again they stay as the administrator left them.
	pkg := "/var/tmp/" + filepath.Base(deb)
	f.eachHost(t, "dpkg", func(t *testing.T, h *host) {
		before := h.mustRun(t, "systemctl show -P MainPID klp-exporter.service")
		h.mustRun(t, "dpkg -i "+pkg+" >/dev/null")
		after := h.mustRun(t, "systemctl show -P MainPID klp-exporter.service")
		expect(t, h.name, after != before && strings.TrimSpace(after) != "0", "dpkg -i did not restart the exporter (MainPID %s, then %s)", strings.TrimSpace(before), strings.TrimSpace(after))
		h.mustRun(t, "klp unload klp_e2e_target_patch && rmmod klp_e2e_target && dpkg -r klp >/dev/null")
		state := h.run(t, "systemctl is-active klp-exporter.service klp-metrics.timer").Stdout
		expect(t, h.name, state == "inactive\ninactive\n", "dpkg -r left the exporter or the timer running:\n%s", state)
		h.mustRun(t, "dpkg -i "+pkg+" >/dev/null")
		state = h.run(t, "systemctl is-enabled klp-exporter.service klp-metrics.timer; systemctl is-active klp-exporter.service klp-metrics.timer").Stdout
		t.Logf("%s: after dpkg -r and dpkg -i: %q", h.name, state)
	})
}

// probePrivileges reads the patch_state of init (root's) and of kthreadd
// (a kernel thread) as a transient dynamic user, as klp-exporter.service
// runs, with no capability, with CAP_SYS_PTRACE and with
// CAP_DAC_READ_SEARCH: only the last may read them.
func probePrivileges(t *testing.T, h *host) {
	t.Helper()
	for _, c := range []struct {
		caps string
		want bool
	}{{"", false}, {"CAP_SYS_PTRACE", false}, {"CAP_DAC_READ_SEARCH", true}} {
		props := "-p DynamicUser=yes -p NoNewPrivileges=yes -p CapabilityBoundingSet=" + c.caps
		if c.caps != "" {
			props += " -p AmbientCapabilities=" + c.caps
		}
		r := h.run(t, "systemd-run --quiet --pipe --wait "+props+
			" sh -c 'id -u; cat /proc/1/task/1/patch_state && cat /proc/2/task/2/patch_state'")
		name := c.caps
		if name == "" {
			name = "no capability"
		}
		t.Logf("%s: patch_state of pid 1 and 2 as a dynamic user with %s: %v", h.name, name, r)
		lines := strings.Fields(r.Stdout)
		expect(t, h.name, len(lines) > 0 && lines[0] != "0", "%s: not an unprivileged user: %v", name, r)
		expect(t, h.name, r.OK() == c.want, "%s: read %v, want %v: %v", name, r.OK(), c.want, r)
	}
}

// writeFleetRules writes contrib/prometheus/klp-alerts.yml with
// KlpTransitionStalled firing after a transition has run 20 s for 10 s,
// instead of 10 minutes.
func writeFleetRules(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile("../contrib/prometheus/klp-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	const orig = "        expr: klp_transition_duration_seconds > 600\n"
	if !strings.Contains(string(b), orig) {
		t.Fatalf("klp-alerts.yml has no %q", orig)
	}
	s := strings.Replace(string(b), orig, "        expr: klp_transition_duration_seconds > 20\n        for: 10s\n", 1)
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// loopbackPort returns a TCP port on 127.0.0.1 that nothing listens on now.
func loopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer runs a server until the test ends, its output in the test log on
// failure.
func startServer(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", name, harness.Tail(strings.Split(string(b), "\n"), 40))
		}
	})
}

// waitFor polls cond every second until it holds; past the deadline (a
// bound for a slow machine, not a timing assertion) the test fails.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, limit)
		}
		time.Sleep(time.Second)
	}
}

// promSample is one series of an instant query.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// promAlert is one alert of /api/v1/alerts.
type promAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	ActiveAt    string            `json:"activeAt"`
	Value       string            `json:"value"`
}

func promGet(t *testing.T, url string, data any) bool {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	var doc struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc.Status != "success" {
		t.Fatalf("GET %s: %v (status %q)", url, err, doc.Status)
	}
	if err := json.Unmarshal(doc.Data, data); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return true
}

// promQuery runs an instant query; nil while Prometheus is not ready.
func promQuery(t *testing.T, api, q string) []promSample {
	t.Helper()
	var data struct {
		Result []promSample `json:"result"`
	}
	if !promGet(t, api+"query?query="+url.QueryEscape(q), &data) {
		return nil
	}
	return data.Result
}

// promAlerts lists the pending and firing alerts.
func promAlerts(t *testing.T, api string) []promAlert {
	t.Helper()
	var data struct {
		Alerts []promAlert `json:"alerts"`
	}
	if !promGet(t, api+"alerts", &data) {
		return nil
	}
	return data.Alerts
}
