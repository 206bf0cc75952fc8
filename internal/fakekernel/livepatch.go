package fakekernel

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// patch is a struct klp_patch.
type patch struct {
	name    string
	mod     *module
	objs    []*object
	replace bool
	// replaceSet is the patch's replace set (Features.ReplaceSet).
	replaceSet uint32
	states     []State
	enabled    bool
	forced     bool
	onList     bool // on klp_patches (5.1+: enabled or in transition; pre-5.1: registered)
	sysfs      bool // /sys/kernel/livepatch/<name> exists
	objSysfs   bool // its object directories exist
}

// object is a struct klp_object.
type object struct {
	name        string // "vmlinux" or the module name
	funcs       []*function
	dynamic     bool // allocated for nops by an atomic-replace patch
	patched     bool
	prePatchErr error
}

// function is a struct klp_func.
type function struct {
	name   string
	sympos int
	nop    bool
}

func (f *function) dirName() string {
	pos := f.sympos
	if pos == 0 {
		pos = 1
	}
	return fmt.Sprintf("%s,%d", f.name, pos)
}

func (o *object) isVmlinux() bool { return o.name == "vmlinux" }

// loaded is klp_is_object_loaded.
func (k *Kernel) loaded(o *object) bool {
	return o.isVmlinux() || k.findMod(o.name) != nil
}

func (k *Kernel) onList() []*patch {
	var out []*patch
	for _, p := range k.patches {
		if p.onList {
			out = append(out, p)
		}
	}
	return out
}

// stackOrder computes stack_order_show: the 1-based position on the list,
// or the list length when the patch is no longer on it (the loop runs to
// the end without finding it).
func (k *Kernel) stackOrder(p *patch) int {
	n := 0
	for _, q := range k.onList() {
		n++
		if q == p {
			break
		}
	}
	return n
}

func (k *Kernel) newPatch(m *module) *patch {
	spec := m.spec.Livepatch
	p := &patch{name: m.name, mod: m, replace: spec.Replace && !k.f.Pre51, states: spec.States}
	if k.f.ReplaceSet {
		// Every patch replaces the patches of its set.
		p.replace, p.replaceSet = true, spec.ReplaceSet
	}
	if spec.ReplaceParam != "" && !k.f.Pre51 {
		for _, prm := range m.params {
			if prm.Name == spec.ReplaceParam {
				p.replace = prm.Value == "Y"
			}
		}
	}
	for _, o := range spec.Objects {
		obj := &object{name: objName(o.Name), prePatchErr: o.PrePatchErr}
		for _, f := range o.Funcs {
			obj.funcs = append(obj.funcs, &function{name: f.Name, sympos: f.Sympos})
		}
		p.objs = append(p.objs, obj)
	}
	m.patch = p
	return p
}

// replaces reports whether p, once its transition completes, replaces old:
// an atomic replace patch replaces every older patch, or with replace sets
// those of its own set.
func (k *Kernel) replaces(p, old *patch) bool {
	return p.replace && (!k.f.ReplaceSet || p.replaceSet == old.replaceSet)
}

// compatible is klp_is_patch_compatible (kernel/livepatch/state.c), and
// with replace sets the proposal's check that two sets share no function
// and no state id.
func (k *Kernel) compatible(p *patch) bool {
	for _, old := range k.onList() {
		if k.f.ReplaceSet && !k.replaces(p, old) {
			// Another set: nothing may be shared.
			if sharesWith(p, old) {
				return false
			}
			continue
		}
		for _, os := range old.states {
			var st *State
			for i := range p.states {
				if p.states[i].ID == os.ID {
					st = &p.states[i]
				}
			}
			if st == nil {
				if p.replace {
					return false
				}
				continue
			}
			if st.Version < os.Version {
				return false
			}
		}
	}
	return true
}

