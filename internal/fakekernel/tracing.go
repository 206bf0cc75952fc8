package fakekernel

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/klp-project/klp/kernel"
	"golang.org/x/sys/unix"
)

// The other users of a function's entry: BPF programs (the bpf(2) view
// and their trampolines), kprobes, and what tracefs, debugfs and the task
// stacks show of them. docs/fakekernel.md says what is modelled.

// BPFProgram is a BPF program a test attaches to a kernel function.
type BPFProgram struct {
	Name string
	// Attach is kernel.AttachFentry, AttachFexit, AttachFmodRet,
	// AttachLSM, AttachKprobe or AttachKretprobe.
	Attach string
	// Object is "vmlinux" ("" means vmlinux) or a module; Function the
	// function.
	Object, Function string
	// Override: a kprobe program that calls bpf_override_return().
	Override bool
}

// bpfLink is one attached program.
type bpfLink struct {
	BPFProgram
	id, progID uint32
}

// AttachBPF attaches a program and returns its link's id. A program that
// runs in a trampoline and calls the function (fexit, fmod_ret, LSM) stays
// on the stack of a task sleeping in the function: the stack file shows
// the trampoline instead of the function, and the kernel cannot check the
// task (an unreliable stack) unless Features.TrampolineUnwind.
func (k *Kernel) AttachBPF(p BPFProgram) uint32 {
	k.mu.Lock()
	defer k.mu.Unlock()
	if p.Object == "" {
		p.Object = "vmlinux"
	}
	k.nextBPF++
	l := &bpfLink{BPFProgram: p, id: k.nextBPF, progID: k.nextBPF + 100}
	k.bpf = append(k.bpf, l)
	for _, t := range k.tasks {
		k.writeTask(t)
	}
	k.sync()
	return l.id
}

// DetachBPF detaches the program of a link.
func (k *Kernel) DetachBPF(id uint32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.bpf = slices.DeleteFunc(k.bpf, func(l *bpfLink) bool { return l.id == id })
	for _, t := range k.tasks {
		k.writeTask(t)
	}
	k.sync()
}

// InjectBPFError makes listing the BPF programs fail with err (EPERM for
// a caller without CAP_SYS_ADMIN); nil undoes it.
func (k *Kernel) InjectBPFError(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.bpfErr = err
}

// BPFLinks implements kernel.BPFReader: what bpf(2) lists.
func (k *Kernel) BPFLinks() ([]kernel.BPFLink, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.bpfErr != nil {
		return nil, k.bpfErr
	}
	var out []kernel.BPFLink
	for _, l := range k.bpf {
		kl := kernel.BPFLink{ID: l.id, ProgramID: l.progID, Program: l.Name, Attach: l.Attach,
			Object: l.Object, Function: l.Function, Override: l.Override}
		if kl.UsesTrampoline() {
			kl.Trampoline = k.trampoline(l.Object, l.Function)
		}
		out = append(out, kl)
	}
	return out, nil
}

// trampoline names the trampoline of a function: vmlinux's BTF object is
// 1, a module's 2 and up; type ids are made up, one per function.
func (k *Kernel) trampoline(object, fn string) string {
	key := object + "\x00" + fn
	id, ok := k.btfIDs[key]
	if !ok {
		id = uint32(60000 + len(k.btfIDs))
		k.btfIDs[key] = id
	}
	obj := uint32(1)
	if object != "vmlinux" {
		obj = 2
	}
	return kernel.TrampolineName(obj, id)
}

// onStack reports the trampoline that replaces fn's frame on a sleeping
// task's stack, if any: a program that calls the function.
func (k *Kernel) onStack(fn string) (string, bool) {
	for _, l := range k.bpf {
		if l.Function == fn && l.Object == "vmlinux" && l.Attach != kernel.AttachFentry && usesTrampoline(l.Attach) {
			return k.trampoline(l.Object, l.Function), true
		}
	}
	return "", false
}

// usesTrampoline reports whether an attach kind runs in a trampoline.
func usesTrampoline(attach string) bool { return kernel.BPFLink{Attach: attach}.UsesTrampoline() }

