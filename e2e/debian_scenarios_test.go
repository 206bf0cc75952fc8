//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scenarioKlpDeb installs klp's .deb with dpkg -i, checks what it put
// where, enables klp.service, purges the package and compares the file
// system with the one before: nothing may be left behind. Then it installs
// the .deb again, with apt, for the scenarios that follow.
func scenarioKlpDeb(t *testing.T, g *guest) {
	deb := "/root/debs/" + path.Base(g.pkgs.Deb)
	before := g.fsSnapshot(t)
	r := g.run(t, "dpkg -i "+deb)
	expect(t, "dpkg-i", r.OK(), "%v", r)
	r = g.run(t, "dpkg-query -W -f '${Status} ${Version}' klp")
	expect(t, "installed", r.Stdout == "install ok installed "+g.pkgs.Version, "dpkg-query: %v, want version %s", r, g.pkgs.Version)
	files := g.mustRun(t, "dpkg -L klp")
	for _, f := range []string{"/usr/bin/klp", "/usr/bin/kgr", "/usr/libexec/klp/klp-exporter", "/usr/lib/systemd/system/klp.service",
		"/usr/share/man/man8/klp.8.gz", "/usr/share/man/man8/kgr.8.gz",
		"/usr/share/bash-completion/completions/klp", "/usr/share/zsh/vendor-completions/_klp",
		"/usr/share/fish/vendor_completions.d/klp.fish", "/usr/share/doc/klp/changelog.Debian.gz", "/usr/share/doc/klp/copyright"} {
		expect(t, "file "+f, strings.Contains(files, f+"\n"), "dpkg -L klp lacks it:\n%s", files)
	}
	r = g.run(t, "readlink /usr/bin/kgr && kgr --help >/dev/null && klp --version")
	upstream := g.pkgs.Version[:strings.LastIndex(g.pkgs.Version, "-")]
	expect(t, "binaries", r.OK() && strings.HasPrefix(r.Stdout, "klp\n") && strings.Contains(r.Stdout, upstream), "kgr link, klp --version %s: %v", upstream, r)
	// klp metrics is served by klp-exporter, which klp finds in
	// /usr/libexec/klp from its own /usr/bin.
	r = g.run(t, "klp metrics")
	expect(t, "metrics", r.OK() && strings.Contains(r.Stdout, "\nklp_build_info{"), "klp runs /usr/libexec/klp/klp-exporter: %v", r)
	r = g.run(t, "systemctl cat klp.service && systemctl is-enabled klp.service")
	expect(t, "unit", strings.Contains(r.Stdout, "ExecStart=/usr/bin/klp load --all") && strings.HasSuffix(r.Stdout, "disabled\n"),
		"systemd knows the unit, not enabled: %v", r)
	r = g.run(t, "systemctl enable klp.service 2>&1; test -L /etc/systemd/system/multi-user.target.wants/klp.service")
	expect(t, "enable", r.OK(), "%v", r)

	r = g.run(t, "dpkg --purge klp")
	expect(t, "purge", r.OK(), "%v", r)
	r = g.run(t, "dpkg-query -W -f '${db:Status-Status}' klp")
	expect(t, "purged", r.Stdout == "not-installed" || strings.Contains(r.Stderr, "no packages found"), "%v", r)
	after := g.fsSnapshot(t)
	diff := fsDiff(before, after)
	expect(t, "nothing-left", len(diff) == 0, "the file system differs after the purge:\n%s", strings.Join(diff, "\n"))
	r = g.run(t, "systemctl cat klp.service")
	expect(t, "unit-gone", !r.OK(), "systemd still knows klp.service after the purge: %v", r)

	// For the other scenarios, and to try apt's way too.
	r = g.run(t, "apt-get install -y -q ./"+strings.TrimPrefix(deb, "/root/")+" 2>&1")
	expect(t, "apt-install", r.OK(), "%v", r)
	t.Logf("dpkg -i, purge and apt install of %s: %d paths compared", path.Base(deb), len(before))
}

