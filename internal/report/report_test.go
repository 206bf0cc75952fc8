package report_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/klp-project/klp/docs/schema"
	"github.com/klp-project/klp/ftrace"
	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/preflight"
	"github.com/klp-project/klp/internal/report"
	"github.com/klp-project/klp/internal/store"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/livepatch"
	"github.com/klp-project/klp/modinfo"
)

// Every document, built from admin values with every field set and with
// none, is compared with its expected text (testdata/<name>.json): a field
// renamed, dropped, made optional (omitempty) or filled from the wrong
// value changes the text. Each is also valid against its schema.

var update = flag.Bool("update", false, "rewrite testdata/*.json from the documents built")

func ptr[T any](v T) *T { return &v }

func check(t *testing.T, name, document string, doc any) {
	t.Helper()
	var buf bytes.Buffer
	if err := report.Write(&buf, doc); err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(document, buf.Bytes()); err != nil {
		t.Errorf("%s: invalid %s document: %v\n%s", name, document, err, buf.String())
	}
	path := filepath.Join("testdata", name+".json")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), buf.String()); diff != "" {
		t.Errorf("%s: unexpected diff (-want +got):\n%s", name, diff)
	}
}

// task is a blocking task of the upstream interface.
func task(pid, tid int, comm string) admin.BlockingTask {
	return admin.BlockingTask{
		Task:       livepatch.Task{PID: pid, TID: tid, Comm: comm, Cmdline: "/usr/bin/" + comm + " -x", State: "S", PPID: 1, PGRP: pid},
		PatchState: livepatch.StateUnpatched,
	}
}

func blockingReport() *admin.BlockingReport {
	kworker := task(15, 15, "kworker/0:1")
	kworker.KernelThread, kworker.Cmdline, kworker.PatchState = true, "[kworker/0:1]", livepatch.StatePatched
	kworker.Stack = []string{"[<0>] bpf_trampoline_6442513548+0x2e/0x1000", "[<0>] f+0x1d/0x60", "[<0>] worker_thread+0xbe/0x3c0"}
	kworker.Culprits = []string{"[<0>] f+0x1d/0x60"}
	kworker.Cause = admin.CauseBPFTrampoline
	kworker.Evidence = []string{"[<0>] bpf_trampoline_6442513548+0x2e/0x1000"}
	kworker.KernelReason = &livepatch.SwitchReason{Reason: livepatch.ReasonSleepingOnFunction, Comm: "kworker/0:1", PID: 15, Function: "f",
		Message: "livepatch: kworker/0:1:15 is sleeping on function f"}
	kworker.Trampolines = []admin.Trampoline{
		{Frame: "[<0>] bpf_trampoline_6442513548+0x2e/0x1000", Symbol: "bpf_trampoline_6442513548",
			Function: ftrace.Func{Object: "vmlinux", Name: "f"},
			Programs: []kernel.BPFLink{{ID: 4, ProgramID: 31, Program: "trace_f", Attach: kernel.AttachFentry, Object: "vmlinux", Function: "f"}}},
		{Frame: "[<0>] bpf_prog_6deef7357e7b4530_anon+0x1c/0x2c", Symbol: "bpf_prog_6deef7357e7b4530_anon"},
	}
	kworker.Advice = "detach BPF link 4 (trace_f)"
	app := task(200, 201, "app")
	app.StackErr = errors.New("stack traces not available on this kernel")
	app.Cause = admin.CauseSignalledInVain
	app.Evidence = []string{"livepatch: signaling remaining tasks"}
	app.Advice = "klp poke 200"
	return &admin.BlockingReport{
		Interface:  livepatch.InterfaceLivepatch,
		Transition: &livepatch.Transition{Patch: "lp", Target: livepatch.StateUnpatched},
		Functions:  []string{"f", "g"},
		Tasks:      []admin.BlockingTask{kworker, app},
		Scanned:    7,
		Unreadable: []livepatch.TaskError{{PID: 300, TID: 301, Path: "/proc/300/task/301/patch_state",
			Err: &os.PathError{Op: "open", Path: "/proc/300/task/301/patch_state", Err: syscall.EACCES}}},
		Signalled:     ptr(true),
		KernelReasons: admin.ReasonsLogged,
	}
}

// unloggedReport is blockingReport where the kernel log could not be
// read: nothing is known of the kernel's signal or reasons.
func unloggedReport() *admin.BlockingReport {
	r := blockingReport()
	r.Signalled, r.KernelReasons = nil, admin.ReasonsUnknown
	r.KernelLogErr = errors.New("read /dev/kmsg: operation not permitted")
	for i := range r.Tasks {
		r.Tasks[i].KernelReason = nil
	}
	r.Tasks[1].Cause, r.Tasks[1].Evidence = admin.CauseUserTask, nil
	return r
}

