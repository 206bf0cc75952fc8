package livepatch

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/klp-project/klp/kernel"
)

// The parsers of what any task (its name, its command line) or the kernel
// writes in procfs and sysfs, fuzzed: none may panic, and each keeps the
// properties its callers rely on.

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("4242 (python3) S 1 4242 4242 0 -1 4194304 2350 0 0 0\n"))
	f.Add([]byte("88 (a) b) (c) D 2 0 0 0 -1 2129984 0 0\n"))
	f.Add([]byte(")("))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseStat(b)
		if err != nil {
			return
		}
		if strings.Contains(st.state, " ") || st.state == "" {
			t.Errorf("state %q", st.state)
		}
	})
}

// FuzzStatRoundTrip: whatever a task names itself (a comm may hold spaces
// and parentheses), the fields after it are read right.
func FuzzStatRoundTrip(f *testing.F) {
	f.Add("python3", 1, 4242, uint64(4194304))
	f.Add("a) S 1 1 1 0 -1 1 (", 2, 3, uint64(0x200000))
	f.Fuzz(func(t *testing.T, comm string, ppid, pgrp int, flags uint64) {
		if strings.ContainsAny(comm, "\n") || ppid < 0 || pgrp < 0 {
			return // the kernel's comm has no newline; ids are not negative
		}
		line := fmt.Sprintf("42 (%s) S %d %d 0 0 -1 %d 0 0\n", comm, ppid, pgrp, flags)
		st, err := parseStat([]byte(line))
		if err != nil {
			t.Fatalf("parseStat(%q): %v", line, err)
		}
		if st.state != "S" || st.ppid != ppid || st.pgrp != pgrp || st.flags != flags {
			t.Errorf("parseStat(%q) = %+v", line, st)
		}
		if strings.TrimSpace(comm) == comm && st.comm != comm {
			t.Errorf("comm %q, want %q", st.comm, comm)
		}
	})
}

func FuzzParseCmdline(f *testing.F) {
	f.Add([]byte("/usr/bin/app\x00--serve\x00"))
	f.Add([]byte("evil\x1b[2J\n1 /sbin/init\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := parseCmdline(b)
		if strings.ContainsRune(s, 0) {
			t.Errorf("parseCmdline(%q) = %q keeps a NUL", b, s)
		}
		if len(s) > len(b) {
			t.Errorf("parseCmdline(%q) = %q grew", b, s)
		}
	})
}

func FuzzParseStack(f *testing.F) {
	f.Add([]byte("[<0>] busy_sleep+0x2d/0x40 [klp_target]\n[<0>] kthread+0xe5/0x120\n"))
	f.Add([]byte("\n\n  \n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		frames := parseStack(b)
		if frames == nil {
			t.Fatal("nil frames: a stack that was read is never nil")
		}
		for _, fr := range frames {
			if fr == "" || strings.Contains(fr, "\n") || strings.TrimSpace(fr) != fr {
				t.Errorf("frame %q", fr)
			}
			fn, mod := StackFunction(fr), FrameModule(fr)
			if strings.ContainsAny(fn, " +") && !strings.HasPrefix(fr, "[<") || len(fn) > len(fr) || len(mod) > len(fr) {
				t.Errorf("frame %q: function %q, module %q", fr, fn, mod)
			}
		}
	})
}

func FuzzParseFunctionDir(f *testing.F) {
	f.Add("cmdline_proc_show,1")
	f.Add("foo,bar")
	f.Add("plain")
	f.Fuzz(func(t *testing.T, s string) {
		fn, err := parseFunctionDir(s)
		if err != nil {
			return
		}
		if got := fn.DirName(); got != s {
			t.Errorf("parseFunctionDir(%q) = %+v, whose directory name is %q", s, fn, got)
		}
	})
}

func FuzzParseKGraftState(f *testing.F) {
	f.Add([]byte("Function              Object                Sympos  State\nSyS_keyctl            vmlinux                    1      2\n"))
	f.Add([]byte("sys_foo 2 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, fn := range parseKGraftState(b) {
			if fn.Name == "" || strings.ContainsAny(fn.Name, " \t\n") {
				t.Errorf("function %+v", fn)
			}
		}
	})
}

