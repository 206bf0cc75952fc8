package modinfo

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// kbFunc is a klp_func_ext entry of a synthetic klp-build module.
type kbFunc struct {
	name   string // "" leaves old_name without a relocation
	sympos uint64
}

// kbObject is a klp_object_ext entry; its functions follow the previous
// object's in the funcs section.
type kbObject struct {
	name      string // "" is NULL (vmlinux)
	funcs     []kbFunc
	callbacks []int // indexes of klp_callbacks pointers set (0 pre_patch ... 3 post_unpatch)
}

// kbModule describes a synthetic klp-build module; the fields after objs
// break it in the ways the reader must notice.
type kbModule struct {
	objs      []kbObject
	untagged  bool // no livepatch modinfo tag
	objType   elf.SectionType
	objExtra  int    // bytes appended to the objects section
	nrDelta   uint32 // added to nr_funcs of the last object
	nameWord  bool   // a non-zero name word without relocation in object 0
	nameCode  bool   // object 0's name points at code
	newString bool   // the first function's new_func points at a string
	symposRel bool   // the first function's sympos is relocated
	funcsRel  bool   // object 0 has no funcs relocation
	funcsAt   int    // object 1's funcs pointer starts at this function index (-1: its own)
	cbData    bool   // object 0's pre_patch callback points at data
	funcsUnd  bool   // object 0's funcs pointer is an undefined symbol
	noSymtab  bool   // no .symtab
	noAlloc   bool   // the klp-build sections are not SHF_ALLOC
	funcsWord bool   // object 0's funcs is a non-zero word without relocation
}

// build writes the module: x86_64, sections __klp_objects and __klp_funcs.
func (k kbModule) build(t testing.TB) []byte {
	t.Helper()
	bo := binary.LittleEndian
	b := newELF(bo, elf.EM_X86_64)
	info := []string{"license=GPL", "name=livepatch_synth", "vermagic=6.19.0 SMP mod_unload "}
	if !k.untagged {
		info = append(info, "livepatch=Y")
	}
	b.modBase("livepatch_synth", info...)
	text := b.section(".text", elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_EXECINSTR, make([]byte, 64))
	var names []string
	for _, o := range k.objs {
		names = append(names, o.name)
		for _, f := range o.funcs {
			names = append(names, f.name)
		}
	}
	strData, so := strs(names...)
	rodata := b.section(".rodata.klp.str1.1", elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_MERGE|elf.SHF_STRINGS, strData)
	textSym, strSym := b.sectionSym(text), b.sectionSym(rodata)
	undSym := b.symbol("klp_nowhere", elf.STB_GLOBAL, elf.STT_NOTYPE, 0, 0, 0)
	abs := func(off uint64, sym uint32, add int64) trel { return trel{off, sym, uint32(elf.R_X86_64_64), add} }

	nfuncs := 0
	for _, o := range k.objs {
		nfuncs += len(o.funcs)
	}
	fd := make([]byte, 24*nfuncs)
	od := make([]byte, 64*len(k.objs)+k.objExtra)
	var frel, orel []trel
	si, fi := 0, 0 // string index, function index
	starts := make([]int, len(k.objs))
	for i, o := range k.objs {
		base := uint64(64 * i)
		if o.name != "" {
			orel = append(orel, abs(base, strSym, int64(so[si])))
		}
		si++
		starts[i] = fi
		for _, f := range o.funcs {
			x := uint64(24 * fi)
			if f.name != "" {
				frel = append(frel, abs(x, strSym, int64(so[si])))
			}
			si++
			frel = append(frel, abs(x+8, textSym, int64(4*fi)))
			bo.PutUint64(fd[x+16:], f.sympos)
			fi++
		}
		bo.PutUint32(od[base+56:], uint32(len(o.funcs)))
		for _, cb := range o.callbacks {
			orel = append(orel, abs(base+16+uint64(8*cb), textSym, 32))
		}
	}
	if n := len(k.objs); n > 0 {
		last := uint64(64 * (n - 1))
		bo.PutUint32(od[last+56:], bo.Uint32(od[last+56:])+k.nrDelta)
	}
	objType := k.objType
	if objType == 0 {
		objType = elf.SHT_PROGBITS
	}
	flags := elf.SHF_ALLOC | elf.SHF_WRITE
	if k.noAlloc {
		flags = elf.SHF_WRITE
	}
	fs := b.section("__klp_funcs", elf.SHT_PROGBITS, flags, fd)
	os := b.section("__klp_objects", objType, flags, od)
	fsym := b.sectionSym(fs)
	for i := range k.objs {
		base := uint64(64 * i)
		start := starts[i]
		if i == 1 && k.funcsAt >= 0 {
			start = k.funcsAt
		}
		switch {
		case i == 0 && k.funcsRel:
		case i == 0 && k.funcsUnd:
			orel = append(orel, abs(base+8, undSym, 0))
		default:
			orel = append(orel, abs(base+8, fsym, int64(24*start)))
		}
	}
	if k.funcsWord {
		bo.PutUint64(od[8:], 0x1000)
	}
	if k.nameWord {
		bo.PutUint64(od[0:], 0x1000)
	}
	if k.nameCode {
		orel = append(orel, abs(0, textSym, 0))
	}
	if k.cbData {
		orel = append(orel, abs(16, strSym, 0))
	}
	if k.newString {
		frel = append(frel, abs(8, strSym, 0))
	}
	if k.symposRel {
		frel = append(frel, abs(16, textSym, 0))
	}
	b.rela(".rela__klp_funcs", fs, 0, frel...)
	b.rela(".rela__klp_objects", os, 0, orel...)
	return b.bytes(!k.noSymtab)
}