// scenarioAuditJournal loads, fails to load and (through sudo) unloads a
// patch, and finds each audit record in the journal by its fields.
func scenarioAuditJournal(t *testing.T, g *guest) {
	cmdline := guestModules + "/klp_e2e_cmdline.ko"
	broken := guestModules + "/klp_e2e_broken.ko"
	g.mustRun(t, "klp load "+cmdline)
	r := g.run(t, "klp load "+broken)
	expect(t, "load-broken", r.Code == 1, "%v", r)
	r = g.run(t, "su -l klpuser -c 'sudo -n klp unload klp_e2e_cmdline'")
	expect(t, "sudo-unload", r.OK(), "%v", r)
	rel := strings.TrimSpace(g.mustRun(t, "uname -r"))

	loads := g.journal(t, "-b KLP_ACTION=load KLP_PATCH=klp_e2e_cmdline")
	if expect(t, "load-record", len(loads) == 1, "journalctl KLP_ACTION=load KLP_PATCH=klp_e2e_cmdline: %d entries, want 1: %v", len(loads), loads); len(loads) == 1 {
		e := loads[0]
		for k, want := range map[string]string{
			"SYSLOG_IDENTIFIER": "klp", "PRIORITY": "5", "_TRANSPORT": "journal",
			"KLP_RESULT": "patched", "KLP_FILE": cmdline, "KLP_RELEASE": rel, "KLP_USER": "root", "KLP_UID": "0",
		} {
			expect(t, "load-"+k, e[k] == want, "%s=%q, want %q (entry %v)", k, e[k], want, e)
		}
		_, err := strconv.Atoi(e["KLP_DURATION_MS"])
		expect(t, "load-duration", err == nil, "KLP_DURATION_MS=%q", e["KLP_DURATION_MS"])
		expect(t, "load-message", strings.HasPrefix(e["MESSAGE"], "load klp_e2e_cmdline ("+cmdline+") for "+rel+": patched in "), "MESSAGE=%q", e["MESSAGE"])
		expect(t, "load-no-sudo", e["KLP_SUDO_USER"] == "" && e["KLP_ERROR"] == "", "%v", e)
		t.Logf("record: %s", recordText(e))
	}
	failed := g.journal(t, "-b KLP_RESULT=failed")
	if expect(t, "failed-record", len(failed) == 1, "journalctl KLP_RESULT=failed: %v", failed); len(failed) == 1 {
		e := failed[0]
		expect(t, "failed-fields", e["KLP_PATCH"] == "klp_e2e_broken" && e["KLP_ACTION"] == "load" && e["PRIORITY"] == "4" &&
			strings.Contains(e["KLP_ERROR"], "klp_e2e_broken"), "%v", e)
		t.Logf("record: %s", recordText(e))
	}
	unloads := g.journal(t, "-b SYSLOG_IDENTIFIER=klp KLP_ACTION=unload")
	if expect(t, "unload-record", len(unloads) == 1, "%v", unloads); len(unloads) == 1 {
		e := unloads[0]
		expect(t, "unload-sudo", e["KLP_SUDO_USER"] == "klpuser" && e["KLP_USER"] == "root" && e["KLP_RESULT"] == "removed" && e["KLP_PATCH"] == "klp_e2e_cmdline",
			"%v", e)
		t.Logf("record: %s", recordText(e))
	}
	all := g.journal(t, "-b -t klp")
	expect(t, "by-identifier", len(all) == 3, "journalctl -t klp: %d entries, want 3", len(all))
}

// recordText shows a journal entry's klp fields on one line.
func recordText(e journalEntry) string {
	var f []string
	for _, k := range []string{"PRIORITY", "SYSLOG_IDENTIFIER", "KLP_ACTION", "KLP_PATCH", "KLP_FILE", "KLP_RELEASE", "KLP_RESULT", "KLP_ERROR", "KLP_DURATION_MS", "KLP_USER", "KLP_UID", "KLP_SUDO_USER"} {
		if v, ok := e[k]; ok {
			f = append(f, k+"="+strconv.Quote(v))
		}
	}
	return strings.Join(f, " ") + " MESSAGE=" + strconv.Quote(e["MESSAGE"])
}