func TestStatus(t *testing.T) {
	check(t, "status-ready", schema.Status, report.NewStatus(admin.Status{Interface: livepatch.InterfaceLivepatch}))
	check(t, "status-kgraft", schema.Status, report.NewStatus(admin.Status{Interface: livepatch.InterfaceKGraft, InProgress: true,
		Transition: &livepatch.Transition{Target: livepatch.StatePatched}}))
	check(t, "status-unpatching", schema.Status, report.NewStatus(admin.Status{Interface: livepatch.InterfaceLivepatch, InProgress: true,
		Transition: &livepatch.Transition{Patch: "lp", Target: livepatch.StateUnpatched}}))
	check(t, "status-none", schema.Status, report.NewStatus(admin.Status{Interface: livepatch.InterfaceNone}))
	check(t, "error", schema.Error, report.NewError("klp: load: another klp holds /run/klp.lock", 1))
}

func TestBlocking(t *testing.T) {
	check(t, "blocking", schema.Blocking, report.NewBlocking(blockingReport()))
	check(t, "blocking-none", schema.Blocking, report.NewBlocking(&admin.BlockingReport{Interface: livepatch.InterfaceLivepatch}))
	check(t, "why", schema.Stall, report.NewWhy(blockingReport()))
	check(t, "why-none", schema.Stall, report.NewWhy(&admin.BlockingReport{Interface: livepatch.InterfaceLivepatch}))
	if report.NewStall(nil) != nil {
		t.Error("NewStall(nil) is not nil")
	}
}

func TestPoke(t *testing.T) {
	plan := &admin.PokePlan{Targets: []admin.PokeTarget{
		{PID: 1, Comm: "systemd", Skip: "PID 1"},
		{PID: 100, Comm: "sshd"},
		{PID: 200, Comm: "gone", Err: admin.ErrPokeExited},
		{PID: 300, Comm: "locked", Err: errors.New("send SIGSTOP: operation not permitted")},
	}}
	check(t, "poke", schema.Poke, report.NewPoke(plan, false))
	check(t, "poke-dry-run", schema.Poke, report.NewPoke(plan, true))
	check(t, "poke-none", schema.Poke, report.NewPoke(&admin.PokePlan{}, false))
}

func TestOutcome(t *testing.T) {
	stalled := &admin.Outcome{
		Action: "load", Patch: "lp", File: "/lib/modules/lp.ko", Result: admin.ResultRolledBack,
		Elapsed: 3200 * time.Millisecond, Err: livepatch.ErrStalled, Stall: unloggedReport(),
		KernelLog: []string{"livepatch: enabling patch 'lp'"}, Notes: []string{"rolling back"},
		Preflight: []admin.PreflightCheck{{ID: "vermagic", Title: "Vermagic", Status: preflight.Pass, Reason: "ok"}},
	}
	check(t, "outcome-stalled", schema.Outcome, report.NewOutcome(stalled))
	refused := &admin.Outcome{
		Action: "load", Patch: "lp", File: "/lib/modules/lp.ko", Result: admin.ResultRefused,
		Err: &admin.RefusedError{Patch: "lp", Failed: []admin.PreflightCheck{{ID: preflight.IDModulesDisabled}}},
		Preflight: []admin.PreflightCheck{
			{ID: "modules_disabled", Title: "Module loading", Status: preflight.Fail, Reason: "modules_disabled is 1", Fix: "reboot", Details: []string{"a", "b"}},
			{ID: "vermagic", Title: "Vermagic", Status: preflight.Pass, Reason: "ok"},
		},
	}
	check(t, "outcome-refused", schema.Outcome, report.NewOutcome(refused))
	// Refused before any check ran (not root): preflight stays null.
	notRoot := &admin.Outcome{Action: "load", File: "/lib/modules/lp.ko", Result: admin.ResultRefused, Err: &admin.NotRootError{Action: "load"}}
	check(t, "outcome-refused-not-root", schema.Outcome, report.NewOutcome(notRoot))
	all := &admin.Outcome{Action: "load", All: true, Release: "6.12.0", Result: admin.ResultIncomplete, Err: admin.ErrSomeFailed,
		Outcomes: []*admin.Outcome{
			{Action: "load", Patch: "lp_a", File: "/var/lib/klp/6.12.0/lp_a.ko", Result: admin.ResultPatched, Elapsed: time.Second},
			{Action: "load", Patch: "lp_b", File: "/var/lib/klp/6.12.0/lp_b.ko", Result: admin.ResultSkipped, Err: errors.New("crashed")},
		}}
	check(t, "outcome-all", schema.Outcome, report.NewOutcome(all))
	check(t, "outcome-empty", schema.Outcome, report.NewOutcome(&admin.Outcome{Action: "wait", Result: admin.ResultReady}))
}

