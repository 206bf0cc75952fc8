package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/klp-project/klp/e2e/internal/harness"
)

// The klp-snapshot scenario's files, in the guest and as sent to the host
// (e2e_test.go reads them from the outbox).
const (
	snapFile         = "/tmp/klp-snapshot.tar.zst"
	snapRedactedFile = "/tmp/klp-snapshot-redacted.tar.zst"
	// SnapshotArchive and SnapshotLive name the files sent to the host:
	// the archive, and what klp printed live (a JSON list of
	// harness.Command).
	snapshotArchive = "klp-snapshot.tar.zst"
	snapshotLive    = "klp-snapshot-live.json"
	// secret is in a process's command line: --redact must leave it out.
	secret = "password=hunter2"
)

// suiteModules are the test modules and the other kernels' build of one.
func suiteModules() []string {
	mods, _ := filepath.Glob(moduleDir + "/*.ko")
	for _, p := range foreignModules() {
		mods = append(mods, p)
	}
	sort.Strings(mods)
	return mods
}

// snapshotCommands are the commands compared live and on the snapshot: the
// read commands, plain, verbose and JSON, and preflight of every module of
// the suite.
func snapshotCommands() []harness.Command {
	var cs []harness.Command
	add := func(prog string, args ...string) { cs = append(cs, harness.Command{Prog: prog, Args: args}) }
	add("klp", "status")
	add("klp", "-v", "status")
	add("klp", "--json", "status")
	add("klp", "check")
	add("klp", "-v", "patches")
	add("klp", "--json", "-v", "patches")
	add("klp", "blocking")
	add("klp", "-v", "blocking")
	add("klp", "-vv", "blocking")
	add("klp", "--json", "-vv", "blocking")
	add("klp", "blocking", "--why")
	add("klp", "--json", "blocking", "--why")
	add("klp", "list")
	add("klp", "--json", "list")
	add("kgr", "-vv", "blocking")
	add("kgr", "-v", "blocking_threads")
	add("klp", "-v", "preflight")
	add("klp", "--json", "preflight")
	add("klp", "-v", "preflight", moduleFile("klp_e2e_cmdline"))
	for _, m := range suiteModules() {
		add("klp", "--json", "preflight", m)
	}
	return cs
}

// runCommands runs cs with the given arguments first (--snapshot FILE) and
// fills in what they printed.
func runCommands(cs []harness.Command, first ...string) []harness.Command {
	out := make([]harness.Command, len(cs))
	for i, c := range cs {
		res := run(append(append([]string{"/bin/" + c.Prog}, first...), c.Args...)...)
		out[i] = harness.Command{Prog: c.Prog, Args: c.Args, Code: res.code, Stdout: res.stdout, Stderr: res.stderr}
	}
	return out
}

// commandDiffs describes where got differs from want.
func commandDiffs(want, got []harness.Command) []string {
	var diffs []string
	for i := range want {
		w, g := want[i], got[i]
		if w.Code != g.Code || !harness.SameOutput(w.Stdout, g.Stdout) || w.Stderr != g.Stderr {
			diffs = append(diffs, fmt.Sprintf("%s %s: exit %d/%d\n--- stdout (first, then second):\n%s\n---\n%s\n--- stderr:\n%s\n---\n%s",
				w.Prog, strings.Join(w.Args, " "), w.Code, g.Code, w.Stdout, g.Stdout, w.Stderr, g.Stderr))
		}
	}
	return diffs
}

// archiveHolds reports whether the uncompressed archive holds s anywhere.
func archiveHolds(path, s string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		return false, err
	}
	defer zr.Close()
	data, err := io.ReadAll(zr)
	if err != nil {
		return false, err
	}
	return bytes.Contains(data, []byte(s)), nil
}

type jsonSnapshot struct {
	File     *string `json:"file"`
	Bytes    int64   `json:"bytes"`
	Manifest struct {
		Source     string `json:"source"`
		Redacted   bool   `json:"redacted"`
		DurationMS int64  `json:"duration_ms"`
		Kernel     struct {
			Release   string `json:"release"`
			Interface string `json:"interface"`
		} `json:"kernel"`
		Transition struct {
			Before *jsonTransition `json:"before"`
			After  *jsonTransition `json:"after"`
			Moved  bool            `json:"moved"`
		} `json:"transition"`
		Captured []struct {
			What  string   `json:"what"`
			Paths []string `json:"paths"`
			Files int      `json:"files"`
		} `json:"captured"`
		Unreadable      []map[string]string `json:"unreadable"`
		UnreadableTotal int                 `json:"unreadable_total"`
		Store           struct {
			Installed []jsonInstalled `json:"installed"`
		} `json:"store"`
	} `json:"manifest"`
}