// checkPatchPackage compares klp -v patches with what dpkg knows of the
// installed patch package, and the kernel with the version that must run.
func checkPatchPackage(t *testing.T, g *guest, step, version string) {
	t.Helper()
	want := patchExpect[version]
	deb := strings.TrimSpace(g.mustRun(t, "dpkg-query -W -f '${Package}_${Version}_${Architecture}' "+patchPackage))
	expect(t, step+"-dpkg", deb == patchPackage+"_"+version+"_amd64", "dpkg-query: %q", deb)
	owner := g.run(t, "dpkg -S "+patchModuleDir(g.kernel)+"/"+want.module+".ko")
	expect(t, step+"-owner", owner.OK() && strings.HasPrefix(owner.Stdout, patchPackage+": "), "dpkg -S: %v", owner)
	out := g.mustRun(t, "klp -v patches")
	block := fmt.Sprintf("%s\n    active: 1\n    DEB: %s\n    CVE: %s\n    bug fixes and enhancements: %s\n", want.module, deb, want.cves, want.bugs)
	expect(t, step+"-patches-v", strings.Contains(out, block), "klp -v patches:\n%s\nwant the block:\n%s", out, block)
	var doc struct {
		Patches []struct {
			Name    string `json:"name"`
			Package *struct {
				Manager string   `json:"manager"`
				Name    string   `json:"name"`
				Version string   `json:"version"`
				Full    string   `json:"full"`
				CVEs    []string `json:"cves"`
				Bugs    []string `json:"bugs"`
			} `json:"package"`
		} `json:"patches"`
	}
	js := g.mustRun(t, "klp --json -v patches")
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		t.Fatalf("klp --json -v patches: %v\n%s", err, js)
	}
	found := false
	for _, p := range doc.Patches {
		if p.Name == want.module && p.Package != nil {
			found = p.Package.Manager == "dpkg" && p.Package.Name == patchPackage && p.Package.Version == version && p.Package.Full == deb &&
				strings.Join(p.Package.CVEs, " ") == want.cves && strings.Join(p.Package.Bugs, " ") == want.bugs
		}
	}
	expect(t, step+"-json", found, "klp --json -v patches: %s", js)
	cmdline := g.mustRun(t, "cat /proc/cmdline")
	expect(t, step+"-running", cmdline == "klp_e2e_deb: this has been live patched by version "+want.module[len(want.module)-1:]+"\n", "/proc/cmdline: %q", cmdline)
	enabled := g.run(t, "cat /sys/kernel/livepatch/"+want.module+"/enabled")
	expect(t, step+"-enabled", enabled.Stdout == "1\n", "%s enabled: %v", want.module, enabled)
	t.Logf("%s: klp -v patches shows\n%s", step, block)
}

// scenarioPatchDeb installs version 1.0-1 of a live patch package with
// dpkg, upgrades to 2.0-1 from a local apt repository, and goes back with
// klp downgrade. Each package's postinst loads its module with klp; both
// are cumulative, so the one loaded last replaces the other.
func scenarioPatchDeb(t *testing.T, g *guest) {
	v1 := fmt.Sprintf("/root/debs/%s_1.0-1_amd64.deb", patchPackage)
	r := g.run(t, "dpkg -i "+v1)
	expect(t, "dpkg-i", r.OK(), "%v", r)
	checkPatchPackage(t, g, "v1-dpkg", "1.0-1")

	// A local repository, served from a file path: apt-ftparchive.
	g.mustRun(t, "mkdir -p /srv/klp-repo && cp /root/debs/"+patchPackage+"_*.deb /srv/klp-repo/ && cd /srv/klp-repo && apt-ftparchive packages . > Packages")
	g.mustRun(t, "echo 'deb [trusted=yes] file:/srv/klp-repo ./' > /etc/apt/sources.list.d/klp-e2e.list && apt-get update -q")
	policy := g.mustRun(t, "apt-cache policy "+patchPackage)
	expect(t, "policy", strings.Contains(policy, "Installed: 1.0-1") && strings.Contains(policy, "Candidate: 2.0-1"), "apt-cache policy:\n%s", policy)
	r = g.run(t, "apt-get install -y -q "+patchPackage+" 2>&1")
	expect(t, "apt-upgrade", r.OK(), "%v", r)
	checkPatchPackage(t, g, "v2-apt", "2.0-1")
	gone := g.run(t, "test -e /sys/kernel/livepatch/klp_e2e_deb_v1")
	expect(t, "v1-replaced", !gone.OK(), "v1's patch is still registered after v2's atomic replace")

	r = g.run(t, "klp -n downgrade 2>&1")
	expect(t, "downgrade", r.OK() && strings.Contains(r.Stdout, "Downgrading "+patchPackage+" from 2.0-1 to 1.0-1:\napt-get --yes install --allow-downgrades "+patchPackage+"=1.0-1\n"),
		"klp -n downgrade: %v", r)
	t.Logf("klp -n downgrade:\n%s", r.Stdout)
	checkPatchPackage(t, g, "v1-downgrade", "1.0-1")
	gone = g.run(t, "test -e /sys/kernel/livepatch/klp_e2e_deb_v2")
	expect(t, "v2-replaced", !gone.OK(), "v2's patch is still registered after the downgrade")

	// Leave no patch and no package for the boot scenarios.
	g.mustRun(t, "klp unload --all && dpkg --purge "+patchPackage+" && rm /etc/apt/sources.list.d/klp-e2e.list")
	left := g.run(t, "ls /sys/kernel/livepatch; grep klp_e2e /proc/modules")
	expect(t, "clean", left.Stdout == "", "patches or modules left: %v", left)
}

