package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klp-project/klp/internal/cli"
	"github.com/klp-project/klp/internal/fakefs"
	"github.com/klp-project/klp/kernel"
)

// TestTerminalInjection is the "terminal and parser injection" class: any
// user can set its own command line and name to escape sequences and
// newlines. A text report must escape them and keep one record per line
// (SUSE-format parsers read "PID command" lines); JSON carries the exact
// text.
func TestTerminalInjection(t *testing.T) {
	t.Parallel()
	root := fakefs.Load(t, filepath.Join("..", "..", "testdata", "transition-blocking.txtar"))
	evilCmdline := "evil\x1b[2J\n1 /sbin/init"
	evilComm := "ev\x1b]0;pwned\x07il"
	for _, f := range []struct{ path, content string }{
		{"proc/2050/cmdline", evilCmdline + "\x00"},
		{"proc/2050/comm", evilComm + "\n"},
		{"proc/2050/task/2050/comm", evilComm + "\n"},
	} {
		if err := os.WriteFile(filepath.Join(root, f.path), []byte(f.content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(prog string, args ...string) (string, string) {
		var stdout, stderr bytes.Buffer
		env := &cli.Env{
			IO:      &cli.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr},
			Getpid:  func() int { return fakePID },
			Getppid: func() int { return fakePPID },
			Getpgrp: func() int { return fakePGRP },
			OpenLive: fakefs.OpenLive(kernel.Seams{Signals: fakefs.KillFunc(func(int, syscall.Signal) error {
				return nil
			})}),
			Sleep:   func(time.Duration) {},
			Geteuid: func() int { return 0 },
		}
		argv := append([]string{prog, "--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc")}, args...)
		cli.Run(argv, env)
		return stdout.String(), stderr.String()
	}
	for _, tc := range [][]string{
		{"klp", "-v", "blocking"}, {"klp", "-vv", "blocking"}, {"klp", "blocking", "--why"},
		{"kgr", "-v", "blocking"}, {"kgr", "-v", "blocking_threads"}, {"kgr", "-v", "poke"},
	} {
		out, errOut := run(tc[0], tc[1:]...)
		for _, s := range []string{out, errOut} {
			if strings.ContainsAny(s, "\x1b\x07") {
				t.Errorf("%q: an escape sequence reached the terminal:\n%q", tc, s)
			}
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "1 /sbin/init") {
				t.Errorf("%q: a forged record line %q", tc, l)
			}
		}
		if !strings.Contains(out, `evil\x1b[2J\n1 /sbin/init`) && !strings.Contains(out, `ev\x1b]0;pwned\ail`) {
			t.Errorf("%q: the escaped text is not shown:\n%s", tc, out)
		}
	}
	out, _ := run("klp", "--json", "-v", "blocking")
	var doc struct {
		Tasks []struct {
			PID     int    `json:"pid"`
			Comm    string `json:"comm"`
			Cmdline string `json:"cmdline"`
		} `json:"tasks"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, task := range doc.Tasks {
		if task.PID == 2050 {
			found = true
			if task.Cmdline != evilCmdline || task.Comm != evilComm {
				t.Errorf("JSON changed the text: cmdline %q, comm %q", task.Cmdline, task.Comm)
			}
		}
	}
	if !found {
		t.Errorf("task 2050 is not in the JSON: %s", out)
	}
}