// twoObjects is the module most cases start from: vmlinux with two
// functions and ext4 with one function and two callbacks.
func twoObjects() kbModule {
	return kbModule{funcsAt: -1, objs: []kbObject{
		{funcs: []kbFunc{{"cmdline_proc_show", 0}, {"version_proc_show", 2}}},
		{name: "ext4", funcs: []kbFunc{{"ext4_foo", 1}}, callbacks: []int{0, 3}},
	}}
}

func TestKlpBuild(t *testing.T) {
	t.Parallel()
	vmlinux := []Target{
		{Object: "vmlinux", Function: "cmdline_proc_show", Sympos: 0, Source: SourceKlpBuild},
		{Object: "vmlinux", Function: "version_proc_show", Sympos: 2, Source: SourceKlpBuild},
	}
	all := append(vmlinux[:2:2], Target{Object: "ext4", Function: "ext4_foo", Sympos: 1, Source: SourceKlpBuild})
	objs := []TargetObject{{Name: "vmlinux", Sources: []Source{SourceKlpBuild}}, {Name: "ext4", Sources: []Source{SourceKlpBuild}}}
	cbNote := "object ext4 has pre_patch, post_unpatch callbacks"
	long := strings.Repeat("m", 56)

	for _, tc := range []struct {
		name  string
		mod   func(*kbModule)
		objs  []TargetObject // nil: objs
		funcs []Target
		notes []string
		why   string // substring of Undetermined; "" for none
	}{
		{name: "two objects", funcs: all, notes: []string{cbNote, klpBuildReplaceNote}},
		{name: "untagged", mod: func(k *kbModule) { k.untagged = true }, funcs: all,
			notes: []string{"livepatch ELF sections or symbols without the livepatch modinfo tag: the kernel refuses such a module", cbNote, klpBuildReplaceNote}},
		{name: "same object twice", funcs: append(all[:3:3], Target{Object: "ext4", Function: "ext4_bar", Source: SourceKlpBuild}),
			mod: func(k *kbModule) {
				k.objs = append(k.objs, kbObject{name: "ext4", funcs: []kbFunc{{"ext4_bar", 0}}})
			},
			notes: []string{cbNote, "object ext4 is named by more than one klp_object_ext entry; the kernel gives each object one sysfs directory", klpBuildReplaceNote}},
		{name: "no functions", funcs: vmlinux,
			mod: func(k *kbModule) {
				k.objs[1] = kbObject{name: "ext4"}
				k.funcsAt = 2 // a pointer to the end of the array, as objtool writes it
			},
			notes: []string{"object ext4 has no functions (nr_funcs 0)", klpBuildReplaceNote}},
		{name: "long object name", objs: []TargetObject{{Name: long, Sources: []Source{SourceKlpBuild}}},
			funcs: []Target{{Object: long, Function: "f", Source: SourceKlpBuild}},
			mod:   func(k *kbModule) { k.objs = []kbObject{{name: long, funcs: []kbFunc{{"f", 0}}}} },
			notes: []string{"object name " + long + " is 56 bytes; the kernel refuses names of 56 or more (EINVAL)", klpBuildReplaceNote}},

		{name: "not allocated", mod: func(k *kbModule) { k.noAlloc = true }, funcs: all, notes: []string{cbNote, klpBuildReplaceNote}},
		{name: "no functions, no funcs relocation", funcs: all[2:],
			mod:   func(k *kbModule) { k.objs[0].funcs = nil; k.funcsRel = true },
			notes: []string{"object vmlinux has no functions (nr_funcs 0)", cbNote, klpBuildReplaceNote}},
		{name: "no functions, funcs word set", mod: func(k *kbModule) { k.objs[0].funcs = nil; k.funcsRel = true; k.funcsWord = true },
			why: "entry 0 (object vmlinux): nr_funcs is 0 but funcs has no relocation"},
		{name: "not progbits", mod: func(k *kbModule) { k.objType = elf.SHT_NOTE }, why: "it is SHT_NOTE, not SHT_PROGBITS"},
		{name: "empty", mod: func(k *kbModule) { k.objs = k.objs[:0]; k.objExtra = 0 }, why: "holds no klp_object_ext entry"},
		{name: "ragged size", mod: func(k *kbModule) { k.objExtra = 8 }, why: "136 bytes is not a whole number of 64-byte klp_object_ext entries"},
		{name: "name without relocation", mod: func(k *kbModule) { k.nameWord = true }, why: "entry 0: the name is a non-zero word with no relocation"},
		{name: "name points at code", mod: func(k *kbModule) { k.nameCode = true }, why: "entry 0: the name does not point at a string (relocation against a section symbol)"},
		{name: "nr_funcs too large", funcs: vmlinux, mod: func(k *kbModule) { k.nrDelta = 1 },
			why: "entry 1 (object ext4): 2 klp_func_ext entries at __klp_funcs+0x30 run past the section's 72 bytes"},
		{name: "nr_funcs huge", funcs: vmlinux, mod: func(k *kbModule) { k.nrDelta = 1 << 31 }, why: "run past the section"},
		{name: "funcs without relocation", mod: func(k *kbModule) { k.funcsRel = true }, why: "entry 0 (object vmlinux): nr_funcs is 2 but funcs has no relocation"},
		{name: "funcs undefined", mod: func(k *kbModule) { k.funcsUnd = true }, why: `funcs points at "klp_nowhere", outside the module's sections`},
		{name: "old_name missing", mod: func(k *kbModule) { k.objs[0].funcs[0].name = "" }, why: "entry 0 (object vmlinux): function 0: old_name does not point at a string"},
		{name: "new_func not code", mod: func(k *kbModule) { k.newString = true }, why: "function cmdline_proc_show: new_func does not point at code"},
		{name: "sympos relocated", mod: func(k *kbModule) { k.symposRel = true }, why: "function cmdline_proc_show: sympos is relocated, not a number"},
		{name: "overlapping arrays", funcs: vmlinux, mod: func(k *kbModule) { k.funcsAt = 1 },
			why: "entry 1 (object ext4): its functions overlap those of an earlier entry (__klp_funcs+0x18)"},
		{name: "callback not code", mod: func(k *kbModule) { k.cbData = true }, why: "entry 0 (object vmlinux): the pre_patch callback does not point at code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := twoObjects()
			if tc.mod != nil {
				tc.mod(&k)
			}
			m, err := ParseBytes(k.build(t))
			if err != nil {
				t.Fatal(err)
			}
			tg := m.Targets
			if tg == nil {
				t.Fatal("Targets = nil")
			}
			if tc.why != "" {
				if !strings.HasPrefix(tg.Undetermined, "klp-build's __klp_objects section is malformed: ") || !strings.Contains(tg.Undetermined, tc.why) {
					t.Errorf("Undetermined = %q, want the malformed section and %q", tg.Undetermined, tc.why)
				}
				if tc.funcs == nil {
					tc.funcs = []Target{}
				}
				if diff := cmp.Diff(tc.funcs, tg.Functions); diff != "" {
					t.Errorf("functions read before the malformed entry (-want +got):\n%s", diff)
				}
				if tg.Replace != nil {
					t.Errorf("Replace = %v", *tg.Replace)
				}
				if diff := cmp.Diff(tc.notes, tg.Notes); diff != "" {
					t.Errorf("notes (-want +got):\n%s", diff)
				}
				return
			}
			if tc.objs == nil {
				tc.objs = objs
			}
			want := &Targets{Objects: tc.objs, Functions: tc.funcs, Symbols: []KlpSymbol{}, Relocations: []KlpRelocation{}, Notes: tc.notes}
			if diff := cmp.Diff(want, tg); diff != "" {
				t.Errorf("unexpected diff (-want +got):\n%s", diff)
			}
		})
	}
}

