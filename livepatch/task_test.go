package livepatch

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTaskFixture(t *testing.T) {
	t.Parallel()
	fs, _ := fixtureFS(t, "transition-blocking")
	for _, want := range []Task{
		// A thread of a multi-threaded process: its own comm, the
		// process's command line.
		{PID: 812, TID: 846, Comm: "in:imjournal", Cmdline: "/usr/sbin/rsyslogd -n -iNONE", State: "S", PPID: 1, PGRP: 812},
		{PID: 812, TID: 847, Comm: "rs:main Q:Reg", Cmdline: "/usr/sbin/rsyslogd -n -iNONE", State: "S", PPID: 1, PGRP: 812},
		// A kernel thread: empty cmdline, shown as [comm].
		{PID: 1204, TID: 1204, Comm: "nfsd", Cmdline: "[nfsd]", KernelThread: true, State: "S", PPID: 2, PGRP: 0},
		{PID: 57, TID: 57, Comm: "kworker/0:2-events", Cmdline: "[kworker/0:2-events]", KernelThread: true, State: "I", PPID: 2},
		{PID: 2, TID: 2, Comm: "kthreadd", Cmdline: "[kthreadd]", KernelThread: true, State: "S"},
		// Uninterruptible sleep, in the shell's foreground job.
		{PID: 2210, TID: 2210, Comm: "cp", Cmdline: "cp -a /mnt/nfs/projects /srv/backup/", State: "D", PPID: 1530, PGRP: 2210},
		// setproctitle: one string padded with NULs.
		{PID: 1523, TID: 1523, Comm: "sshd-session", Cmdline: "sshd-session: root@pts/0", State: "S", PPID: 901, PGRP: 1523},
		{PID: 1, TID: 1, Comm: "systemd", Cmdline: "/usr/lib/systemd/systemd --switched-root --system --deserialize=42", State: "S", PPID: 0, PGRP: 1},
	} {
		got, err := fs.Task(want.PID, want.TID)
		if err != nil {
			t.Errorf("Task(%d, %d): %v", want.PID, want.TID, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Task(%d, %d): unexpected diff (-want +got):\n%s", want.PID, want.TID, diff)
		}
	}
}

func TestTaskExited(t *testing.T) {
	t.Parallel()
	fs, root := fixtureFS(t, "transition-blocking")
	if _, err := fs.Task(9999, 9999); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Task(9999, 9999) = %v, want os.ErrNotExist", err)
	}
	// A process that exits between the scan and the read.
	if err := os.RemoveAll(filepath.Join(root, "proc/2050")); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Task(2050, 2050); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Task(2050, 2050) = %v, want os.ErrNotExist", err)
	}
}

func TestTaskFallbacks(t *testing.T) {
	t.Parallel()
	fs, _ := archiveFS(t, `-- proc/30/task/31/stat --
31 (a) b (c) R 1 30 30 0 -1 4194368 0 0 0 0 0 0 0 0 20 0 2 0 100 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0
-- proc/30/cmdline --
/opt/app/bin/app<NUL>--name<NUL>a b<NUL>
-- proc/40/task/40/stat --
40 (bad) S 1 40
`)
	// No comm file: the name comes from stat, parentheses and all.
	got, err := fs.Task(30, 31)
	if err != nil {
		t.Fatal(err)
	}
	want := Task{PID: 30, TID: 31, Comm: "a) b (c", Cmdline: "/opt/app/bin/app --name a b", State: "R", PPID: 1, PGRP: 30}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Task(30, 31): unexpected diff (-want +got):\n%s", diff)
	}
	// A truncated stat is a parse error naming the file, not "exited".
	_, err = fs.Task(40, 40)
	if !errors.Is(err, ErrParse) || errors.Is(err, os.ErrNotExist) {
		t.Errorf("Task(40, 40) = %v, want ErrParse", err)
	}
	if err != nil && !strings.Contains(err.Error(), "40/task/40/stat") {
		t.Errorf("error %q does not name the stat file", err)
	}
}

// TestTaskLongCmdline: Task's comment says a command line longer than
// maxCmdline "is cut, which is enough to recognise the process", but
// sysfile.ReadBytes returns no data with ErrTooLarge, so the process is
// shown as "[comm]", the way kernel threads are.
func TestTaskLongCmdline(t *testing.T) {
	t.Parallel()
	long := "/usr/bin/java" + strings.Repeat("<NUL>-Dx=y", 3000) + "<NUL>"
	fs, _ := archiveFS(t, `-- proc/50/task/50/stat --
50 (java) S 1 50 50 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0
-- proc/50/task/50/comm --
java
-- proc/50/cmdline --
`+long+"\n")
	got, err := fs.Task(50, 50)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.Cmdline, "/usr/bin/java -Dx=y -Dx=y") {
		t.Errorf("Cmdline = %.60q..., want the start of the command line", got.Cmdline)
	}
	if got.KernelThread {
		t.Error("KernelThread = true for a user process")
	}
}