// bootOrder checks, in this boot's journal, that klp.service ended (its
// start job done or failed) and its audit records were written before
// network-pre.target was reached, and returns the figures. systemd logs
// each job's start and end ("Starting X...", "Finished X.", "Failed to
// start X.", "Reached target X.") with UNIT, JOB_TYPE and, at the end,
// JOB_RESULT; but until journald runs, PID 1 logs to the kernel log, and
// journald imports those lines later as text (_TRANSPORT=kernel, no UNIT):
// on a loaded machine klp.service can start that early. Both forms count.
func bootOrder(t *testing.T, g *guest, patches []string) string {
	t.Helper()
	entries := g.journal(t, "-b")
	var klpStart, klpEnd, netPre string
	records := map[string]string{}
	first := func(at *string, v string) {
		if *at == "" {
			*at = v
		}
	}
	for _, e := range entries {
		at := e["__MONOTONIC_TIMESTAMP"]
		msg := e["MESSAGE"]
		fromPID1 := e["_PID"] == "1" || e["SYSLOG_PID"] == "1"
		switch {
		case e["SYSLOG_IDENTIFIER"] == "klp" && e["KLP_ACTION"] == "load":
			records[e["KLP_PATCH"]] = at
		case !fromPID1:
		case e["UNIT"] == "klp.service" && e["JOB_TYPE"] == "start" && e["JOB_RESULT"] == "",
			strings.HasPrefix(msg, "Starting klp.service"):
			first(&klpStart, at)
		case e["UNIT"] == "klp.service" && e["JOB_TYPE"] == "start",
			strings.HasPrefix(msg, "Finished klp.service"), strings.HasPrefix(msg, "Failed to start klp.service"):
			first(&klpEnd, at)
		case e["UNIT"] == "network-pre.target" && e["JOB_RESULT"] == "done",
			strings.HasPrefix(msg, "Reached target network-pre.target"):
			first(&netPre, at)
		}
	}
	us := func(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }
	ok := klpStart != "" && klpEnd != "" && netPre != "" && us(klpStart) < us(klpEnd) && us(klpEnd) < us(netPre)
	expect(t, "order-unit", ok, "klp.service started at %sµs, ended at %sµs, network-pre.target reached at %sµs (journal monotonic time)", klpStart, klpEnd, netPre)
	for _, p := range patches {
		at, found := records[p]
		expect(t, "order-record-"+p, found && us(klpStart) < us(at) && us(at) < us(netPre), "audit record of %s at %sµs, network-pre.target at %sµs", p, at, netPre)
	}
	return fmt.Sprintf("klp.service starting at %.2f s, ended at %.2f s, network-pre.target reached at %.2f s (monotonic)",
		float64(us(klpStart))/1e6, float64(us(klpEnd))/1e6, float64(us(netPre))/1e6)
}

