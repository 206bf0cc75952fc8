package fakekernel_test

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/klp-project/klp/internal/fakekernel"
)

// inSet is lp() in replace set n.
func inSet(n uint32, name string, funcs ...string) fakekernel.Module {
	m := lp(name, funcs...)
	m.Livepatch.ReplaceSet = n
	return m
}

// TestReplaceSets models the proposed replace sets: replace_set instead of
// replace and stack_order; a patch replaces its own set only; another
// set's function or state id is refused.
func TestReplaceSets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{Features: fakekernel.ProposedReplaceSet, SwitchOnStart: true})
	e.mustLoad(inSet(1, "vendor_1", "cmdline_proc_show", "version_proc_show"))
	e.mustLoad(inSet(2, "db_1", "meminfo_proc_show"))
	e.want(map[string]string{
		lpDir + "vendor_1/replace_set": "1", lpDir + "db_1/replace_set": "2",
		lpDir + "vendor_1/replace": "<missing>", lpDir + "vendor_1/stack_order": "<missing>",
	})

	// Set 1's next patch replaces vendor_1, and only it; version_proc_show
	// goes back to the original code.
	e.mustLoad(inSet(1, "vendor_2", "cmdline_proc_show"))
	e.k.Flush()
	e.want(map[string]string{
		lpDir + "vendor_1/enabled": "<missing>", "sys/module/vendor_1/refcnt": "0",
		lpDir + "db_1/enabled": "1", lpDir + "vendor_2/enabled": "1",
	})
	if e.exists(lpDir + "vendor_2/vmlinux/version_proc_show,1") {
		t.Error("the nop for version_proc_show stayed after the transition")
	}

	// Another set's function, or state id: refused, nothing left behind.
	n := len(e.k.Messages())
	_, err := e.load(inSet(3, "other", "meminfo_proc_show"))
	wantErrno(t, err, unix.EINVAL)
	wantLines(t, e.logSince(n), []string{"livepatch: Livepatch patch (other) is not compatible with the already installed livepatches."})
	if e.exists(lpDir+"other") || e.k.Loaded("other") {
		t.Error("a refused patch left state behind")
	}
	withState := func(n uint32, name, fn string, id uint64) fakekernel.Module {
		m := inSet(n, name, fn)
		m.Livepatch.States = []fakekernel.State{{ID: id, Version: 1}}
		return m
	}
	e.mustLoad(withState(4, "stateful", "slab_show", 42))
	_, err = e.load(withState(5, "same_state", "vmstat_show", 42))
	wantErrno(t, err, unix.EINVAL)
	// The same set may use it (it replaces the patch that does).
	e.mustLoad(withState(4, "stateful_2", "slab_show", 42))
	e.k.Flush()
	e.want(map[string]string{lpDir + "stateful/enabled": "<missing>", lpDir + "stateful_2/replace_set": "4"})
}

// TestSUSEDisableTaints: SUSE's support facility shows two files, and a
// disable (not the reversal of a patching transition) taints the kernel
// NO_SUPPORT with the kernel's warning.
func TestSUSEDisableTaints(t *testing.T) {
	t.Parallel()
	f := fakekernel.Linux6_1
	f.SUSESupport = true
	e := newEnv(t, fakekernel.Options{Features: f, SwitchOnStart: true})
	e.want(map[string]string{"sys/kernel/supported": "Yes", "proc/sys/kernel/unsupported": "2"})
	if err := e.write("proc/sys/kernel/unsupported", "1"); err != nil {
		t.Fatal(err)
	}
	e.want(map[string]string{"proc/sys/kernel/unsupported": "1"})

	// Reversing a patching transition does not taint.
	e.k.BlockTask(200)
	e.mustLoad(lp("lp", "cmdline_proc_show"))
	n := len(e.k.Messages())
	if err := e.write(lpDir+"lp/enabled", "0"); err != nil {
		t.Fatal(err)
	}
	e.k.UnblockTask(200)
	e.k.Settle(5)
	if e.k.Tainted()&fakekernel.TaintNoSupport != 0 {
		t.Errorf("a reversed patching transition tainted the kernel: log %q", e.logSince(n))
	}
	if err := e.fs.Unload("lp", 0); err != nil {
		t.Fatal(err)
	}

	e.mustLoad(lp("lp2", "cmdline_proc_show"))
	n = len(e.k.Messages())
	if err := e.write(lpDir+"lp2/enabled", "0"); err != nil {
		t.Fatal(err)
	}
	if got := e.logSince(n); len(got) == 0 || got[0] != "livepatch: attempt to disable live patch lp2, setting NO_SUPPORT taint flag" {
		t.Errorf("log %q", got)
	}
	if e.k.Tainted()&fakekernel.TaintNoSupport == 0 {
		t.Error("a disable did not taint the kernel")
	}
	e.want(map[string]string{"sys/kernel/supported": "No, Unsupported modules are loaded"})
}

func TestNoSUSEFilesElsewhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fakekernel.Options{Features: fakekernel.Linux6_12, SwitchOnStart: true})
	e.mustLoad(lp("lp", "cmdline_proc_show"))
	if err := e.write(lpDir+"lp/enabled", "0"); err != nil {
		t.Fatal(err)
	}
	e.want(map[string]string{"sys/kernel/supported": "<missing>", "proc/sys/kernel/unsupported": "<missing>"})
	if e.k.Tainted()&fakekernel.TaintNoSupport != 0 {
		t.Error("an upstream kernel tainted NO_SUPPORT")
	}
}