// sharesWith reports whether p and old change one function or declare
// one state id.
func sharesWith(p, old *patch) bool {
	for _, st := range p.states {
		if slices.ContainsFunc(old.states, func(o State) bool { return o.ID == st.ID }) {
			return true
		}
	}
	for _, o := range p.objs {
		for _, oo := range old.objs {
			if o.name != oo.name {
				continue
			}
			for _, f := range o.funcs {
				if slices.ContainsFunc(oo.funcs, func(of *function) bool { return of.name == f.name && of.sympos == f.sympos }) {
					return true
				}
			}
		}
	}
	return false
}

// addNops is klp_add_nops: for every function an older patch it replaces
// changes and this replace patch does not, add a nop (and a dynamic object
// if needed).
func (k *Kernel) addNops(p *patch) {
	for _, old := range k.onList() {
		if old == p || !k.replaces(p, old) {
			continue
		}
		for _, oo := range old.objs {
			var obj *object
			for _, o := range p.objs {
				if o.name == oo.name {
					obj = o
				}
			}
			if obj == nil {
				obj = &object{name: oo.name, dynamic: true}
				p.objs = append(p.objs, obj)
			}
			for _, of := range oo.funcs {
				found := false
				for _, f := range obj.funcs {
					if f.name == of.name && f.sympos == of.sympos {
						found = true
					}
				}
				if !found {
					obj.funcs = append(obj.funcs, &function{name: of.name, sympos: of.sympos, nop: true})
				}
			}
		}
	}
}

// resolve is klp_init_object_loaded's symbol lookup
// (klp_find_object_symbol), with the kernel's messages.
func (k *Kernel) resolve(o *object) error {
	for _, f := range o.funcs {
		n, ok := k.symbols[o.name+"\x00"+f.name]
		if !ok {
			n = 1
		}
		objname := o.name
		if o.isVmlinux() {
			objname = "(null)" // the kernel prints the NULL objname for vmlinux
		}
		switch {
		case n <= 0:
			k.klp(lvlErr, "symbol '%s' not found in symbol table", f.name)
			return unix.EINVAL
		case n > 1 && f.sympos == 0:
			k.klp(lvlErr, "unresolvable ambiguity for symbol '%s' in object '%s'", f.name, objname)
			return unix.EINVAL
		case f.sympos > n:
			k.klp(lvlErr, "symbol position %d for symbol '%s' in object '%s' not found", f.sympos, f.name, o.name)
			return unix.EINVAL
		}
	}
	return nil
}

// patchObject is klp_patch_object: register the ftrace handlers. A
// function some other listed patch already patches shares its ftrace ops,
// so only new functions can fail.
func (k *Kernel) patchObject(p *patch, o *object) error {
	for _, f := range o.funcs {
		if k.ftraceRegistered(p, o.name, f.name) {
			continue
		}
		if !k.ftraceEnabled || k.ipmodify[f.name] {
			k.klp(lvlErr, "failed to register ftrace handler for function '%s' (%d)", f.name, -int(unix.EBUSY))
			return unix.EBUSY
		}
	}
	o.patched = true
	return nil
}

func (k *Kernel) ftraceRegistered(self *patch, obj, fn string) bool {
	for _, p := range k.onList() {
		if p == self {
			continue
		}
		for _, o := range p.objs {
			if o.name == obj && o.patched && slices.ContainsFunc(o.funcs, func(f *function) bool { return f.name == fn }) {
				return true
			}
		}
	}
	return false
}

// klpEnablePatch is klp_enable_patch (5.1+), called from the module's init.
func (k *Kernel) klpEnablePatch(m *module) error {
	p := k.newPatch(m)
	if !k.compatible(p) {
		k.klp(lvlErr, "Livepatch patch (%s) is not compatible with the already installed livepatches.", m.name)
		m.patch = nil
		return unix.EINVAL
	}
	m.refcnt++ // try_module_get
	// klp_init_patch: the directory appears, nops are added, objects are
	// initialised, the patch goes on the list.
	k.patches = append(k.patches, p)
	p.sysfs, p.objSysfs = true, true
	if p.replace {
		k.addNops(p)
	}
	for _, o := range p.objs {
		if k.loaded(o) {
			if err := k.resolve(o); err != nil {
				k.freePatchNow(p)
				return err
			}
		}
	}
	p.onList = true
	if err := k.enablePatch(p); err != nil {
		k.freePatchNow(p)
		return err
	}
	return nil
}