// unitState returns systemctl show's properties of klp.service.
func unitState(t *testing.T, g *guest) map[string]string {
	t.Helper()
	out := g.mustRun(t, "systemctl show klp.service -p ActiveState -p SubState -p Result -p ExecMainStatus -p ConditionResult")
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(l, "=")
		m[k] = v
	}
	return m
}

// livePatches lists /sys/kernel/livepatch with each patch's enabled.
func livePatches(t *testing.T, g *guest) string {
	t.Helper()
	return g.mustRun(t, `for p in /sys/kernel/livepatch/*; do [ -e "$p" ] && echo "${p##*/} $(cat $p/enabled)"; done; true`)
}

// scenarioBootLoad installs two patches with klp install, enables
// klp.service and reboots: the unit loads both, before network-pre.target.
func scenarioBootLoad(t *testing.T, g *guest) {
	for _, m := range []string{"klp_e2e_cmdline", "klp_e2e_target_patch"} {
		g.mustRun(t, "klp install "+guestModules+"/"+m+".ko")
	}
	g.mustRun(t, "systemctl enable klp.service 2>&1")
	d, err := g.vm.Reboot(context.Background(), "", g.timeout)
	if err != nil {
		t.Fatal(err)
	}
	g.timings = append(g.timings, fmt.Sprintf("reboot until SSH %v", d.Round(100*time.Millisecond)))
	lp := livePatches(t, g)
	expect(t, "loaded", lp == "klp_e2e_cmdline 1\nklp_e2e_target_patch 1\n", "/sys/kernel/livepatch: %q", lp)
	st := unitState(t, g)
	expect(t, "unit", st["ActiveState"] == "active" && st["SubState"] == "exited" && st["Result"] == "success" && st["ExecMainStatus"] == "0", "%v", st)
	r := g.run(t, "systemctl status klp.service --no-pager -n 20")
	expect(t, "status", r.OK() && strings.Contains(r.Stdout, "klp_e2e_cmdline: patched") && strings.Contains(r.Stdout, "klp_e2e_target_patch: patched") &&
		!strings.Contains(r.Stdout, "FAILED"), "systemctl status klp: %v", r)
	t.Logf("systemctl status klp.service:\n%s", r.Stdout)
	list := g.mustRun(t, "klp list")
	for _, m := range []string{"klp_e2e_cmdline", "klp_e2e_target_patch"} {
		expect(t, "list-"+m, regexp.MustCompile(`(?m)^\s*`+m+`\s+enabled`).MatchString(list), "klp list:\n%s", list)
	}
	t.Logf("klp list:\n%s", list)
	recs := g.journal(t, "-b KLP_ACTION=load")
	var got []string
	for _, e := range recs {
		got = append(got, e["KLP_PATCH"]+"="+e["KLP_RESULT"])
	}
	expect(t, "records", strings.Join(got, " ") == "klp_e2e_cmdline=patched klp_e2e_target_patch=patched", "journalctl -b KLP_ACTION=load: %v", got)
	figures := bootOrder(t, g, []string{"klp_e2e_cmdline", "klp_e2e_target_patch"})
	t.Logf("journal order: %s", figures)
	g.timings = append(g.timings, "boot-load "+figures)
}

// scenarioBootDisabled boots with klp.enable=0 on the kernel command line:
// klp.service does not run, the journal says why, nothing is loaded.
func scenarioBootDisabled(t *testing.T, g *guest) {
	d, err := g.vm.Reboot(context.Background(), "klp.enable=0", g.timeout)
	if err != nil {
		t.Fatal(err)
	}
	g.timings = append(g.timings, fmt.Sprintf("reboot (klp.enable=0) until SSH %v", d.Round(100*time.Millisecond)))
	cmdline := g.mustRun(t, "cat /proc/cmdline")
	expect(t, "cmdline", strings.Contains(cmdline, " klp.enable=0"), "/proc/cmdline: %q", cmdline)
	lp := livePatches(t, g)
	expect(t, "nothing-loaded", lp == "", "/sys/kernel/livepatch: %q", lp)
	st := unitState(t, g)
	expect(t, "unit", st["ActiveState"] == "inactive" && st["ConditionResult"] == "no", "%v", st)
	why := g.mustRun(t, "journalctl -b -u klp.service --no-pager -o cat")
	expect(t, "journal-why", strings.Contains(why, "ConditionKernelCommandLine=!klp.enable=0"), "journalctl -u klp.service:\n%s", why)
	t.Logf("journalctl -b -u klp.service: %s", strings.TrimSpace(why))
	recs := g.journal(t, "-b KLP_ACTION=load")
	expect(t, "no-records", len(recs) == 0, "%d load records", len(recs))
}

