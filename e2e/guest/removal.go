package main

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// scenarioSysfsRemoval watches a patch directory go away after a reversed
// patching transition (what klp load's rollback does): it reads the
// transition attribute in a tight loop until the file is gone and records
// the errors on the way. The kernel frees the patch from a worker, and while
// kernfs removes the directory a read can fail with ENODEV before the files
// disappear (ENOENT): a reader of sysfs must take both for "gone".
func scenarioSysfsRemoval(r *runner) {
	r.holdKthread()
	path := filepath.Join(lpRoot, "klp_e2e_target_patch", "transition")
	enodev := 0
	for i := 0; i < 3; i++ {
		res := insmod("klp_e2e_target_patch")
		r.must(r.expect("insmod", res.code == 0, "%v", res))
		// Past the kernel's first retry, as when klp load times out.
		time.Sleep(1200 * time.Millisecond)
		// The precondition: the patching transition is still open (the
		// kthread holds it), so that the write below reverses it.
		p, err := readSysPatch("klp_e2e_target_patch")
		r.must(r.expect("open", err == nil && p.enabled == 1 && p.transition == 1,
			"the patching transition is open before the reversal: enabled %d transition %d (%v)", p.enabled, p.transition, err))
		logSeq := kmsgLastSeq()
		r.must(r.expectNoErr("reverse", writeFile(filepath.Join(lpRoot, "klp_e2e_target_patch", "enabled"), "0"), "echo 0 > enabled reverses the transition"))
		var seq []string
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			s := "ok"
			if _, err := os.ReadFile(path); err != nil {
				s = errnoName(errnoOf(err))
			}
			if len(seq) == 0 || seq[len(seq)-1] != s {
				seq = append(seq, s)
			}
			if s == "ENOENT" {
				break
			}
		}
		got := strings.Join(seq, " ")
		if got == "ok ENODEV ENOENT" {
			enodev++
		}
		r.expect("reads", got == "ok ENOENT" || got == "ok ENODEV ENOENT",
			"reads of transition while the patch is freed: %s (want ok, perhaps ENODEV, then ENOENT)", got)
		r.expect("reversed", kmsgHas(logSeq, "'klp_e2e_target_patch': unpatching complete"),
			"the kernel logged the end of the reversed transition: %q", kmsgSince(logSeq))
		waitFor(5*time.Second, func() bool { return readIntOr("/sys/module/klp_e2e_target_patch/refcnt") == 0 })
		res = rmmod("klp_e2e_target_patch")
		r.must(r.expect("rmmod", res.code == 0, "%v", res))
	}
	r.note("enodev-seen", "%d of 3", enodev)
}