func TestList(t *testing.T) {
	l := &admin.List{
		Release: "6.14.0",
		Loaded: []admin.LoadedPatch{
			{Name: "lp_v2", State: admin.StateEnabled, Replace: ptr(true), ReplaceSet: ptr(uint32(3)), StackOrder: ptr(2)},
			{Name: "lp_v1", State: admin.StateSuperseded},
		},
		Installed: []store.Installed{{Name: "lp_v2", Release: "6.14.0", Path: "/var/lib/klp/6.14.0/lp_v2.ko", Source: "klp"}},
		Functions: []admin.ProvidedFunction{
			{Object: "vmlinux", Function: "f", Sympos: 1, Patches: []string{"lp_v2"}, ProvidedBy: "lp_v2", Basis: admin.OwnerStackOrder},
			{Object: "xfs", Function: "g", Sympos: 2, Patches: []string{"a", "b"}},
		},
		OtherUsers: []admin.FunctionUsers{{Object: "vmlinux", Function: "f", Users: []ftrace.User{
			{Kind: ftrace.KindBPFFmodRet, Effect: ftrace.Overrides, Program: "ret_f", ProgramID: 12, LinkID: 7, Source: "bpf(2)"},
			{Kind: ftrace.KindKprobe, Effect: ftrace.Coexists, Source: "0xffffffff81000000 f+0x0 [FTRACE]"},
		}}},
	}
	check(t, "list", schema.List, report.NewList(l))
	l.OtherUsers, l.OtherUsersErr = nil, errors.New("open /sys/kernel/tracing/enabled_functions: permission denied")
	check(t, "list-users-unreadable", schema.List, report.NewList(l))
	check(t, "list-empty", schema.List, report.NewList(&admin.List{}))
	in := &admin.InstallResult{Action: "install", Installed: store.Installed{Name: "lp", Release: "6.1.0", Path: "/var/lib/klp/6.1.0/lp.ko", Source: "klp"}}
	check(t, "install", schema.Install, report.NewInstall(in))
	dg := &admin.Downgrade{Patch: "lp", Plan: &admin.DowngradePlan{Manager: "rpm", Package: "kernel-livepatch-x", From: "2-2.1", To: "1-1.1",
		Command: []string{"zypper", "in", "--oldpackage", "kernel-livepatch-x=1-1.1"}}}
	check(t, "downgrade", schema.Downgrade, report.NewDowngrade(dg, true))
}

func TestPatches(t *testing.T) {
	pl := &admin.PatchList{Interface: livepatch.InterfaceLivepatch, Patches: []admin.PatchEntry{
		{Name: "lp", Active: true, Upstream: &livepatch.Patch{Name: "lp", Enabled: true, Transition: ptr(false), Replace: ptr(true),
			ReplaceSet: ptr(uint32(3)), StackOrder: ptr(1), HasForce: true, Objects: []livepatch.Object{{Name: "vmlinux", Patched: ptr(true),
				Functions: []livepatch.Function{{Name: "f", Sympos: 1}}}}},
			Package: &admin.PackageInfo{Manager: "rpm", Name: "kernel-livepatch-x", Version: "2", Release: "2.1", Arch: "x86_64",
				Full: "kernel-livepatch-x-2-2.1.x86_64", CVEs: []string{"CVE-2026-1"}, Bugs: []string{"bsc#1"}, Expiration: "2027-01-01", Update: "update available (3-1.1)"}},
		{Name: "old", Upstream: &livepatch.Patch{Name: "old", HasSignal: true}},
	}}
	check(t, "patches", schema.Patches, report.NewPatches(pl))
	kg := &admin.PatchList{Interface: livepatch.InterfaceKGraft, Patches: []admin.PatchEntry{
		{Name: "kgraft_patch_1", Active: true, KGraft: &livepatch.KGraftPatch{Name: "kgraft_patch_1", Active: true, Refs: ptr(0), ReplaceAll: ptr(true),
			Functions: []livepatch.KGraftFunction{{Name: "SyS_keyctl", Object: "vmlinux", Sympos: 1, State: 2}}}},
		{Name: "kgraft_patch_0", KGraft: &livepatch.KGraftPatch{Name: "kgraft_patch_0"}},
	}}
	check(t, "patches-kgraft", schema.Patches, report.NewPatches(kg))
	check(t, "patches-none", schema.Patches, report.NewPatches(&admin.PatchList{Interface: livepatch.InterfaceNone}))
}

func TestPreflightAndInfo(t *testing.T) {
	mod := &modinfo.Module{Name: "lp", Vermagic: "6.1.0 SMP", Livepatch: true, Signature: &modinfo.Signature{},
		Targets: &modinfo.Targets{Replace: ptr(false), ReplaceSet: ptr(uint32(0)), Functions: []modinfo.Target{{Object: "vmlinux", Function: "f", Sympos: 1, Source: "klp_func"}}}}
	rep := &preflight.Report{Module: mod, Checks: []preflight.Check{
		{ID: "vermagic", Title: "Vermagic", Status: preflight.Warn, Reason: "r", Fix: "f", Details: []string{"d"}},
	}}
	check(t, "preflight", schema.Preflight, report.NewPreflight(rep, "/tmp/lp.ko"))
	check(t, "preflight-nomodule", schema.Preflight, report.NewPreflight(&preflight.Report{Checks: []preflight.Check{
		{ID: "livepatch_supported", Title: "Live patching", Status: preflight.Pass, Reason: "yes"}}}, ""))
	check(t, "preflight-notargets", schema.Preflight, report.NewPreflight(&preflight.Report{Module: &modinfo.Module{Name: "plain"}}, "/tmp/plain.ko"))
}