// Kprobe is a kprobe a test registers on a function's entry.
type Kprobe struct {
	Object, Function string
	// Post: the probe has a post_handler, which makes it an IPMODIFY
	// ftrace user.
	Post bool
}

// AddKprobe registers a kprobe as register_kprobe() does: one with a
// post_handler on a function a live patch redirects fails with EBUSY
// (seen on 6.1 and 6.12), and makes a later patch of the function fail.
func (k *Kernel) AddKprobe(p Kprobe) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if p.Object == "" {
		p.Object = "vmlinux"
	}
	if p.Post && k.patchedFunction(p.Object, p.Function) {
		return fmt.Errorf("register_kprobe: %w", unix.EBUSY)
	}
	k.kprobes = append(k.kprobes, p)
	if p.Post {
		k.ipmodify[p.Function] = true
	}
	k.sync()
	return nil
}

// RemoveKprobes unregisters the kprobes on a function.
func (k *Kernel) RemoveKprobes(function string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.kprobes = slices.DeleteFunc(k.kprobes, func(p Kprobe) bool { return p.Function == function })
	delete(k.ipmodify, function)
	k.sync()
}

// patchedFunction reports whether a patch on the list redirects fn.
func (k *Kernel) patchedFunction(object, fn string) bool {
	for _, p := range k.onList() {
		for _, o := range p.objs {
			if o.name == object && o.patched && slices.ContainsFunc(o.funcs, func(f *function) bool { return f.name == fn }) {
				return true
			}
		}
	}
	return false
}

// SetRunning makes a task run (state R) instead of sleep: a kernel thread
// that loops without sleeping. The kernel's once-a-second check finds it
// running and cannot switch it; on Features.CondReschedSwitch kernels
// (6.4 to 6.15) its cond_resched() switches it at the next Tick. (Being
// caught off the CPU, which on a real machine eventually happens, is not
// modelled.)
func (k *Kernel) SetRunning(tid int, running bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if t := k.taskMap[tid]; t != nil {
		t.running = running
		k.writeTask(t)
	}
}

// stuck says why the kernel cannot switch t in the current transition,
// as klp_try_switch_task would log it: "unreliable", "running",
// "sleeping:<function>", "blocked" (BlockTask without functions: no
// reason is logged), or "" when it can.
func (k *Kernel) stuck(t *task) string {
	if !k.f.TrampolineUnwind {
		for _, f := range t.blockedOn {
			if _, ok := k.onStack(f); ok {
				return "unreliable"
			}
		}
	}
	if t.running && t.Kthread && !k.f.CondReschedSwitch {
		return "running"
	}
	if t.blockAll {
		return "blocked"
	}
	for _, o := range k.trans.objs {
		if !o.patched {
			continue
		}
		for _, f := range o.funcs {
			if slices.Contains(t.blockedOn, f.name) {
				return "sleeping:" + f.name
			}
		}
	}
	return ""
}

// logStuck is klp_try_switch_task's pr_debug for a task it could not
// switch, printed with DynamicDebug.
func (k *Kernel) logStuck(t *task, why string) {
	switch {
	case why == "unreliable":
		k.klpDebug("klp_try_switch_task: %s:%d has an unreliable stack", t.Comm, t.TID)
	case why == "running":
		k.klpDebug("klp_try_switch_task: %s:%d is running", t.Comm, t.TID)
	case strings.HasPrefix(why, "sleeping:"):
		k.klpDebug("klp_try_switch_task: %s:%d is sleeping on function %s", t.Comm, t.TID, strings.TrimPrefix(why, "sleeping:"))
	}
}