func TestTaskStack(t *testing.T) {
	t.Parallel()
	fs, _ := fixtureFS(t, "transition-blocking")
	got, err := fs.TaskStack(812, 846)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"[<0>] do_sys_poll+0x3dc/0x560",
		"[<0>] __x64_sys_ppoll+0xbc/0x150",
		"[<0>] do_syscall_64+0x82/0x170",
		"[<0>] entry_SYSCALL_64_after_hwframe+0x76/0x7e",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("TaskStack(812, 846): unexpected diff (-want +got):\n%s", diff)
	}
	got, err = fs.TaskStack(1204, 1204)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || got[0] != "[<0>] svc_recv+0x7e/0x8a0 [sunrpc]" {
		t.Errorf("TaskStack(1204, 1204) = %q", got)
	}
}

func TestTaskStackOldKernel(t *testing.T) {
	t.Parallel()
	// Before 4.17 the frames had real addresses and a ULONG_MAX terminator.
	fs, _ := fixtureFS(t, "kernel-4.12")
	got, err := fs.TaskStack(1630, 1630)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || !strings.HasPrefix(got[0], "[<ffffffff") || got[4] != "[<ffffffffffffffff>] 0xffffffffffffffff" {
		t.Errorf("TaskStack(1630, 1630) = %q", got)
	}
	var fns []string
	for _, f := range got {
		fns = append(fns, StackFunction(f))
	}
	wantFns := []string{"do_wait", "kernel_wait4", "SYSC_wait4", "entry_SYSCALL_64_fastpath", "0xffffffffffffffff"}
	if diff := cmp.Diff(wantFns, fns); diff != "" {
		t.Errorf("StackFunction: unexpected diff (-want +got):\n%s", diff)
	}
}

func TestTaskStackEmptyAndMissing(t *testing.T) {
	t.Parallel()
	fs, root := fixtureFS(t, "transition-unpatching")
	// A task running on another CPU: the kernel prints no frames.
	got, err := fs.TaskStack(577, 577)
	if err != nil || len(got) != 0 {
		t.Errorf("TaskStack(577, 577) = %q, %v, want no frames and no error", got, err)
	}
	// No stack file while the task exists: CONFIG_STACKTRACE is not set.
	if err := os.Remove(filepath.Join(root, "proc/530/task/530/stack")); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.TaskStack(530, 530); !errors.Is(err, ErrStackUnavailable) {
		t.Errorf("TaskStack(530, 530) = %v, want ErrStackUnavailable", err)
	}
	// No task at all: it exited.
	_, err = fs.TaskStack(4000, 4000)
	if !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrStackUnavailable) {
		t.Errorf("TaskStack(4000, 4000) = %v, want os.ErrNotExist and not ErrStackUnavailable", err)
	}
}

func TestStackFunction(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"[<0>] msleep+0x2d/0x40":                                      "msleep",
		"[<0>] svc_recv+0x7e/0x8a0 [sunrpc]":                          "svc_recv",
		"[<0>] klp_e2e_patched_work+0x4a/0x70 [klp_e2e_target_patch]": "klp_e2e_patched_work",
		"[<ffffffff810a3c4d>] do_wait+0x1d1/0x240":                    "do_wait",
		"[<ffffffffffffffff>] 0xffffffffffffffff":                     "0xffffffffffffffff",
		"[<0>] do_pselect.constprop.0+0xac/0x100":                     "do_pselect.constprop.0",
		"[<0>] foo":                         "foo",
		"bar+0x1/0x2":                       "bar",
		"[<0>] +0x10/0x20":                  "", // no function name
		"[<0>] __x64_sys_futex+0x112/0x1d0": "__x64_sys_futex",
		"[<0>] entry_SYSCALL_64_after_hwframe+0x76/0x7e":                                      "entry_SYSCALL_64_after_hwframe",
		"[<0>] rpc_wait_bit_killable+0x11/0x70 [sunrpc]":                                      "rpc_wait_bit_killable",
		"[<0>] nfs4_call_sync_sequence+0x72/0xb0 [nfsv4]":                                     "nfs4_call_sync_sequence",
		"[<0>] klp_e2e_target_work+0x3c/0x60 [klp_e2e_target]":                                "klp_e2e_target_work",
		"[<0>] __arm64_sys_epoll_pwait+0xd0/0x150":                                            "__arm64_sys_epoll_pwait",
		"[<0>] el0t_64_sync+0x190/0x194":                                                      "el0t_64_sync",
		"[<0>] livepatch_cve_2024_1086_nft_verdict_init+0x1d/0x150 [livepatch_cve_2024_1086]": "livepatch_cve_2024_1086_nft_verdict_init",
	} {
		if got := StackFunction(in); got != want {
			t.Errorf("StackFunction(%q) = %q, want %q", in, got, want)
		}
	}
}