// enablePatch is __klp_enable_patch (both API generations).
func (k *Kernel) enablePatch(p *patch) error {
	if k.trans != nil {
		return unix.EBUSY
	}
	if k.f.Pre51 {
		// enforce stacking: only the first disabled patch can be enabled
		list := k.onList()
		if i := slices.Index(list, p); i > 0 && !list[i-1].enabled {
			return unix.EBUSY
		}
		p.mod.refcnt++ // the reference is taken at enable before 5.1
	}
	k.klp(lvlNotice, "enabling patch '%s'", p.name)
	k.initTransition(p, statePatched)
	for _, o := range p.objs {
		if !k.loaded(o) {
			continue
		}
		if o.prePatchErr != nil {
			k.klp(lvlWarn, "pre-patch callback failed for object '%s'", o.name)
			return k.cancelEnable(p, o.prePatchErr)
		}
		if err := k.patchObject(p, o); err != nil {
			k.klp(lvlWarn, "failed to patch object '%s'", o.name)
			return k.cancelEnable(p, err)
		}
	}
	k.startTransition()
	p.enabled = true
	if k.opts.SwitchOnStart {
		k.tryComplete()
	}
	return nil
}

func (k *Kernel) cancelEnable(p *patch, err error) error {
	k.klp(lvlWarn, "failed to enable patch '%s'", p.name)
	k.klpDebug("'%s': canceling patching transition, going to unpatch", p.name)
	k.target = stateUnpatched
	k.completeTransition() // pre-5.1 this also drops the reference taken above
	return err
}

// freePatchNow undoes klp_init_patch synchronously (the error path of
// klp_enable_patch: klp_free_patch_start + klp_free_patch_finish).
func (k *Kernel) freePatchNow(p *patch) {
	k.removePatch(p)
	if !k.f.Pre51 && !p.forced {
		p.mod.refcnt--
	}
	p.mod.patch = nil
}

// removePatch takes p off the list and out of sysfs.
func (k *Kernel) removePatch(p *patch) {
	p.onList, p.sysfs, p.objSysfs = false, false, false
	k.patches = slices.DeleteFunc(k.patches, func(q *patch) bool { return q == p })
}

// klpRegisterAndEnable is what a pre-5.1 patch module's init does:
// klp_register_patch (sysfs appears, disabled) then klp_enable_patch; on
// failure it unregisters.
func (k *Kernel) klpRegisterAndEnable(m *module) error {
	p := k.newPatch(m)
	k.patches = append(k.patches, p)
	p.sysfs, p.objSysfs, p.onList = true, true, true
	for _, o := range p.objs {
		if k.loaded(o) {
			if err := k.resolve(o); err != nil {
				k.removePatch(p)
				m.patch = nil
				return err
			}
		}
	}
	if err := k.enablePatch(p); err != nil {
		k.removePatch(p)
		m.patch = nil
		return err
	}
	return nil
}

// disablePatch is __klp_disable_patch.
func (k *Kernel) disablePatch(p *patch) error {
	if k.trans != nil {
		return unix.EBUSY
	}
	if k.f.Pre51 {
		// enforce stacking: only the last enabled patch can be disabled
		list := k.onList()
		if i := slices.Index(list, p); i >= 0 && i+1 < len(list) && list[i+1].enabled {
			return unix.EBUSY
		}
	}
	if k.f.SUSESupport {
		// klp_taint_kernel() of SUSE's kernels.
		k.klp(lvlWarn, "attempt to disable live patch %s, setting NO_SUPPORT taint flag", p.name)
		k.tainted |= TaintNoSupport
	}
	k.initTransition(p, stateUnpatched)
	k.startTransition()
	p.enabled = false
	if k.opts.SwitchOnStart {
		k.tryComplete()
	}
	return nil
}