// scenarioBootCrash installs a broken patch and a patch whose init sleeps,
// reboots, and stops QEMU while klp.service is loading the sleeping one.
// The next boot loads the good patches, reports the broken one and skips
// the one that was loading, saying why.
func scenarioBootCrash(t *testing.T, g *guest) {
	for _, m := range []string{"klp_e2e_broken", "klp_e2e_slow"} {
		g.mustRun(t, "klp install "+guestModules+"/"+m+".ko")
	}
	ctx := context.Background()
	if err := g.vm.Shutdown(ctx, "reboot", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := g.vm.Start(""); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, g.timeout)
	line, err := g.vm.WaitConsole(wctx, "klp_e2e_slow: init: sleeping")
	cancel()
	if err != nil {
		t.Fatalf("%v\n--- console tail:\n%s", err, strings.Join(g.vm.Console(), "\n"))
	}
	if err := g.vm.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped QEMU on the console line %q", strings.TrimSpace(line))
	d, err := g.vm.Boot(ctx, "", g.timeout)
	if err != nil {
		t.Fatal(err)
	}
	g.timings = append(g.timings, fmt.Sprintf("boot after the crash until SSH %v", d.Round(100*time.Millisecond)))

	lp := livePatches(t, g)
	expect(t, "good-loaded", lp == "klp_e2e_cmdline 1\nklp_e2e_target_patch 1\n", "/sys/kernel/livepatch: %q", lp)
	mods := g.run(t, "grep -E '^klp_e2e_(slow|broken) ' /proc/modules")
	expect(t, "bad-absent", mods.Stdout == "", "%v", mods)
	st := unitState(t, g)
	expect(t, "unit-failed", st["ActiveState"] == "failed" && st["Result"] == "exit-code" && st["ExecMainStatus"] == "1", "%v", st)
	r := g.run(t, "systemctl status klp.service --no-pager -n 30")
	expect(t, "status-broken", strings.Contains(r.Stdout, "klp_e2e_broken: FAILED: "), "systemctl status klp:\n%s", r.Stdout)
	expect(t, "status-skipped", strings.Contains(r.Stdout, "klp_e2e_slow: skipped: the machine went down while this patch was loading last time"),
		"systemctl status klp:\n%s", r.Stdout)
	t.Logf("systemctl status klp.service:\n%s", r.Stdout)
	rel := strings.TrimSpace(g.mustRun(t, "uname -r"))
	crashed := g.run(t, "cat /var/lib/klp/"+rel+"/.crashed")
	expect(t, "quarantine", crashed.Stdout == "klp_e2e_slow\n", "%v", crashed)

	recs := map[string]journalEntry{}
	for _, e := range g.journal(t, "-b KLP_ACTION=load") {
		recs[e["KLP_PATCH"]] = e
	}
	for p, want := range map[string]string{"klp_e2e_cmdline": "patched", "klp_e2e_target_patch": "patched", "klp_e2e_broken": "failed", "klp_e2e_slow": "skipped"} {
		e := recs[p]
		prio := "5"
		if want != "patched" {
			prio = "4"
		}
		expect(t, "record-"+p, e["KLP_RESULT"] == want && e["PRIORITY"] == prio && (want == "patched") == (e["KLP_ERROR"] == ""), "%v", e)
		if e != nil {
			t.Logf("record: %s", recordText(e))
		}
	}
	figures := bootOrder(t, g, []string{"klp_e2e_cmdline", "klp_e2e_target_patch", "klp_e2e_broken", "klp_e2e_slow"})
	t.Logf("journal order: %s", figures)
	g.timings = append(g.timings, "boot-crash "+figures)
}