// FrameModule names the module of a frame that ends in "[mod]", and nothing
// for a vmlinux frame or a line that only ends in a bracket.
func TestFrameModule(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"[<0>] svc_recv+0x7e/0x8a0 [sunrpc]":                          "sunrpc",
		"[<0>] klp_e2e_patched_work+0x4a/0x70 [klp_e2e_target_patch]": "klp_e2e_target_patch",
		"  [<0>] nfs4_call_sync_sequence+0x72/0xb0 [nfsv4]\n":         "nfsv4",
		"[<0>] f+0x1/0x2 [a] [b]":                                     "b",
		"[<0>] f+0x1/0x2 []":                                          "",
		"[<0>] msleep+0x2d/0x40":                                      "",
		"[<ffffffffffffffff>] 0xffffffffffffffff":                     "",
		"[<0>]": "",
		"[mod]": "",
		"":      "",
	} {
		if got := FrameModule(in); got != want {
			t.Errorf("FrameModule(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseStat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want statInfo
	}{
		// Lines as Linux 6.18 prints them.
		{"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 24 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
			statInfo{comm: "kthreadd", state: "S", flags: 2129984}},
		{"10 (kworker/0:0H-kblockd) I 2 0 0 0 -1 69238880 0 0 0 0 0 3 0 0 0 -20 1 0 24 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
			statInfo{comm: "kworker/0:0H-kblockd", state: "I", ppid: 2, flags: 69238880}},
		{"22325 (cat) R 22320 22320 20278 0 -1 4194304 101 0 0 0 0 0 0 0 20 0 1 0 385902 3133440 413 18446744073709551615 94811268993024 94811269012905 140736040854160 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94811269028912 94811269030528 94811882364928 140736040856064 140736040856084 140736040856084 140736040857579 0\n",
			statInfo{comm: "cat", state: "R", ppid: 22320, pgrp: 22320, flags: 4194304}},
		// comm with spaces and parentheses: fields count from the last ')'.
		{"1530 ((sd-pam)) S 1529 1529 1529 0 -1 1077936448 34 0 0 0 0 0 0 0 20 0 1 0 700 0 0 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
			statInfo{comm: "(sd-pam)", state: "S", ppid: 1529, pgrp: 1529, flags: 1077936448}},
		{"847 (rs:main Q:Reg) S 1 812 812 0 -1 4194624 0", statInfo{comm: "rs:main Q:Reg", state: "S", ppid: 1, pgrp: 812, flags: 4194624}},
		{"9 (a) b) T 1 9 9 0 -1 64", statInfo{comm: "a) b", state: "T", ppid: 1, pgrp: 9, flags: 64}},
		{"3 () Z 1 3 3 0 -1 0", statInfo{comm: "", state: "Z", ppid: 1, pgrp: 3}},
	} {
		got, err := parseStat([]byte(tc.in))
		if err != nil {
			t.Errorf("parseStat(%.40q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(statInfo{})); diff != "" {
			t.Errorf("parseStat(%.40q): unexpected diff (-want +got):\n%s", tc.in, diff)
		}
		if kt := got.flags&pfKthread != 0; kt != (tc.want.comm == "kthreadd" || strings.HasPrefix(tc.want.comm, "kworker")) {
			t.Errorf("parseStat(%.40q): kernel thread = %v", tc.in, kt)
		}
	}
	for _, in := range []string{
		"",
		"1 systemd S 0 1 1 0 -1 4194560",
		"1 (systemd S 0 1 1 0 -1 4194560",
		"1 systemd) S 0 1 1 0 -1 4194560",
		"1 (systemd) S 0 1 1 0 -1",
		"1 (systemd) S x 1 1 0 -1 4194560",
		"1 (systemd) S 0 y 1 0 -1 4194560",
		"1 (systemd) S 0 1 1 0 -1 -5",
		"1 (systemd) S 0 1 1 0 -1 0x400000",
	} {
		if got, err := parseStat([]byte(in)); !errors.Is(err, ErrParse) {
			t.Errorf("parseStat(%q) = %+v, %v, want ErrParse", in, got, err)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                                  "",
		"\x00":                              "",
		"/sbin/init\x00":                    "/sbin/init",
		"/usr/sbin/sshd\x00-D\x00":          "/usr/sbin/sshd -D",
		"sshd: root@pts/0\x00\x00\x00\x00":  "sshd: root@pts/0",
		"sshd: root@pts/0":                  "sshd: root@pts/0",
		"a\x00\x00b\x00":                    "a  b",
		"cp\x00-a\x00/mnt/nfs/my files\x00": "cp -a /mnt/nfs/my files",
	} {
		if got := parseCmdline([]byte(in)); got != want {
			t.Errorf("parseCmdline(%q) = %q, want %q", in, got, want)
		}
	}
}
