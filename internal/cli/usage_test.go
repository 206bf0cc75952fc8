package cli_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klp-project/klp/internal/cli"
	"github.com/klp-project/klp/internal/fakefs"
	"github.com/klp-project/klp/kernel"
)

// runArgs runs a command line with a test environment in which nothing
// leaves the process.
func runArgs(t *testing.T, args ...string) (string, string, cli.ExitCode) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := &cli.Env{
		IO:      &cli.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr},
		Getpid:  func() int { return fakePID },
		Getppid: func() int { return fakePPID },
		Getpgrp: func() int { return fakePGRP },
		OpenLive: fakefs.OpenLive(kernel.Seams{Signals: fakefs.KillFunc(func(pid int, sig syscall.Signal) error {
			t.Errorf("kill(%d, %d) called", pid, sig)
			return nil
		})}),
		Sleep:   func(time.Duration) {},
		Geteuid: func() int { return 0 },
	}
	code := cli.Run(args, env)
	return stdout.String(), stderr.String(), code
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	root := fakefs.Load(t, filepath.Join(fixtureDir, "kernel-6.1.txtar"))
	roots := []string{"--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc")}
	for _, tc := range []struct {
		args       []string
		wantStderr []string // substrings
	}{
		{[]string{"klp"}, []string{"klp: no command given"}},
		{[]string{"klp", "bogus"}, []string{"klp: ", "bogus", "Run 'klp --help' for usage."}},
		{[]string{"klp", "--bogus", "status"}, []string{"unknown flag: --bogus", "Run 'klp --help' for usage."}},
		{[]string{"klp", "-x", "status"}, []string{"unknown shorthand flag", "Run 'klp --help' for usage."}},
		{[]string{"klp", "status", "extra"}, []string{"klp: ", "extra"}},
		// poke and blocking_threads are kgr's, downgrade is klp's.
		{[]string{"klp", "poke"}, []string{"poke", "Run 'klp --help' for usage."}},
		{[]string{"klp", "blocking_threads"}, []string{"blocking_threads", "Run 'klp --help' for usage."}},
		{[]string{"/usr/sbin/kgr", "downgrade"}, []string{"kgr: ", "downgrade", "Run 'kgr --help' for usage."}},
		{[]string{"kgr", "-n", "status"}, []string{"kgr: ", "-n"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			args := append([]string{tc.args[0]}, append(append([]string{}, roots...), tc.args[1:]...)...)
			stdout, stderr, code := runArgs(t, args...)
			if code != cli.ExitError {
				t.Errorf("exit status %d, want 1", code)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing: usage errors go to stderr", stdout)
			}
			for _, s := range tc.wantStderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr %q does not contain %q", stderr, s)
				}
			}
		})
	}
}

func TestBadRoots(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "nonexistent")
	for _, args := range [][]string{
		{"klp", "--sysfs", missing, "--procfs", dir, "status"},
		{"klp", "--sysfs", dir, "--procfs", missing, "blocking"},
		{"klp", "--sysfs", missing, "check"},
		{"kgr", "--procfs", missing, "poke"},
	} {
		stdout, stderr, code := runArgs(t, args...)
		// A typo in --sysfs must not look like "ready" or "nothing loaded".
		if code != cli.ExitError || stdout != "" {
			t.Errorf("%v: exit status %d, stdout %q, want 1 and nothing", args, code, stdout)
		}
		for _, s := range []string{missing, "check --sysfs and --procfs"} {
			if !strings.Contains(stderr, s) {
				t.Errorf("%v: stderr %q does not contain %q", args, stderr, s)
			}
		}
	}
}

func TestOptionsAfterCommand(t *testing.T) {
	t.Parallel()
	root := fakefs.Load(t, filepath.Join(fixtureDir, "transition-blocking.txtar"))
	sys, proc := filepath.Join(root, "sys"), filepath.Join(root, "proc")
	// SUSE's openQA puts options first (klp -v patches); after the command
	// they must mean the same.
	for _, pair := range [][2][]string{
		{{"klp", "-v", "blocking"}, {"klp", "blocking", "-v"}},
		{{"klp", "-vv", "blocking"}, {"klp", "blocking", "-v", "-v"}},
		{{"klp", "--json", "status"}, {"klp", "status", "--json"}},
		{{"kgr", "-v", "blocking_threads"}, {"kgr", "blocking_threads", "--verbose"}},
	} {
		var outs [2]string
		for i, args := range pair {
			stdout, stderr, code := runArgs(t, append([]string{args[0], "--sysfs", sys, "--procfs", proc}, args[1:]...)...)
			if code != cli.ExitOK || stderr != "" {
				t.Errorf("%v: exit status %d, stderr %q", args, code, stderr)
			}
			outs[i] = stdout
		}
		if outs[0] != outs[1] || outs[0] == "" {
			t.Errorf("%v and %v differ:\n%s\n---\n%s", pair[0], pair[1], outs[0], outs[1])
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"klp", "--help"}, {"klp", "-h"}, {"kgr", "--help"}} {
		stdout, _, code := runArgs(t, args...)
		if code != cli.ExitOK {
			t.Errorf("%v: exit status %d, want 0", args, code)
		}
		for _, cmd := range []string{"status", "check", "patches", "blocking"} {
			if !strings.Contains(stdout, cmd) {
				t.Errorf("%v: help does not list %s:\n%s", args, cmd, stdout)
			}
		}
		if args[0] == "kgr" && (!strings.Contains(stdout, "poke") || !strings.Contains(stdout, "blocking_threads")) {
			t.Errorf("kgr --help does not list poke and blocking_threads:\n%s", stdout)
		}
	}
	for _, prog := range []string{"klp", "kgr"} {
		stdout, _, code := runArgs(t, prog, "--version")
		if code != cli.ExitOK || !strings.HasPrefix(stdout, prog+" ") || !strings.HasSuffix(stdout, "\n") {
			t.Errorf("%s --version = %q, exit status %d", prog, stdout, code)
		}
	}
}
