package main

import (
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// Checks that compare klp's view with the kernel's at one moment. Each takes
// a label naming the moment ("idle", "blocked", ...), used as the check-name
// prefix. The kernel is read before and after klp runs; if the two reads
// differ the system moved in between and the comparison is retried.

const retries = 3

// checkStatus compares status, check and their JSON (and the kgr
// personality) with the transition attribute of every patch.
func (r *runner) checkStatus(label string) {
	for try := 1; ; try++ {
		name, target := kernelTransition()
		st, ck, js, jc := klp("status"), klp("check"), klp("--json", "status"), klp("--json", "check")
		gst, gck := kgr("status"), kgr("check")
		name2, target2 := kernelTransition()
		if (name != name2 || target != target2) && try < retries {
			continue
		}
		word, code := "ready", 0
		if name != "" {
			word, code = "in_progress", 1
		}
		r.expect(label+"-status", st.code == 0 && st.stdout == word+"\n",
			"want %q exit 0 (kernel transition %q); got %v", word, name, st)
		r.expect(label+"-check", ck.code == code && ck.stdout == "",
			"want exit %d and no output; got %v", code, ck)
		var doc jsonStatus
		err := decodeJSON(js.stdout, &doc, "status", "livepatch_supported", "transition")
		want := transitionJSON(name, target)
		r.expect(label+"-status-json", js.code == 0 && err == nil && doc.Status == word && doc.Interface == "livepatch" &&
			doc.LivepatchSupported && sameTransition(doc.Transition, want),
			"want status %s, interface livepatch, livepatch_supported true, transition %s; decode error %v; got %v",
			word, fmtTransition(want), err, js)
		var cdoc jsonStatus
		cerr := decodeJSON(jc.stdout, &cdoc, "status", "livepatch_supported", "transition")
		r.expect(label+"-check-json", jc.code == code && cerr == nil && cdoc.Status == word && cdoc.Interface == "livepatch" &&
			cdoc.LivepatchSupported && sameTransition(cdoc.Transition, want),
			"check --json prints the status document (status %s, transition %s) and exits %d; decode error %v; got %v",
			word, fmtTransition(want), code, cerr, jc)
		r.expect(label+"-kgr-status", gst.code == 0 && gst.stdout == word+"\n" && gck.code == code && gck.stdout == "",
			"kgr status: want %q exit 0, kgr check: exit %d (kernel transition %q); got %v, %v", word, code, name, gst, gck)
		return
	}
}

// checkPatches compares patches, -v patches, --json patches and kgr patches
// with /sys/kernel/livepatch. It returns the kernel's patches.
func (r *runner) checkPatches(label string) []sysPatch {
	for try := 1; ; try++ {
		before, err := readSysPatches()
		if err != nil {
			r.fail(label+"-patches", "read sysfs: %v", err)
			return nil
		}
		pl, pv, pj, gp := klp("patches"), klp("-v", "patches"), klp("--json", "patches"), kgr("patches")
		after, _ := readSysPatches()
		if !reflect.DeepEqual(before, after) && try < retries {
			continue
		}
		var names []string
		for _, p := range before {
			names = append(names, p.name)
		}
		sort.Strings(names)

		got := lines(pl.stdout)
		sort.Strings(got)
		r.expect(label+"-patches", pl.code == 0 && equalStrings(got, names),
			"want names %v; got %v", names, pl)

		blocks := parseVerbosePatches(pv.stdout)
		var diffs []string
		for _, p := range before {
			b, ok := blocks[p.name]
			switch {
			case !ok:
				diffs = append(diffs, p.name+" missing")
			case b["active"] != strconv.Itoa(p.enabled):
				diffs = append(diffs, fmt.Sprintf("%s active %q, kernel enabled %d", p.name, b["active"], p.enabled))
			}
		}
		if len(blocks) != len(before) {
			diffs = append(diffs, fmt.Sprintf("%d blocks for %d patches", len(blocks), len(before)))
		}
		r.expect(label+"-patches-v", pv.code == 0 && len(diffs) == 0,
			"want a block with \"    active: <enabled>\" per patch %v; differences %v; got %v", names, diffs, pv)

		var doc jsonPatches
		err = decodeJSON(pj.stdout, &doc, "patches")
		if err == nil {
			err = checkPatchKeys(pj.stdout)
		}
		diffs = nil
		byName := map[string]jsonPatch{}
		for _, p := range doc.Patches {
			byName[p.Name] = p
		}
		for _, p := range before {
			j, ok := byName[p.name]
			if !ok {
				diffs = append(diffs, p.name+" missing")
				continue
			}
			diffs = append(diffs, comparePatch(j, p)...)
		}
		if len(doc.Patches) != len(before) {
			diffs = append(diffs, fmt.Sprintf("%d patches in JSON, %d in sysfs", len(doc.Patches), len(before)))
		}
		r.expect(label+"-patches-json", pj.code == 0 && err == nil && len(diffs) == 0,
			"decode error %v; differences %v; got %v", err, diffs, pj)
		gotKgr := lines(gp.stdout)
		sort.Strings(gotKgr)
		r.expect(label+"-kgr-patches", gp.code == 0 && equalStrings(gotKgr, names),
			"kgr patches: want names %v; got %v", names, gp)
		return before
	}
}

// parseVerbosePatches parses the -v patches layout: a name at column 0,
// then "    key: value" lines; blocks separated by blank lines.
func parseVerbosePatches(s string) map[string]map[string]string {
	blocks := map[string]map[string]string{}
	var cur map[string]string
	for _, l := range strings.Split(s, "\n") {
		switch {
		case l == "":
		case !strings.HasPrefix(l, " "):
			cur = map[string]string{}
			blocks[l] = cur
		case cur != nil:
			k, v, _ := strings.Cut(strings.TrimSpace(l), ": ")
			cur[k] = v
		}
	}
	return blocks
}

func equalStrings(a, b []string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// isKthread reports PF_KTHREAD from /proc/<pid>/stat (field 9, flags).
func isKthread(t taskID) bool {
	b, err := os.ReadFile(taskPath(t, "stat"))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 7 {
		return false
	}
	flags, _ := strconv.ParseUint(f[6], 10, 64)
	return flags&0x00200000 != 0
}

// blockingWant describes the expected blocking set.
type blockingWant struct {
	tids    []int  // exactly these threads block (nil: none)
	stackFn string // a function each blocker's stack must show
}

// checkBlocking compares blocking (plain, -v, -vv, --json, and the kgr
// verbs) run as root with the kernel's patch_state files, and with the
// expected set of blocking threads. It returns the parsed JSON document.
func (r *runner) checkBlocking(label string, want blockingWant) jsonBlocking {
	var doc jsonBlocking
	for try := 1; ; try++ {
		k1 := kernelBlocking()
		name, target := kernelTransition()
		b0, b1, b2 := klp("blocking"), klp("-v", "blocking"), klp("-vv", "blocking")
		// A sleeping thread runs for a moment now and then: klp's state
		// must be one the kernel showed just before or just after.
		before := map[int]string{}
		for tid, t := range k1 {
			before[tid] = taskState(t)
		}
		bj := klp("--json", "-vv", "blocking")
		gb, gt, gv := kgr("blocking"), kgr("blocking_threads"), kgr("-v", "blocking")
		k2 := kernelBlocking()
		if !reflect.DeepEqual(sortedKeys(k1), sortedKeys(k2)) && try < retries {
			continue
		}
		kernelTids := sortedKeys(k1)
		wantTids := append([]int(nil), want.tids...)
		sort.Ints(wantTids)
		r.expect(label+"-blocking-kernel", equalInts(kernelTids, wantTids),
			"kernel patch_state files say %v block (transition %q target %d), the scenario expects %v",
			kernelTids, name, target, wantTids)

		gotTids := tidLines(b0.stdout)
		r.expect(label+"-blocking", b0.code == 0 && equalInts(gotTids, kernelTids),
			"want tids %v one per line; got %v", kernelTids, b0)

		// -v: "<tid> <cmdline>" or "<tid> [comm]" for kernel threads.
		var wantV []string
		for _, tid := range kernelTids {
			t := k1[tid]
			desc := cmdline(t.pid)
			if isKthread(t) || desc == "" {
				desc = "[" + comm(t) + "]"
			}
			wantV = append(wantV, fmt.Sprintf("%d %s", tid, desc))
		}
		if len(wantV) == 0 {
			wantV = []string{"no threads with klp_in_progress set"}
		}
		gotV := lines(b1.stdout)
		sort.Strings(gotV)
		sort.Strings(wantV)
		r.expect(label+"-blocking-v", b1.code == 0 && equalStrings(gotV, wantV),
			"want lines %q; got %v", wantV, b1)

		// -vv: the -v lines, each followed by the indented stack.
		ok := b2.code == 0
		var missing []string
		vvHeads := []string{}
		for _, l := range lines(b2.stdout) {
			if !strings.HasPrefix(l, " ") {
				vvHeads = append(vvHeads, l)
			}
		}
		sort.Strings(vvHeads)
		if !equalStrings(vvHeads, wantV) {
			ok = false
			missing = append(missing, "task lines differ from -v")
		}
		if want.stackFn != "" && len(kernelTids) > 0 && !strings.Contains(b2.stdout, "    ") {
			ok = false
			missing = append(missing, "no indented stack lines")
		}
		if want.stackFn != "" && !strings.Contains(b2.stdout, want.stackFn) {
			ok = false
			missing = append(missing, "stack lacks "+want.stackFn)
		}
		r.expect(label+"-blocking-vv", ok, "problems %v; got %v", missing, b2)

		// JSON.
		err := decodeJSON(bj.stdout, &doc, "transition", "tasks", "unreadable")
		var diffs []string
		if err == nil {
			if !sameTransition(doc.Transition, transitionJSON(name, target)) {
				diffs = append(diffs, fmt.Sprintf("transition %s, kernel %s", fmtTransition(doc.Transition), fmtTransition(transitionJSON(name, target))))
			}
			var jt []int
			for _, t := range doc.Tasks {
				jt = append(jt, t.TID)
				kt, ok := k1[t.TID]
				if !ok {
					continue
				}
				ps, _ := readInt(taskPath(kt, "patch_state"))
				if t.PID != kt.pid || t.Comm != comm(kt) || t.KernelThread != isKthread(kt) || t.PatchState != ps {
					diffs = append(diffs, fmt.Sprintf("task %d: klp pid %d comm %q kthread %v patch_state %d; kernel pid %d comm %q kthread %v patch_state %d",
						t.TID, t.PID, t.Comm, t.KernelThread, t.PatchState, kt.pid, comm(kt), isKthread(kt), ps))
				}
				if st := taskState(kt); t.State != st && t.State != before[t.TID] {
					diffs = append(diffs, fmt.Sprintf("task %d: state %q, kernel %q before klp and %q after", t.TID, t.State, before[t.TID], st))
				}
				wantCmd := cmdline(kt.pid)
				if isKthread(kt) {
					wantCmd = "[" + comm(kt) + "]"
				}
				if t.Cmdline != wantCmd {
					diffs = append(diffs, fmt.Sprintf("task %d: cmdline %q, want %q", t.TID, t.Cmdline, wantCmd))
				}
				if want.stackFn != "" && !strings.Contains(strings.Join(t.Stack, "\n"), want.stackFn) {
					diffs = append(diffs, fmt.Sprintf("task %d: stack %q lacks %s", t.TID, t.Stack, want.stackFn))
				}
				if t.StackError != nil {
					diffs = append(diffs, fmt.Sprintf("task %d: root got stack_error %q", t.TID, *t.StackError))
				}
			}
			sort.Ints(jt)
			if !equalInts(jt, kernelTids) {
				diffs = append(diffs, fmt.Sprintf("tids %v, kernel %v", jt, kernelTids))
			}
			if len(doc.Unreadable) > 0 {
				diffs = append(diffs, fmt.Sprintf("root sees unreadable tasks %v", doc.Unreadable))
			}
		}
		r.expect(label+"-blocking-json", bj.code == 0 && err == nil && len(diffs) == 0,
			"decode error %v; differences %v; got %v", err, diffs, bj)

		// kgr: blocking and blocking_threads list threads as klp does on
		// an upstream kernel (the kGraft forms need /sys/kernel/kgraft).
		gotGb, gotGt := tidLines(gb.stdout), tidLines(gt.stdout)
		gotGv := lines(gv.stdout)
		sort.Strings(gotGv)
		r.expect(label+"-kgr-blocking", gb.code == 0 && equalInts(gotGb, kernelTids) && gt.code == 0 && equalInts(gotGt, kernelTids) &&
			gv.code == 0 && equalStrings(gotGv, wantV),
			"kgr blocking and blocking_threads: want tids %v, kgr -v blocking: lines %q; got %v; %v; %v", kernelTids, wantV, gb, gt, gv)
		return doc
	}
}

// tidLines parses blocking's plain output, one thread id per line, sorted;
// a line that is not a number counts as -1.
func tidLines(out string) []int {
	var tids []int
	for _, l := range lines(out) {
		n, err := strconv.Atoi(l)
		if err != nil {
			n = -1
		}
		tids = append(tids, n)
	}
	sort.Ints(tids)
	return tids
}

// checkBlockingAsUser runs blocking as the unprivileged user while a
// transition is blocked. Root's tasks are unreadable to the user; klp must
// report them (JSON "unreadable", a note on stderr, exit 1) rather than
// print a silently incomplete list. ownTids are blocking threads that the
// user owns, which must be listed.
func (r *runner) checkBlockingAsUser(label string, rootBlocker int, ownTids []int) {
	plain, js, vv := klpUser("blocking"), klpUser("--json", "blocking"), klpUser("-vv", "blocking")
	var got []int
	for _, l := range lines(plain.stdout) {
		n, _ := strconv.Atoi(l)
		got = append(got, n)
	}
	sort.Ints(got)
	want := append([]int(nil), ownTids...)
	sort.Ints(want)
	r.expect(label+"-user-blocking", plain.code == 1 && strings.TrimSpace(plain.stderr) != "" && equalInts(got, want),
		"as uid %d: want the user's own blockers %v on stdout, a note on stderr about unreadable tasks, exit 1; got %v",
		userUID, want, plain)

	var doc jsonBlocking
	err := decodeJSON(js.stdout, &doc, "transition", "tasks", "unreadable")
	found := false
	var errs []string
	for _, u := range doc.Unreadable {
		if u.TID == rootBlocker {
			found = true
			errs = append(errs, u.Error)
		}
	}
	var jt []int
	for _, t := range doc.Tasks {
		jt = append(jt, t.TID)
	}
	sort.Ints(jt)
	r.expect(label+"-user-blocking-json", err == nil && (rootBlocker == 0 || found) && len(doc.Unreadable) > 0 &&
		equalInts(jt, want),
		"want root's blocking task %d in \"unreadable\" and tasks %v; decode error %v; got %v", rootBlocker, want, err, js)
	if found {
		r.note("unreadable-error", "%q", errs)
	}
	// -vv: the user's own blockers, each with a note instead of the stack
	// the user may not read, and exit 1.
	var vvTids []int
	for _, l := range lines(vv.stdout) {
		if f := strings.Fields(l); len(f) > 0 && !strings.HasPrefix(l, " ") {
			n, _ := strconv.Atoi(f[0])
			vvTids = append(vvTids, n)
		}
	}
	sort.Ints(vvTids)
	r.expect(label+"-user-blocking-vv", vv.code == 1 && equalInts(vvTids, want) && !strings.Contains(vv.stdout, "[<0>]") &&
		strings.TrimSpace(vv.stderr) != "",
		"as uid %d, -vv lists the user's own blockers %v without the kernel stacks it cannot read, notes the unreadable tasks on stderr and exits 1; got %v",
		userUID, want, vv)
	// With tasks left unread, "no threads with klp_in_progress set" would be
	// a false statement about the system: the kernel says some do. -v lists
	// the user's own blockers, as the kernel shows them, and exits 1.
	v := klpUser("-v", "blocking")
	var vTids []int
	for _, l := range lines(v.stdout) {
		if f := strings.Fields(l); len(f) > 0 {
			n, _ := strconv.Atoi(f[0])
			vTids = append(vTids, n)
		}
	}
	sort.Ints(vTids)
	r.expect(label+"-user-blocking-v-no-false-claim", v.code == 1 && equalInts(vTids, want) && strings.TrimSpace(v.stderr) != "" &&
		!strings.Contains(v.stdout, "no threads with klp_in_progress set"),
		"as uid %d with unreadable tasks (one of them blocking), -v lists the user's own blockers %v, notes the unreadable tasks, exits 1, and does not claim that no thread blocks; got %v",
		userUID, want, v)
}