// renderTracing adds tracefs's enabled_functions, debugfs's kprobes/list
// and dynamic_debug/control to the files sync writes (Options.Tracefs).
func (k *Kernel) renderTracing(file func(p, content string, mode os.FileMode)) {
	type user struct {
		regs, ipmodify, direct bool
		count                  int
		direct2                string
		handler                string
	}
	users := map[[2]string]*user{}
	get := func(obj, fn string) *user {
		key := [2]string{obj, fn}
		if users[key] == nil {
			users[key] = &user{}
		}
		return users[key]
	}
	for _, p := range k.onList() {
		for _, o := range p.objs {
			if !o.patched {
				continue
			}
			for _, f := range o.funcs {
				u := get(o.name, f.name)
				if !u.ipmodify {
					u.ipmodify, u.count, u.handler = true, u.count+1, "klp_ftrace_handler+0x0/0x100"
				}
			}
		}
	}
	for _, p := range k.kprobes {
		u := get(p.Object, p.Function)
		u.regs, u.count, u.handler = true, u.count+1, "kprobe_ftrace_handler+0x0/0x180"
		if p.Post {
			u.ipmodify = true
		}
	}
	for fn, on := range k.ipmodify {
		if on && !slices.ContainsFunc(k.kprobes, func(p Kprobe) bool { return p.Function == fn }) {
			u := get("vmlinux", fn)
			u.regs, u.ipmodify, u.count, u.handler = true, true, u.count+1, "kprobe_ftrace_handler+0x0/0x180"
		}
	}
	for _, l := range k.bpf {
		if !usesTrampoline(l.Attach) {
			continue
		}
		u := get(l.Object, l.Function)
		if !u.direct {
			u.regs, u.direct, u.count, u.handler = true, true, u.count+1, "call_direct_funcs+0x0/0x20"
			u.direct2 = k.trampoline(l.Object, l.Function)
		}
	}
	keys := make([][2]string, 0, len(users))
	for key := range users {
		keys = append(keys, key)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i][1] < keys[j][1] || keys[i][1] == keys[j][1] && keys[i][0] < keys[j][0]
	})
	flag := func(on bool, letter string) string {
		if on {
			return " " + letter
		}
		return "  "
	}
	var ef strings.Builder
	for _, key := range keys {
		u := users[key]
		name := key[1]
		if key[0] != "vmlinux" {
			name += " [" + key[0] + "]"
		}
		// 6.1 prints R, I and D; 6.12 also O (call ops, arm64) and M.
		more := ""
		if k.f.ModifiedFlag {
			more = "     "
			if u.ipmodify || u.direct {
				more = "   M "
			}
		}
		fmt.Fprintf(&ef, "%s (%d)%s%s%s%s", name, u.count, flag(u.regs, "R"), flag(u.ipmodify, "I"), flag(u.direct, "D"), more)
		if u.count > 1 {
			ef.WriteString(" ->arch_ftrace_ops_list_func+0x0/0x1d0")
		} else {
			fmt.Fprintf(&ef, "\ttramp: ftrace_regs_caller+0x0/0x65 (%s)", u.handler)
		}
		if u.direct {
			fmt.Fprintf(&ef, "\n\tdirect-->%s+0x0/0xd8", u.direct2)
		}
		ef.WriteString("\n")
	}
	tracing := filepath.Join(k.sys, "kernel", "tracing")
	file(filepath.Join(tracing, "enabled_functions"), ef.String(), 0o444)
	var kl strings.Builder
	for i, p := range k.kprobes {
		mod := ""
		if p.Object != "vmlinux" {
			mod = "  " + p.Object
		}
		fmt.Fprintf(&kl, "ffffffff8123%04x  k  %s+0x0%s    [FTRACE]\n", i*16, p.Function, mod)
	}
	debug := filepath.Join(k.sys, "kernel", "debug")
	file(filepath.Join(debug, "kprobes", "list"), kl.String(), 0o444)
	flags := "=_"
	if k.opts.DynamicDebug {
		flags = "=p"
	}
	var dd strings.Builder
	for i, msg := range []string{`%s: %s:%d is running\012`, `%s: %s:%d has an unreliable stack\012`,
		`%s: %s:%d is sleeping on function %s\012`, `%s: Unknown error code (%d) when trying to switch %s:%d\012`} {
		fmt.Fprintf(&dd, "kernel/livepatch/transition.c:%d [livepatch]klp_try_switch_task %s \"%s\"\n", 345+4*i, flags, msg)
	}
	file(filepath.Join(debug, "dynamic_debug", "control"), dd.String(), 0o644)
}