// Without a symbol table the relocations cannot be followed: the usual
// reason, not a malformed klp-build section.
func TestKlpBuildNoSymtab(t *testing.T) {
	t.Parallel()
	k := twoObjects()
	k.noSymtab = true
	m, err := ParseBytes(k.build(t))
	if err != nil {
		t.Fatal(err)
	}
	if m.Targets == nil || len(m.Targets.Functions) != 0 || !strings.Contains(m.Targets.Undetermined, "no .symtab") {
		t.Errorf("Targets = %+v", m.Targets)
	}
}

// TestKlpBuildFacts checks, independently of the golden files, what the
// klp-build style e2e modules (testdata/src/Makefile builds them from
// e2e/modules) were written to say: dashes in the file name, '_' in the
// module name, the objects and functions of their __klp_objects entries.
func TestKlpBuildFacts(t *testing.T) {
	t.Parallel()
	fn := func(obj, name string, pos uint64) Target {
		return Target{Object: obj, Function: name, Sympos: pos, Source: SourceKlpBuild}
	}
	for _, tc := range []struct {
		file, name string
		objs       []string
		funcs      []Target
	}{
		{"livepatch-e2e-build.ko", "livepatch_e2e_build", []string{"vmlinux"},
			[]Target{fn("vmlinux", "cmdline_proc_show", 0), fn("vmlinux", "version_proc_show", 1)}},
		{"livepatch-e2e-no-replace.ko", "livepatch_e2e_no_replace", []string{"vmlinux", "klp_e2e_target"},
			[]Target{fn("vmlinux", "cmdline_proc_show", 0), fn("klp_e2e_target", "klp_e2e_target_read", 0)}},
	} {
		m, err := Open("testdata/" + tc.file)
		if err != nil {
			t.Fatal(err)
		}
		if m.Name != tc.name || m.NameSource != NameFromThisModule || !m.Livepatch || !strings.HasPrefix(m.Vermagic, "6.1.0-56-cloud-amd64 ") {
			t.Errorf("%s: name %q from %s, livepatch %v, vermagic %q", tc.file, m.Name, m.NameSource, m.Livepatch, m.Vermagic)
		}
		tg := m.Targets
		if !tg.KlpBuild() {
			t.Errorf("%s: KlpBuild() = false", tc.file)
		}
		var objs []string
		for _, o := range tg.Objects {
			objs = append(objs, o.Name)
			if !slices.Equal(o.Sources, []Source{SourceKlpBuild}) {
				t.Errorf("%s: object %s sources %q", tc.file, o.Name, o.Sources)
			}
		}
		if diff := cmp.Diff(tc.objs, objs); diff != "" {
			t.Errorf("%s: objects (-want +got):\n%s", tc.file, diff)
		}
		if diff := cmp.Diff(tc.funcs, tg.Functions); diff != "" {
			t.Errorf("%s: functions (-want +got):\n%s", tc.file, diff)
		}
		if tg.Replace != nil || tg.Undetermined != "" || !slices.Equal(tg.Notes, []string{klpBuildReplaceNote}) ||
			len(tg.Symbols) != 0 || len(tg.Relocations) != 0 {
			t.Errorf("%s: replace %v, undetermined %q, notes %q, symbols %v, relocations %v",
				tc.file, tg.Replace, tg.Undetermined, tg.Notes, tg.Symbols, tg.Relocations)
		}
	}
}