func direction(state int) string {
	if state == statePatched {
		return "patching"
	}
	return "unpatching"
}

// initTransition is klp_init_transition: every task gets the initial state.
func (k *Kernel) initTransition(p *patch, target int) {
	k.trans = p
	k.target = target
	k.idleForced = false
	k.klpDebug("'%s': initializing %s transition", p.name, direction(target))
	initial := 1 - target
	for _, t := range k.tasks {
		k.setState(t, initial)
	}
}

// startTransition is klp_start_transition.
func (k *Kernel) startTransition() {
	k.klp(lvlNotice, "'%s': starting %s transition", k.trans.name, direction(k.target))
	k.signals = 0
}

// reverse is klp_reverse_transition.
func (k *Kernel) reverse() {
	from, to := "patching", "unpatching"
	if k.target == stateUnpatched {
		from, to = to, from
	}
	k.klpDebug("'%s': reversing transition from %s to %s", k.trans.name, from, to)
	k.trans.enabled = !k.trans.enabled
	k.target = 1 - k.target
	k.startTransition()
}

// blocks reports whether t cannot switch for the current transition (see
// stuck): it is blocked outright, sleeps in a function of a patched object
// of the transition patch (klp_check_stack), under a BPF trampoline, or
// runs.
func (k *Kernel) blocks(t *task) bool { return k.stuck(t) != "" }

// tryComplete is klp_try_complete_transition.
func (k *Kernel) tryComplete() {
	if k.trans == nil {
		return
	}
	complete := true
	for _, t := range k.tasks {
		if t.state == k.target {
			continue
		}
		if why := k.stuck(t); why != "" {
			complete = false
			k.logStuck(t, why)
			continue
		}
		k.setState(t, k.target)
	}
	if k.holdIdle && !k.idleForced {
		complete = false
	}
	if !complete {
		if !k.f.Pre51 && k.signals > 0 && k.signals%15 == 0 {
			k.sendSignals(k.signals == 15)
		}
		k.signals++
		return
	}
	p := k.trans
	k.completeTransition()
	if !p.enabled {
		k.freePatchAsync(p)
	} else if p.replace {
		for _, old := range k.onList() {
			if old == p {
				break
			}
			if k.replaces(p, old) {
				k.freePatchAsync(old)
			}
		}
	}
}

// sendSignals is klp_send_signals. Unblocked user tasks with a pending
// switch take it on their way back to user space; blocked ones (sleeping
// in a patched function in the kernel) and kthreads stay where they are.
func (k *Kernel) sendSignals(first bool) {
	if first || k.f.Pre51 {
		k.klp(lvlNotice, "signaling remaining tasks")
	}
	for _, t := range k.tasks {
		if t.state != k.target && !t.Kthread && !k.blocks(t) {
			k.setState(t, k.target)
		}
	}
}

// completeTransition is klp_complete_transition.
func (k *Kernel) completeTransition() {
	p := k.trans
	k.klpDebug("'%s': completing %s transition", p.name, direction(k.target))
	if p.replace && k.target == statePatched {
		for _, old := range k.onList() {
			if old == p {
				break
			}
			if !k.replaces(p, old) {
				continue
			}
			old.enabled = false
			for _, o := range old.objs {
				o.patched = false
			}
		}
		// klp_discard_nops
		var objs []*object
		for _, o := range p.objs {
			if o.dynamic {
				continue
			}
			o.funcs = slices.DeleteFunc(o.funcs, func(f *function) bool { return f.nop })
			objs = append(objs, o)
		}
		p.objs = objs
	}
	if k.target == stateUnpatched {
		for _, o := range p.objs {
			o.patched = false
		}
	}
	for _, t := range k.tasks {
		k.setState(t, stateIdle)
	}
	k.klp(lvlNotice, "'%s': %s complete", p.name, direction(k.target))
	if k.f.Pre51 && k.target == stateUnpatched && !k.klpForced {
		p.mod.refcnt-- // pre-5.1: module_put when unpatching completes
	}
	k.target = stateIdle
	k.trans = nil
}