// scenarioKlpSnapshot: klp snapshot during a transition that a kernel
// thread holds open. klp --snapshot then prints exactly what klp printed
// live at that moment, here and (e2e_test.go, from the files sent on the
// outbox) on the host; --redact leaves out a secret of a command line;
// what would change the kernel is refused.
func scenarioKlpSnapshot(r *runner) {
	r.must(r.expectNoErr("mkdir-store", os.MkdirAll(storeDir, 0o755), "mkdir %s", storeDir))
	r.must(r.expectNoErr("mount-store", syscall.Mount("tmpfs", storeDir, "tmpfs", 0, "mode=0755"), "tmpfs on %s", storeDir))
	r.atCleanup(func() { _ = syscall.Unmount(storeDir, syscall.MNT_DETACH) })
	res := klp("install", moduleFile("klp_e2e_replace"))
	r.must(r.expect("install", res.code == 0, "an installed patch for list: %v", res))
	_, ok := r.loadPatch("klp_e2e_cmdline")
	r.must(ok)
	kt := r.holdKthread()
	r.startBlockedPatch()
	_, err := r.start(nil, "/bin/sh", "-c", "sleep 600; : "+secret)
	r.must(r.expectNoErr("start-secret", err, "a process with %q in its command line", secret))

	cmds := snapshotCommands()
	live := runCommands(cmds)
	res = klp("--json", "snapshot", "-o", snapFile)
	var doc jsonSnapshot
	err = decodeJSON(res.stdout, &doc, "file", "bytes", "manifest")
	m := doc.Manifest
	counts := map[string]int{}
	for _, c := range m.Captured {
		counts[c.What] = c.Files
	}
	tr := m.Transition
	r.expect("snapshot", res.code == 0 && err == nil && doc.File != nil && *doc.File == snapFile && m.Source == "running kernel" && !m.Redacted &&
		m.Kernel.Release == r.kernel && m.Kernel.Interface == "livepatch" && !tr.Moved && sameTransition(tr.Before, transitionJSON("klp_e2e_target_patch", 1)) &&
		sameTransition(tr.After, tr.Before) && counts["stacks"] == 1 && counts["livepatch"] > 0 && counts["symbols"] == 1 && counts["config"] == 1 &&
		counts["ftrace"] >= 2 && counts["log"] == 1 && m.UnreadableTotal == 0 && len(m.Store.Installed) == 1,
		"the manifest: running kernel %s, transition klp_e2e_target_patch patching before and after, not moved, 1 stack (the kthread %d), "+
			"kallsyms, the config, the ftrace lists, the log, nothing unreadable, 1 installed patch; decode error %v; got %v", r.kernel, kt.tid, err, res)
	r.note("snapshot-bytes", "%d", doc.Bytes)
	r.note("snapshot-ms", "%d", m.DurationMS)
	r.note("snapshot-captured", "%v", counts)
	for _, u := range m.Unreadable {
		r.note("snapshot-unreadable", "%s: %s", u["path"], u["error"])
	}

	// The moment held: what klp prints is the same after the capture.
	const held = 3 // klp status, -v status, --json status
	again := runCommands(cmds[:held])
	diffs := commandDiffs(live[:held], again)
	r.must(r.expect("moment-held", len(diffs) == 0, "klp prints the same before and after the capture: %d difference(s): %s", len(diffs), strings.Join(diffs, "\n")))

	// Here first: klp --snapshot prints what klp printed live, for the
	// commands but preflight of each module (the host checks them all).
	n := len(cmds) - len(suiteModules())
	got := runCommands(cmds[:n], "--snapshot", snapFile)
	diffs = commandDiffs(live[:n], got)
	r.expect("guest-same", len(diffs) == 0, "klp --snapshot prints what klp printed live, for %d commands (live first): %d difference(s): %s",
		n, len(diffs), strings.Join(diffs, "\n"))

	// --redact: the secret is in the plain archive and not in the redacted
	// one, where the command line is the executable's name.
	res = klp("snapshot", "--redact", "-o", snapRedactedFile)
	plain, perr := archiveHolds(snapFile, secret)
	redacted, rerr := archiveHolds(snapRedactedFile, secret)
	r.expect("redact", res.code == 0 && perr == nil && rerr == nil && plain && !redacted,
		"%q in the plain archive %v (%v), in the redacted one %v (%v); %v", secret, plain, perr, redacted, rerr, res)
	res = klp("snapshot", "--show", snapRedactedFile)
	r.expect("redact-show", res.code == 0 && strings.Contains(res.stdout, "command lines: redacted"), "got %v", res)

	// Nothing that changes the kernel runs on a snapshot.
	for _, args := range [][]string{{"disable", "klp_e2e_target_patch"}, {"force", "--yes", "klp_e2e_target_patch"}, {"unload", "klp_e2e_cmdline"}, {"load", moduleFile("klp_e2e_plain")}} {
		res = klp(append([]string{"--snapshot", snapFile}, args...)...)
		p, perr := readSysPatch("klp_e2e_target_patch")
		loaded, _ := moduleLoaded("klp_e2e_cmdline")
		r.expect("refuse-"+args[0], res.code == 1 && strings.Contains(res.stderr, "--snapshot names a snapshot, which klp only reads; nothing was changed") &&
			perr == nil && p.enabled == 1 && p.transition == 1 && loaded,
			"refused, the transition and klp_e2e_cmdline untouched: %+v %v, loaded %v; %v", p, perr, loaded, res)
	}

	// To the host, which reads the archive on another machine.
	data, err := os.ReadFile(snapFile)
	r.must(r.expectNoErr("read-archive", err, "read %s", snapFile))
	j, err := json.Marshal(live)
	r.must(r.expectNoErr("encode-live", err, "encode what klp printed"))
	sent := time.Now()
	err = sendFile(snapshotArchive, data)
	if err == nil {
		err = sendFile(snapshotLive, j)
	}
	r.expectNoErr("send", err, "sent the archive (%d bytes) and what klp printed (%d bytes) to the host's outbox in %v", len(data), len(j), time.Since(sent).Round(time.Millisecond))
}
