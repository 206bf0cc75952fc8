package modinfo

import (
	"bytes"
	"debug/elf"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Livepatch ELF constants (include/uapi/linux/elf.h).
const (
	shfRelaLivepatch = 0x00100000               // SHF_RELA_LIVEPATCH, a section flag
	shnLivepatch     = elf.SectionIndex(0xff20) // SHN_LIVEPATCH, a symbol section index
)

// maxDataRelocs bounds the relocations followed to find klp_func arrays. A
// livepatch has a few dozen; a module with more is not worth the memory.
const maxDataRelocs = 1 << 20

// ksymNameLen is KSYM_NAME_LEN since 6.1; longer strings are not symbols.
const ksymNameLen = 512

// Targets is what a livepatch says it patches. Nothing here is checked
// against a running kernel.
type Targets struct {
	// Objects are the patched objects ("vmlinux" or a module name), in the
	// order first seen, each with the places it was seen.
	Objects []TargetObject
	// Functions are the functions the patch replaces.
	Functions []Target
	// Symbols are the .klp.sym symbols: symbols in target objects that the
	// replacement code refers to and the kernel resolves at load time (they
	// are not replaced, but must exist at that sympos).
	Symbols []KlpSymbol
	// Relocations are the .klp.rela sections.
	Relocations []KlpRelocation
	// Replace is klp_patch.replace (atomic replace) as statically initialized
	// in the file, or nil when no static struct klp_patch was found (a
	// klp-build module has none: its init code sets replace). A module
	// may still change it in its init function (the kernel selftests set it
	// from a module parameter); the loaded value is in
	// /sys/kernel/livepatch/<name>/replace (6.11+).
	Replace *bool
	// ReplaceSet is the same member read as the unsigned int that the
	// proposed replace sets make of it (klp_patch.replace_set, at the
	// place of replace; docs/kernel-notes.md): the patch's replace set for
	// a module built for a kernel with replace sets, 0 or 1 (as Replace)
	// for any other. nil when Replace is.
	ReplaceSet *uint32
	// States are the klp_state entries of the static struct klp_patch
	// (5.5+): the system state ids (and versions) the patch declares;
	// empty when it declares none. nil when they are unknown: no static
	// struct klp_patch, or an array klp could not read (a note says why).
	States []KlpState
	// Undetermined, when set, says why Functions could not be determined
	// (Functions is then empty or partial). klp does not guess.
	Undetermined string
	// Notes are other observations about the patch structures.
	Notes []string
}

// Source says where a target was found.
type Source string

// Sources of target information, from the most to the least direct.
const (
	// SourceKlpFunc: a struct klp_func entry (old_name, new_func,
	// old_sympos) reached through the data relocations.
	SourceKlpFunc Source = "klp_func"
	// SourceKlpObject: a struct klp_object entry (name, funcs).
	SourceKlpObject Source = "klp_object"
	// SourceKpatch: kpatch-build's .kpatch.funcs section.
	SourceKpatch Source = "kpatch_funcs"
	// SourceKlpBuild: klp-build's klp_object_ext and klp_func_ext entries
	// (the __klp_objects or .init.klp_objects section and the arrays its
	// entries point at), from which the module's init code builds its
	// klp_patch (Linux 6.19+).
	SourceKlpBuild Source = "klp-build"
	// SourceKlpRela: a .klp.rela.<obj>.<section> section name.
	SourceKlpRela Source = "klp_rela"
	// SourceKlpSym: a .klp.sym.<obj>.<name>,<pos> symbol name.
	SourceKlpSym Source = "klp_sym"
)

// KlpBuild reports whether the targets were read from klp-build's layout
// (see [SourceKlpBuild]): such a module is an atomic replace patch unless it
// was built with klp-build --no-replace, which its file does not record.
func (t *Targets) KlpBuild() bool {
	for _, o := range t.Objects {
		if slices.Contains(o.Sources, SourceKlpBuild) {
			return true
		}
	}
	return false
}

// TargetObject is an object the patch applies to.
type TargetObject struct {
	Name    string // "vmlinux" or a module name
	Sources []Source
}

// Target is one replaced function.
type Target struct {
	Object   string
	Function string
	// Sympos is klp_func.old_sympos: the 1-based position of Function among
	// the same-named symbols of Object in kallsyms order, or 0 for "must be
	// unique".
	Sympos uint64
	Source Source
}

// SysfsName is the function's directory name under
// /sys/kernel/livepatch/<patch>/<object>/: "name,sympos", sympos 0 shown as 1.
func (t Target) SysfsName() string {
	return t.Function + "," + strconv.FormatUint(max(t.Sympos, 1), 10)
}

// KlpState is one struct klp_state: a system state the patch declares.
// Patches of different replace sets may not use the same ID (the proposed
// replace sets); an atomic replace patch must carry every state ID the
// patches it replaces use, in a version at least as new (5.5+).
type KlpState struct {
	ID      uint64
	Version uint32
}

// KlpSymbol is a symbol named .klp.sym.<Object>.<Name>,<Sympos>.
type KlpSymbol struct {
	Object string
	Name   string
	Sympos uint64
}

// KlpRelocation is a .klp.rela.<Object>.<...> section.
type KlpRelocation struct {
	Section string
	Object  string
	// Applies is the name of the section the relocations patch (sh_info).
	Applies string
	Count   int
}

// abs64 is the 64-bit absolute relocation type per machine: what a pointer
// in initialized data gets.
var abs64 = map[elf.Machine]uint32{
	elf.EM_X86_64:    uint32(elf.R_X86_64_64),
	elf.EM_AARCH64:   uint32(elf.R_AARCH64_ABS64),
	elf.EM_PPC64:     uint32(elf.R_PPC64_ADDR64),
	elf.EM_S390:      uint32(elf.R_390_64),
	elf.EM_LOONGARCH: uint32(elf.R_LARCH_64),
	elf.EM_RISCV:     uint32(elf.R_RISCV_64),
}

// pointer is where a relocated data word points.
type pointer struct {
	sec int    // target section index, or -1 for a symbol outside sections
	off uint64 // offset in sec
	sym string // the relocation's symbol name
}

type secOff struct {
	sec int
	off uint64
}

// targetFinder holds the state of one findTargets run.
type targetFinder struct {
	f     *elfFile
	syms  []symbol
	ptrs  map[int]map[uint64]pointer // data section -> offset -> pointer
	data  map[int][]byte
	t     *Targets
	objIx map[string]int // Objects index by name
	// objSize maps the start of each sized STT_OBJECT symbol to its size.
	objSize map[secOff]uint64
}

// findTargets collects the patch targets from the places they show up in a
// livepatch module: klp_func/klp_object arrays
// reached through relocations, klp-build's klp_object_ext section,
// kpatch-build's .kpatch.funcs, .klp.rela section names, and .klp.sym
// symbol names. It returns nil for an ordinary module.
func findTargets(f *elfFile, m *Module) *Targets {
	tf := &targetFinder{f: f, t: &Targets{}, objIx: map[string]int{}}
	t := tf.t
	syms, symErr := f.symbols()
	tf.syms = syms

	tf.klpRelas()
	tf.klpSyms()
	if !m.Livepatch && len(t.Relocations) == 0 && len(t.Symbols) == 0 && !hasKlpBuildSections(f) {
		return nil
	}
	if !m.Livepatch {
		t.Notes = append(t.Notes, "livepatch ELF sections or symbols without the livepatch modinfo tag: the kernel refuses such a module")
	}

	var why, klpBuildWhy string
	typ, known := abs64[f.Machine]
	switch {
	case symErr != nil:
		why = "cannot read .symtab: " + symErr.Error()
	case len(syms) == 0:
		why = "module has no .symtab, so the klp_func arrays cannot be followed through relocations"
	case !known:
		why = fmt.Sprintf("klp does not know the pointer relocation type of %v", f.Machine)
	default:
		if why = tf.collectPointers(typ); why == "" {
			klpBuildWhy = tf.klpBuild()
			why = tf.relocTargets(m.Vermagic)
		}
	}
	tf.kpatchFuncs()
	// Objects in the patch's own order first, then those only named by the
	// livepatch ELF sections and symbols.
	for _, r := range t.Relocations {
		if r.Object != "" {
			tf.addObject(r.Object, SourceKlpRela)
		}
	}
	for _, s := range t.Symbols {
		tf.addObject(s.Object, SourceKlpSym)
	}
	if klpBuildWhy != "" {
		// The klp-build layout was there and broken: say so, whatever else
		// was found (Functions then holds the entries read before it).
		t.Undetermined = klpBuildWhy
		if why != "" {
			tf.note(why)
		}
	} else if len(t.Functions) == 0 {
		if why == "" {
			why = "no klp_func array (an old_name string pointer followed by a new_func code pointer) was found through the data relocations, nor a .kpatch.funcs section; the module may build its klp_func entries at run time"
		}
		t.Undetermined = why
	} else if why != "" {
		t.Notes = append(t.Notes, why)
	}
	// Objects that only appear in .klp.rela/.klp.sym have functions we did
	// not see (or none: a patch may only need relocations there).
	withFuncs := map[string]bool{}
	for _, fn := range t.Functions {
		withFuncs[fn.Object] = true
	}
	for _, o := range t.Objects {
		// klp-build entries count their functions: klpBuild noted an
		// object without any.
		if !withFuncs[o.Name] && len(t.Functions) > 0 && !slices.Contains(o.Sources, SourceKlpBuild) {
			tf.note(fmt.Sprintf("object %s has no replaced functions that klp could find", o.Name))
		}
	}
	if t.Objects == nil {
		t.Objects = []TargetObject{}
	}
	if t.Functions == nil {
		t.Functions = []Target{}
	}
	if t.Symbols == nil {
		t.Symbols = []KlpSymbol{}
	}
	if t.Relocations == nil {
		t.Relocations = []KlpRelocation{}
	}
	return t
}

// maxNotes bounds Targets.Notes: a hostile file could otherwise produce
// one note per malformed entry.
const maxNotes = 32

// note records an observation, up to maxNotes of them.
func (tf *targetFinder) note(msg string) {
	switch n := len(tf.t.Notes); {
	case n < maxNotes:
		tf.t.Notes = append(tf.t.Notes, msg)
	case n == maxNotes:
		tf.t.Notes = append(tf.t.Notes, "more notes omitted")
	}
}

// addObject records that object name was seen through src.
func (tf *targetFinder) addObject(name string, src Source) {
	i, ok := tf.objIx[name]
	if !ok {
		i = len(tf.t.Objects)
		tf.objIx[name] = i
		tf.t.Objects = append(tf.t.Objects, TargetObject{Name: name})
	}
	o := &tf.t.Objects[i]
	for _, s := range o.Sources {
		if s == src {
			return
		}
	}
	o.Sources = append(o.Sources, src)
}

// klpRelas lists the .klp.rela.<obj>.<section> sections. The kernel takes
// the object name up to the next '.' (".klp.rela.%55[^.]").
func (tf *targetFinder) klpRelas() {
	for _, s := range tf.f.Sections {
		rest, ok := strings.CutPrefix(s.Name, ".klp.rela.")
		if !ok {
			continue
		}
		obj, _, _ := strings.Cut(rest, ".")
		r := KlpRelocation{Section: s.Name, Object: obj}
		if int(s.Info) < len(tf.f.Sections) {
			r.Applies = tf.f.Sections[s.Info].Name
		}
		if s.Type == elf.SHT_RELA {
			r.Count = int(s.FileSize / 24)
		} else {
			tf.note(fmt.Sprintf("%s is %v, not SHT_RELA", s.Name, s.Type))
		}
		if s.Flags&shfRelaLivepatch == 0 {
			tf.note(fmt.Sprintf("%s lacks the SHF_RELA_LIVEPATCH flag", s.Name))
		}
		if obj == "" {
			tf.note(fmt.Sprintf("%s has no object name", s.Name))
		}
		tf.t.Relocations = append(tf.t.Relocations, r)
	}
}

// klpSyms lists the .klp.sym.<obj>.<name>,<pos> symbols, parsed as the
// kernel does (".klp.sym.%55[^.].%511[^,],%lu").
func (tf *targetFinder) klpSyms() {
	seen := map[KlpSymbol]bool{}
	for _, s := range tf.syms {
		rest, ok := strings.CutPrefix(s.name, ".klp.sym.")
		if !ok {
			continue
		}
		obj, rest, ok1 := strings.Cut(rest, ".")
		name, pos, ok2 := strings.Cut(rest, ",")
		sympos, err := strconv.ParseUint(pos, 10, 64)
		if !ok1 || !ok2 || obj == "" || name == "" || err != nil {
			tf.note(fmt.Sprintf("symbol %q is not .klp.sym.<object>.<name>,<sympos>", s.name))
			continue
		}
		if s.shndx != shnLivepatch {
			tf.note(fmt.Sprintf("symbol %s is not in SHN_LIVEPATCH (section index %#x)", s.name, uint16(s.shndx)))
		}
		k := KlpSymbol{Object: obj, Name: name, Sympos: sympos}
		if !seen[k] {
			seen[k] = true
			tf.t.Symbols = append(tf.t.Symbols, k)
		}
	}
	sort.Slice(tf.t.Symbols, func(i, j int) bool {
		a, b := tf.t.Symbols[i], tf.t.Symbols[j]
		if a.Object != b.Object {
			return a.Object < b.Object
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Sympos < b.Sympos
	})
}

// collectPointers records, for every allocated non-code section with RELA
// relocations (and klp-build's sections, allocated or not), which of its
// 8-byte words are absolute pointers and where to. It returns a reason when
// it had to give up.
func (tf *targetFinder) collectPointers(typ uint32) string {
	f := tf.f
	tf.ptrs = map[int]map[uint64]pointer{}
	tf.data = map[int][]byte{}
	total := 0
	for _, r := range f.Sections {
		if r.Type != elf.SHT_RELA || r.Flags&shfRelaLivepatch != 0 || int(r.Info) >= len(f.Sections) || r.Info == 0 {
			continue
		}
		d := f.Sections[r.Info]
		if (d.Flags&elf.SHF_ALLOC == 0 && !isKlpBuildSection(d.Name)) || d.Flags&elf.SHF_EXECINSTR != 0 || d.Type != elf.SHT_PROGBITS {
			continue
		}
		rs, err := f.relas(r)
		if err != nil {
			return "cannot read " + r.Name + ": " + err.Error()
		}
		if total += len(rs); total > maxDataRelocs {
			return fmt.Sprintf("more than %d data relocations; not followed", maxDataRelocs)
		}
		data, err := f.data(d)
		if err != nil {
			return "cannot read " + d.Name + ": " + err.Error()
		}
		di := int(r.Info)
		tf.data[di] = data
		m := tf.ptrs[di]
		if m == nil {
			m = map[uint64]pointer{}
			tf.ptrs[di] = m
		}
		for _, e := range rs {
			if e.typ != typ || int(e.sym) >= len(tf.syms) {
				continue
			}
			s := tf.syms[e.sym]
			p := pointer{sec: -1, sym: s.name}
			if s.shndx > elf.SHN_UNDEF && s.shndx < elf.SHN_LORESERVE && int(s.shndx) < len(f.Sections) {
				if off := int64(s.value) + e.addend; off >= 0 {
					p.sec, p.off = int(s.shndx), uint64(off)
				}
			}
			m[e.off] = p
		}
	}
	return ""
}

// str returns the printable NUL-terminated string p points at, if it points
// into a string or read-only data section (any non-code section if lenient).
func (tf *targetFinder) str(p pointer) (string, bool) { return tf.strIn(p, false) }

func (tf *targetFinder) strIn(p pointer, lenient bool) (string, bool) {
	if p.sec < 0 {
		return "", false
	}
	s := tf.f.Sections[p.sec]
	if s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_EXECINSTR != 0 {
		return "", false
	}
	if !lenient && s.Flags&elf.SHF_STRINGS == 0 && !strings.HasPrefix(s.Name, ".rodata") {
		return "", false
	}
	data, err := tf.f.data(s)
	if err != nil || p.off >= uint64(len(data)) {
		return "", false
	}
	b := data[p.off:min(uint64(len(data)), p.off+ksymNameLen)]
	i := bytes.IndexByte(b, 0)
	if i <= 0 {
		return "", false
	}
	for _, c := range b[:i] {
		if c <= ' ' || c > '~' {
			return "", false
		}
	}
	return string(b[:i]), true
}

// code reports whether p points at executable code (or, on ppc64 ELFv1, a
// function descriptor in .opd).
func (tf *targetFinder) code(p pointer) bool {
	if p.sec < 0 {
		return false
	}
	s := tf.f.Sections[p.sec]
	return s.Flags&elf.SHF_EXECINSTR != 0 || s.Name == ".opd"
}

// word reads the 8-byte literal at off in a data section.
func (tf *targetFinder) word(sec int, off uint64) (uint64, bool) {
	d := tf.data[sec]
	if off > uint64(len(d)) || uint64(len(d))-off < 8 {
		return 0, false
	}
	return tf.f.bo.Uint64(d[off:]), true
}

type funcEntry struct {
	name   string
	sympos uint64
}

type objEntry struct {
	at    secOff // the klp_object entry
	funcs secOff // its funcs array
	name  string // "" if undetermined
}

// relocTargets finds klp_func, klp_object and klp_patch structs by the shape
// of their relocations, without needing the
// config-dependent struct sizes:
//
//   - klp_func at X: a string pointer at X (old_name), a code pointer at X+8
//     (new_func), and the literal old_sympos at X+16;
//   - klp_object at Y: a pointer at Y+8 (funcs) to a klp_func entry, and a
//     string pointer at Y (name) or a NULL there (vmlinux);
//   - klp_patch at Z: a pointer to __this_module at Z (mod) and one to a
//     klp_object entry at Z+8 (objs); replace is the bool at Z+24.
//
// klp-build's sections are left to klpBuild: their klp_func_ext entries
// look like klp_func ones, but their arrays have no terminator. It needs
// collectPointers to have run.
func (tf *targetFinder) relocTargets(vermagic string) string {
	secs := make([]int, 0, len(tf.ptrs))
	for s := range tf.ptrs {
		secs = append(secs, s)
	}
	sort.Ints(secs)
	offsets := func(sec int) []uint64 {
		offs := make([]uint64, 0, len(tf.ptrs[sec]))
		for o := range tf.ptrs[sec] {
			offs = append(offs, o)
		}
		sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
		return offs
	}

	funcs := map[secOff]funcEntry{}
	funcOffs := map[int][]uint64{} // sorted klp_func offsets per section
	for _, sec := range secs {
		if isKlpBuildSection(tf.f.Sections[sec].Name) {
			continue
		}
		m := tf.ptrs[sec]
		for _, x := range offsets(sec) {
			name, ok := tf.str(m[x])
			if !ok {
				continue
			}
			if nf, ok := m[x+8]; !ok || !tf.code(nf) {
				continue
			}
			if _, reloc := m[x+16]; reloc {
				continue // old_sympos is a number, never relocated
			}
			pos, ok := tf.word(sec, x+16)
			if !ok {
				continue
			}
			funcs[secOff{sec, x}] = funcEntry{name, pos}
			funcOffs[sec] = append(funcOffs[sec], x)
		}
	}
	if len(funcs) == 0 {
		return ""
	}

	var objs []objEntry
	objAt := map[secOff]bool{}
	arrayStarts := map[int][]uint64{}
	for _, sec := range secs {
		m := tf.ptrs[sec]
		for _, p8 := range offsets(sec) {
			fp := m[p8]
			if p8 < 8 || fp.sec < 0 {
				continue
			}
			if _, ok := funcs[secOff{fp.sec, fp.off}]; !ok {
				continue
			}
			y := p8 - 8
			o := objEntry{at: secOff{sec, y}, funcs: secOff{fp.sec, fp.off}}
			if np, ok := m[y]; ok {
				o.name, _ = tf.str(np)
			} else if w, ok := tf.word(sec, y); ok && w == 0 {
				o.name = "vmlinux" // klp_object.name NULL
			}
			objs = append(objs, o)
			objAt[o.at] = true
			arrayStarts[fp.sec] = append(arrayStarts[fp.sec], fp.off)
		}
	}
	if len(objs) == 0 {
		return "klp_func entries were found but no klp_object pointing at them"
	}
	tf.objSize = map[secOff]uint64{}
	for _, s := range tf.syms {
		if s.size > 0 && s.typ() == elf.STT_OBJECT && s.shndx < elf.SHN_LORESERVE {
			tf.objSize[secOff{int(s.shndx), s.value}] = s.size
		}
	}
	for _, s := range arrayStarts {
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	}

	for _, o := range objs {
		if o.name == "" {
			tf.note(fmt.Sprintf("klp_object at %s+%#x has a name klp cannot read", tf.f.Sections[o.at.sec].Name, o.at.off))
			o.name = "?"
		}
		tf.addObject(o.name, SourceKlpObject)
		for _, x := range tf.arrayFuncs(o.funcs, arrayStarts[o.funcs.sec], funcOffs[o.funcs.sec]) {
			fe := funcs[secOff{o.funcs.sec, x}]
			tf.t.Functions = append(tf.t.Functions, Target{Object: o.name, Function: fe.name, Sympos: fe.sympos, Source: SourceKlpFunc})
		}
	}
	tf.findPatch(objAt, vermagic)
	return ""
}

// arrayFuncs returns the klp_func offsets of the array starting at start.
// The array ends at the next array start in the same section, or earlier if
// a symbol of known size (the static array's own symbol, kept in .symtab)
// begins exactly at start. starts and offs are sorted.
func (tf *targetFinder) arrayFuncs(start secOff, starts, offs []uint64) []uint64 {
	end := ^uint64(0)
	if i := sort.Search(len(starts), func(i int) bool { return starts[i] > start.off }); i < len(starts) {
		end = starts[i]
	}
	if size, ok := tf.objSize[start]; ok {
		end = min(end, start.off+size)
	}
	lo := sort.Search(len(offs), func(i int) bool { return offs[i] >= start.off })
	hi := sort.Search(len(offs), func(i int) bool { return offs[i] >= end })
	return offs[lo:max(lo, hi)]
}

// findPatch looks for the static struct klp_patch and reads replace.
func (tf *targetFinder) findPatch(objAt map[secOff]bool, vermagic string) {
	thisModule := -1
	for i, s := range tf.f.Sections {
		if s.Name == ".gnu.linkonce.this_module" {
			thisModule = i
		}
	}
	var found []secOff
	for sec, m := range tf.ptrs {
		for z, p := range m {
			if p.sym != "__this_module" && (thisModule < 0 || p.sec != thisModule || p.off != 0) {
				continue
			}
			if op, ok := m[z+8]; ok && objAt[secOff{op.sec, op.off}] {
				found = append(found, secOff{sec, z})
			}
		}
	}
	switch {
	case len(found) == 0:
		tf.note("no static struct klp_patch found; replace is unknown")
		return
	case len(found) > 1:
		tf.note(fmt.Sprintf("%d struct klp_patch candidates; replace is unknown", len(found)))
		return
	}
	z := found[0]
	m := tf.ptrs[z.sec]
	// 5.5+: mod, objs, states, replace (+24). 5.1-5.4: mod, objs, replace
	// (+16), then a list_head that is zero in the file.
	w16, ok16 := tf.word(z.sec, z.off+16)
	_, ok24 := tf.word(z.sec, z.off+24)
	statesPtr, states := m[z.off+16]
	var at uint64
	switch {
	case !ok16 || !ok24:
		tf.note("struct klp_patch is cut short; replace is unknown")
		return
	case states || w16 == 0:
		at = z.off + 24
	case kernelBefore(vermagic, 5, 5) && !kernelBefore(vermagic, 5, 1):
		at = z.off + 16
	default:
		tf.note("struct klp_patch layout not recognized (non-zero word at +16); replace is unknown")
		return
	}
	// replace is a bool followed by padding, which is zero in a static
	// initializer; the proposed replace_set is an unsigned int in its
	// place. A 0 or 1 byte followed by three zero bytes is the bool (on a
	// big-endian machine the unsigned int 1<<24 looks the same, and is
	// read as the bool); anything else is the unsigned int.
	b := tf.data[z.sec][at : at+4]
	set := tf.f.bo.Uint32(b)
	if b[0] <= 1 && b[1] == 0 && b[2] == 0 && b[3] == 0 {
		set = uint32(b[0])
	}
	replace := set != 0
	tf.t.Replace, tf.t.ReplaceSet = &replace, &set
	tf.t.States = []KlpState{}
	if states {
		tf.t.States = tf.klpStates(statesPtr)
	}
}

// maxStates bounds the klp_state entries read; a real patch has a few.
const maxStates = 256

// klpStates reads the klp_state array p points at: entries of 24 bytes (id,
// version, data), ended by one whose id is 0, as the kernel walks them.
func (tf *targetFinder) klpStates(p pointer) []KlpState {
	if p.sec < 0 {
		tf.note("klp_patch.states points outside the module's sections; its states are unknown")
		return nil
	}
	sec := tf.f.Sections[p.sec]
	data, err := tf.f.data(sec)
	if err != nil || sec.Type != elf.SHT_PROGBITS || sec.Flags&elf.SHF_EXECINSTR != 0 {
		tf.note(fmt.Sprintf("klp_patch.states points into %s, which holds no data klp can read; its states are unknown", sec.Name))
		return nil
	}
	out := []KlpState{}
	for off := p.off; ; off += 24 {
		if off > uint64(len(data)) || uint64(len(data))-off < 24 {
			tf.note(fmt.Sprintf("the klp_state array in %s runs past its end without a terminator; its states are unknown", sec.Name))
			return nil
		}
		id := tf.f.bo.Uint64(data[off:])
		if id == 0 {
			return out
		}
		if len(out) == maxStates {
			tf.note(fmt.Sprintf("more than %d klp_state entries; its states are unknown", maxStates))
			return nil
		}
		out = append(out, KlpState{ID: id, Version: tf.f.bo.Uint32(data[off+8:])})
	}
}

// kernelBefore reports whether vermagic names a kernel release older than
// major.minor. An unparsable vermagic is "not before".
func kernelBefore(vermagic string, major, minor int) bool {
	rel, _, _ := strings.Cut(vermagic, " ")
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return false
	}
	return ma < major || (ma == major && mi < minor)
}

// kpatchFuncs reads kpatch-build's .kpatch.funcs: an array of struct
// kpatch_patch_func { new_addr, new_size, old_addr, old_size, sympos, name,
// objname } (7 longs, 56 bytes), with name and objname relocated into
// .kpatch.strings (dynup/kpatch kmod/patch/kpatch-patch.h).
func (tf *targetFinder) kpatchFuncs() {
	for i, s := range tf.f.Sections {
		if s.Name != ".kpatch.funcs" {
			continue
		}
		m, d := tf.ptrs[i], tf.data[i]
		if m == nil {
			tf.note(".kpatch.funcs has no relocations klp could follow")
			return
		}
		for base := uint64(0); base+56 <= uint64(len(d)); base += 56 {
			// .kpatch.strings is not necessarily flagged as strings.
			name, ok1 := tf.strIn(m[base+40], true)
			obj, ok2 := tf.strIn(m[base+48], true)
			pos, _ := tf.word(i, base+32)
			if !ok1 || !ok2 {
				tf.note(fmt.Sprintf(".kpatch.funcs entry at %#x: name or object unreadable", base))
				continue
			}
			tf.addObject(obj, SourceKpatch)
			tf.t.Functions = append(tf.t.Functions, Target{Object: obj, Function: name, Sympos: pos, Source: SourceKpatch})
		}
	}
}