// freePatchAsync is klp_free_patch_async: off the list and its objects'
// directories gone now (klp_free_patch_start), the patch directory and the
// module reference when the work runs (klp_free_patch_finish).
func (k *Kernel) freePatchAsync(p *patch) {
	if k.f.Pre51 {
		return // the patch stays registered until its module is removed
	}
	p.onList = false
	p.objSysfs = false
	k.work = append(k.work, func() {
		k.removePatch(p)
		if p.forced {
			return
		}
		if d := k.opts.ReleaseDelay; d > 0 {
			// module_put comes after the directory's kobject_put: let
			// the fake's clock show the moment in between.
			k.clock.after(d, func() {
				k.mu.Lock()
				defer k.mu.Unlock()
				p.mod.refcnt--
				k.sync()
			})
			return
		}
		p.mod.refcnt--
	})
}

// force is klp_force_transition.
func (k *Kernel) force() {
	k.klp(lvlWarn, "forcing remaining tasks to the patched state")
	for _, t := range k.tasks {
		if t.state != k.target {
			k.setState(t, k.target)
		}
	}
	k.idleForced = true
	switch {
	case k.f.Pre51:
		k.klpForced = true
	case k.f.ForceMarksAll:
		for _, p := range k.onList() {
			p.forced = true
		}
	case k.target == stateUnpatched:
		k.trans.forced = true
	case k.trans.replace:
		for _, p := range k.onList() {
			if p != k.trans && k.replaces(k.trans, p) {
				p.forced = true
			}
		}
	}
}

// klpModuleComing is klp_module_coming for a loading module.
func (k *Kernel) klpModuleComing(name string) error {
	type done struct {
		p *patch
		o *object
	}
	var applied []done
	for _, p := range k.onList() {
		for _, o := range p.objs {
			if o.name != name {
				continue
			}
			fail := func(err error) error {
				k.klp(lvlWarn, "patch '%s' failed for module '%s', refusing to load module '%s'", p.name, name, name)
				for _, d := range applied {
					k.klp(lvlNotice, "reverting patch '%s' on unloading module '%s'", d.p.name, name)
					d.o.patched = false
				}
				return err
			}
			if err := k.resolve(o); err != nil {
				k.klp(lvlWarn, "failed to initialize patch '%s' for module '%s' (%d)", p.name, name, -int(err.(unix.Errno)))
				return fail(err)
			}
			if k.f.Pre51 && !p.enabled {
				break
			}
			k.klp(lvlNotice, "applying patch '%s' to loading module '%s'", p.name, name)
			if o.prePatchErr != nil {
				k.klp(lvlWarn, "pre-patch callback failed for object '%s'", name)
				return fail(o.prePatchErr)
			}
			if err := k.patchObject(p, o); err != nil {
				k.klp(lvlWarn, "failed to apply patch '%s' to module '%s' (%d)", p.name, name, -int(unix.EBUSY))
				return fail(err)
			}
			applied = append(applied, done{p, o})
			break
		}
	}
	return nil
}

// klpModuleGoing is klp_module_going for an unloading module.
func (k *Kernel) klpModuleGoing(name string) {
	for _, p := range k.onList() {
		for _, o := range p.objs {
			if o.name != name || !o.patched {
				continue
			}
			k.klp(lvlNotice, "reverting patch '%s' on unloading module '%s'", p.name, name)
			o.patched = false
		}
	}
}