func FuzzParseStateBytes(f *testing.F) {
	for _, s := range []string{"-1\n", "0\n", "1\n", "2\n", "-0", "01", "\n", "999999999999"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, ok := parseStateBytes(b)
		if ok && (v < -1 || v > 1) {
			t.Errorf("parseStateBytes(%q) = %d, true", b, v)
		}
		// The value is the decimal number the file holds (leading zeros
		// and a minus zero read as strconv reads them).
		if n, err := strconv.Atoi(string(bytes.TrimRight(b, "\n "))); ok && (err != nil || n != v) {
			t.Errorf("parseStateBytes(%q) = %d, strconv reads %d, %v", b, v, n, err)
		}
	})
}

// FuzzParseLogEvent: any kernel log message parses or is refused cleanly; a
// start or a completion names a valid patch and a target, and is exactly
// what the kernel prints for them.
func FuzzParseLogEvent(f *testing.F) {
	f.Add("livepatch: 'klp_e2e_target_patch': patching complete")
	f.Add("livepatch: 'p': starting unpatching transition")
	f.Add("livepatch: ''': patching complete")
	f.Add("livepatch: enabling patch 'p'")
	f.Fuzz(func(t *testing.T, msg string) {
		ev, ok := ParseLogEvent(msg)
		if !ok {
			if strings.HasPrefix(msg, "livepatch: ") {
				t.Errorf("ParseLogEvent(%q) refused a livepatch record", msg)
			}
			return
		}
		if ev.Kind == EventOther {
			if ev.Patch != "" {
				t.Errorf("ParseLogEvent(%q) = %+v: another record names a patch", msg, ev)
			}
			return
		}
		if kernel.ValidateModuleName(ev.Patch) != nil || (ev.Target != StatePatched && ev.Target != StateUnpatched) {
			t.Errorf("ParseLogEvent(%q) = %+v", msg, ev)
		}
		dir := map[PatchState]string{StatePatched: "patching", StateUnpatched: "unpatching"}[ev.Target]
		want := fmt.Sprintf("livepatch: '%s': %s complete", ev.Patch, dir)
		if ev.Kind == EventStart {
			want = fmt.Sprintf("livepatch: '%s': starting %s transition", ev.Patch, dir)
		}
		if msg != want {
			t.Errorf("ParseLogEvent(%q) = %+v, which the kernel prints as %q", msg, ev, want)
		}
	})
}

// FuzzParseTransitionLog: whatever the log holds before them (task names
// are the tasks' own), a transition's start and a reason after it are
// found.
func FuzzParseTransitionLog(f *testing.F) {
	f.Add(transitionLog)
	f.Add("livepatch: klp_try_switch_task: :1 is running\nlivepatch: 'p': starting x transition\n")
	f.Fuzz(func(t *testing.T, in string) {
		log, err := ParseTransitionLog(strings.NewReader(in+"\nlivepatch: 'fz': starting patching transition\nlivepatch: klp_try_switch_task: a b:c:4242 has an unreliable stack\n"), "fz")
		if err != nil {
			return // a line too long to scan
		}
		if !log.Started || log.Signalled || len(log.Reasons) != 1 || log.Reasons[4242].Comm != "a b:c" {
			t.Errorf("%+v", log)
		}
	})
}

func FuzzParseDynamicDebug(f *testing.F) {
	f.Add("kernel/livepatch/transition.c:349 [livepatch]klp_try_switch_task =_ \"%s: %s:%d has an unreliable stack\\012\"\n")
	f.Add("kernel/livepatch/x =p\n= = =\n")
	f.Fuzz(func(t *testing.T, in string) {
		found, enabled, err := ParseDynamicDebug(strings.NewReader(in))
		if err == nil && enabled && !found {
			t.Error("enabled without a site")
		}
	})
}