// Only the klp-build layout makes Targets.KlpBuild true.
func TestKlpBuildLayoutOnly(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"klp_vmlinux.ko", "klp_twoobj.ko", "klp_klpsym.ko"} {
		m, err := Open("testdata/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if m.Targets.KlpBuild() {
			t.Errorf("%s: KlpBuild() = true", f)
		}
	}
}

// A real klp-build style module whose object entry claims more functions
// than its __klp_funcs section holds.
func TestKlpBuildRealFileMalformed(t *testing.T) {
	t.Parallel()
	img := bytes.Clone(readTestdata(t, "livepatch-e2e-build.ko"))
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	s := f.Section("__klp_objects")
	if s == nil || s.Size != 64 {
		t.Fatalf("__klp_objects = %+v, want one entry", s)
	}
	binary.LittleEndian.PutUint32(img[s.Offset+56:], 1000)
	m, err := ParseBytes(img)
	if err != nil {
		t.Fatal(err)
	}
	want := "klp-build's __klp_objects section is malformed: entry 0 (object vmlinux): 1000 klp_func_ext entries at __klp_funcs+0x0 run past the section's 48 bytes"
	if m.Targets == nil || m.Targets.Undetermined != want || len(m.Targets.Functions) != 0 {
		t.Errorf("Targets = %+v, want no functions and Undetermined %q", m.Targets, want)
	}
}
