package modinfo

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// synthPatch builds a two-object livepatch (vmlinux and ext4) in one of the
// layouts klp understands: "klp" (hand-written klp_func/klp_object/klp_patch
// with 5.5+ layout), "klpbuild" (klp-build's __klp_objects/__klp_funcs, as
// in 6.19), "klpbuild-init" (the same in .init.klp_objects/.init.klp_funcs)
// or "kpatch" (kpatch-build's .kpatch.funcs). "klp-set7" is "klp" with the
// proposed unsigned replace_set 7 where replace is, "klp-states" "klp" with
// two klp_state entries.
func synthPatch(t testing.TB, bo binary.ByteOrder, m elf.Machine, reltype uint32, layout string, symtab bool) []byte {
	t.Helper()
	return synthPatchWith(t, bo, m, reltype, layout, symtab, nil)
}

// synthPatchWith is synthPatch with a hook that adds to the module before it
// is laid out; data is the index of the section holding the klp structures
// (layouts "klp*"), the vermagic entry is given to the hook as well.
func synthPatchWith(t testing.TB, bo binary.ByteOrder, m elf.Machine, reltype uint32, layout string, symtab bool, hook func(b *elfBuilder, data int)) []byte {
	t.Helper()
	b := newELF(bo, m)
	vermagic := "vermagic=6.1.0 SMP mod_unload "
	if layout == "klp-5.4" {
		vermagic = "vermagic=5.4.0-100-generic SMP mod_unload "
	}
	this := b.modBase("synth", "livepatch=Y", "license=GPL", "name=synth", vermagic)
	text := b.section(".text", elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_EXECINSTR, make([]byte, 32))
	strData, so := strs("cmdline_proc_show", "ext4_foo", "ext4", "vmlinux")
	rodata := b.section(".rodata.str1.1", elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_MERGE|elf.SHF_STRINGS, strData)
	textSym, strSym := b.sectionSym(text), b.sectionSym(rodata)
	thisSym := b.symbol("__this_module", elf.STB_GLOBAL, elf.STT_OBJECT, uint16(this), 0, 0x380)
	abs := func(off uint64, sym uint32, add int64) trel { return trel{off, sym, reltype, add} }

	dataSec := 0
	switch layout {
	case "klp", "klp-set7", "klp-states", "klp-5.4", "klp-at16", "klp-secsym", "klp-objs0", "klp-bounds":
		const fsz, osz = 0x98, 0x60 // config-dependent sizes; klp must not need them
		size := 0x40 + 3*osz + 4*fsz
		if layout == "klp-states" {
			size += 3 * 24
		}
		if layout == "klp-bounds" {
			size += fsz // a klp_func-shaped entry after the last array
		}
		data := make([]byte, size)
		ds := b.section(".data", elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_WRITE, data)
		dataSym := b.sectionSym(ds)
		dataSec = ds
		objs, f1, f2 := uint64(0x40), uint64(0x40+3*osz), uint64(0x40+3*osz+2*fsz)
		states := uint64(0x40 + 3*osz + 4*fsz)
		patch := uint64(0)
		if layout == "klp-objs0" { // the klp_object array starts the section
			objs, patch = 0, 3*osz
		}
		data[patch+0x18] = 1 // replace = true
		if layout == "klp-5.4" || layout == "klp-at16" {
			// 5.1-5.4: replace at +16, a list_head (zero in the file) after.
			data[0x10], data[0x18] = 1, 0
		}
		mod := abs(patch, thisSym, 0)
		if layout == "klp-secsym" {
			mod = abs(0, b.sectionSym(this), 0)
		}
		if layout == "klp-set7" {
			bo.PutUint32(data[0x18:], 7) // replace_set = 7
		}
		if layout == "klp-states" {
			b.rela(".rela.data.states", ds, 0, abs(16, dataSym, int64(states)))
			bo.PutUint64(data[states:], 0x5e7)
			bo.PutUint32(data[states+8:], 2)
			bo.PutUint64(data[states+24:], 9)
			bo.PutUint32(data[states+32:], 1)
		}
		bo.PutUint64(data[f2+16:], 3)
		b.symbol("objs", elf.STB_LOCAL, elf.STT_OBJECT, uint16(ds), objs, 3*osz)
		// klp-bounds: f1 has no symbol, so the next array's start alone
		// ends it; f2's symbol alone ends it, before the entry after it.
		if layout != "klp-bounds" {
			b.symbol("f1", elf.STB_LOCAL, elf.STT_OBJECT, uint16(ds), f1, 2*fsz)
		}
		b.symbol("f2", elf.STB_LOCAL, elf.STT_OBJECT, uint16(ds), f2, 2*fsz)
		if layout == "klp-bounds" {
			tail := f2 + 2*fsz
			b.rela(".rela.data.tail", ds, 0, abs(tail, strSym, int64(so[0])), abs(tail+8, textSym, 0))
		}
		b.rela(".rela.data", ds, 0,
			mod, abs(patch+8, dataSym, int64(objs)),
			abs(objs+8, dataSym, int64(f1)),
			abs(objs+osz, strSym, int64(so[2])), abs(objs+osz+8, dataSym, int64(f2)),
			abs(objs+osz+16, textSym, 16), // a callback
			abs(f1, strSym, int64(so[0])), abs(f1+8, textSym, 0),
			abs(f2, strSym, int64(so[1])), abs(f2+8, textSym, 16),
		)
	case "klpbuild", "klpbuild-init":
		// 6.19 names the sections __klp_*, later kernels .init.klp_*.
		objSec, funcSec := "__klp_objects", "__klp_funcs"
		if layout == "klpbuild-init" {
			objSec, funcSec = ".init.klp_objects", ".init.klp_funcs"
		}
		fd := make([]byte, 2*24)
		bo.PutUint64(fd[24+16:], 3)
		od := make([]byte, 2*64)
		bo.PutUint32(od[56:], 1) // nr_funcs
		bo.PutUint32(od[64+56:], 1)
		fs := b.section(funcSec, elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_WRITE, fd)
		os := b.section(objSec, elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_WRITE, od)
		fsym := b.sectionSym(fs)
		b.rela(".rela"+funcSec, fs, 0,
			abs(0, strSym, int64(so[0])), abs(8, textSym, 0),
			abs(24, strSym, int64(so[1])), abs(32, textSym, 16))
		// The vmlinux entry has a NULL name, as klp-build writes it.
		b.rela(".rela"+objSec, os, 0,
			abs(8, fsym, 0),
			abs(64, strSym, int64(so[2])), abs(72, fsym, 24))
	case "kpatch":
		kstr, ko := strs("cmdline_proc_show", "vmlinux", "ext4_foo", "ext4")
		ks := b.section(".kpatch.strings", elf.SHT_PROGBITS, elf.SHF_ALLOC, kstr)
		kd := make([]byte, 2*56)
		bo.PutUint64(kd[56+32:], 3)
		kf := b.section(".kpatch.funcs", elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_WRITE, kd)
		ksym := b.sectionSym(ks)
		b.rela(".rela.kpatch.funcs", kf, 0,
			abs(0, textSym, 0), abs(40, ksym, int64(ko[0])), abs(48, ksym, int64(ko[1])),
			abs(56, textSym, 16), abs(56+40, ksym, int64(ko[2])), abs(56+48, ksym, int64(ko[3])))
	default:
		t.Fatalf("unknown layout %q", layout)
	}
	if hook != nil {
		hook(b, dataSec)
	}
	return b.bytes(symtab)
}

func TestSyntheticTargets(t *testing.T) {
	t.Parallel()
	yes, one, seven := true, uint32(1), uint32(7)
	funcs := func(src Source) []Target {
		return []Target{
			{Object: "vmlinux", Function: "cmdline_proc_show", Sympos: 0, Source: src},
			{Object: "ext4", Function: "ext4_foo", Sympos: 3, Source: src},
		}
	}
	objs := func(src Source) []TargetObject {
		return []TargetObject{{Name: "vmlinux", Sources: []Source{src}}, {Name: "ext4", Sources: []Source{src}}}
	}
	le, be := binary.LittleEndian, binary.BigEndian
	for _, tc := range []struct {
		name    string
		bo      binary.ByteOrder
		m       elf.Machine
		reltype uint32
		layout  string
		machine string
		want    Targets
	}{
		{"x86_64", le, elf.EM_X86_64, uint32(elf.R_X86_64_64), "klp", "x86_64",
			Targets{Objects: objs(SourceKlpObject), Functions: funcs(SourceKlpFunc), Replace: &yes, ReplaceSet: &one, States: []KlpState{}}},
		{"s390x big-endian", be, elf.EM_S390, uint32(elf.R_390_64), "klp", "s390x",
			Targets{Objects: objs(SourceKlpObject), Functions: funcs(SourceKlpFunc), Replace: &yes, ReplaceSet: &one, States: []KlpState{}}},
		{"ppc64le", le, elf.EM_PPC64, uint32(elf.R_PPC64_ADDR64), "klp", "ppc64le",
			Targets{Objects: objs(SourceKlpObject), Functions: funcs(SourceKlpFunc), Replace: &yes, ReplaceSet: &one, States: []KlpState{}}},
		{"aarch64", le, elf.EM_AARCH64, uint32(elf.R_AARCH64_ABS64), "klp", "aarch64",
			Targets{Objects: objs(SourceKlpObject), Functions: funcs(SourceKlpFunc), Replace: &yes, ReplaceSet: &one, States: []KlpState{}}},
		{"replace_set 7", le, elf.EM_X86_64, uint32(elf.R_X86_64_64), "klp-set7", "x86_64",
			Targets{Objects: objs(SourceKlpObject), Functions: funcs(SourceKlpFunc), Replace: &yes, ReplaceSet: &seven, States: []KlpState{}}},
		{"replace_set 7 big-endian", be, elf.EM_S390, uint32(elf.R_390_64), "klp-set7", "s390x",
			Targets{Objects: objs(SourceKlpObject), Functions: funcs(SourceKlpFunc), Replace: &yes, ReplaceSet: &seven, States: []KlpState{}}},
		{"klp_state", le, elf.EM_X86_64, uint32(elf.R_X86_64_64), "klp-states", "x86_64",
			Targets{Objects: objs(SourceKlpObject), Functions: funcs(SourceKlpFunc), Replace: &yes, ReplaceSet: &one,
				States: []KlpState{{ID: 0x5e7, Version: 2}, {ID: 9, Version: 1}}}},
		{"klp_state big-endian", be, elf.EM_S390, uint32(elf.R_390_64), "klp-states", "s390x",
			Targets{Objects: objs(SourceKlpObject), Functions: funcs(SourceKlpFunc), Replace: &yes, ReplaceSet: &one,
				States: []KlpState{{ID: 0x5e7, Version: 2}, {ID: 9, Version: 1}}}},
		{"5.4 layout", le, elf.EM_X86_64, uint32(elf.R_X86_64_64), "klp-5.4", "x86_64",
			Targets{Objects: objs(SourceKlpObject), Functions: funcs(SourceKlpFunc), Replace: &yes, ReplaceSet: &one, States: []KlpState{}}},
		{"5.4 layout on 6.1", le, elf.EM_X86_64, uint32(elf.R_X86_64_64), "klp-at16", "x86_64",
			Targets{Objects: objs(SourceKlpObject), Functions: funcs(SourceKlpFunc),
				Notes: []string{"struct klp_patch layout not recognized (non-zero word at +16); replace is unknown"}}},
		{"klp_object array at the section start", le, elf.EM_X86_64, uint32(elf.R_X86_64_64), "klp-objs0", "x86_64",
			Targets{Objects: objs(SourceKlpObject), Functions: funcs(SourceKlpFunc), Replace: &yes, ReplaceSet: &one, States: []KlpState{}}},
		{"arrays bounded by one bound each", le, elf.EM_X86_64, uint32(elf.R_X86_64_64), "klp-bounds", "x86_64",
			Targets{Objects: objs(SourceKlpObject), Functions: funcs(SourceKlpFunc), Replace: &yes, ReplaceSet: &one, States: []KlpState{}}},
		{"mod against the section symbol", le, elf.EM_X86_64, uint32(elf.R_X86_64_64), "klp-secsym", "x86_64",
			Targets{Objects: objs(SourceKlpObject), Functions: funcs(SourceKlpFunc), Replace: &yes, ReplaceSet: &one, States: []KlpState{}}},
		{"klp-build", le, elf.EM_X86_64, uint32(elf.R_X86_64_64), "klpbuild", "x86_64",
			Targets{Objects: objs(SourceKlpBuild), Functions: funcs(SourceKlpBuild), Notes: []string{klpBuildReplaceNote}}},
		{"klp-build .init sections", le, elf.EM_X86_64, uint32(elf.R_X86_64_64), "klpbuild-init", "x86_64",
			Targets{Objects: objs(SourceKlpBuild), Functions: funcs(SourceKlpBuild), Notes: []string{klpBuildReplaceNote}}},
		{"klp-build big-endian", be, elf.EM_S390, uint32(elf.R_390_64), "klpbuild", "s390x",
			Targets{Objects: objs(SourceKlpBuild), Functions: funcs(SourceKlpBuild), Notes: []string{klpBuildReplaceNote}}},
		{"kpatch-build", le, elf.EM_X86_64, uint32(elf.R_X86_64_64), "kpatch", "x86_64",
			Targets{Objects: objs(SourceKpatch), Functions: funcs(SourceKpatch)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseBytes(synthPatch(t, tc.bo, tc.m, tc.reltype, tc.layout, true))
			if err != nil {
				t.Fatal(err)
			}
			if m.Machine != tc.machine || m.Name != "synth" || !m.Livepatch {
				t.Errorf("machine %q name %q livepatch %v", m.Machine, m.Name, m.Livepatch)
			}
			tc.want.Symbols, tc.want.Relocations = []KlpSymbol{}, []KlpRelocation{}
			if diff := cmp.Diff(&tc.want, m.Targets); diff != "" {
				t.Errorf("unexpected diff (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUndeterminedTargets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		img  []byte
		want string
	}{
		{"no symtab", synthPatch(t, binary.LittleEndian, elf.EM_X86_64, 1, "klp", false), "no .symtab"},
		{"unknown machine", synthPatch(t, binary.BigEndian, elf.EM_MIPS, 2, "klp", true), "pointer relocation type of EM_MIPS"},
		{"wrong relocation type", synthPatch(t, binary.LittleEndian, elf.EM_AARCH64, 1, "klp", true), "no klp_func array"},
		{"symtab linked past the sections", func() []byte {
			b := synthPatch(t, binary.LittleEndian, elf.EM_X86_64, uint32(elf.R_X86_64_64), "klp", true)
			binary.LittleEndian.PutUint32(sectionHeader(t, b, ".symtab")[40:], uint32(binary.LittleEndian.Uint16(b[60:])))
			return b
		}(), "cannot read .symtab: malformed ELF file: .symtab string table index"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseBytes(tc.img)
			if err != nil {
				t.Fatal(err)
			}
			if m.Targets == nil || len(m.Targets.Functions) != 0 || !strings.Contains(m.Targets.Undetermined, tc.want) {
				t.Errorf("Targets = %+v, want no functions and Undetermined containing %q", m.Targets, tc.want)
			}
		})
	}
}

// A module with livepatch ELF structures but no livepatch tag is reported,
// with a note, instead of being taken for an ordinary module.
func TestKlpSectionsWithoutTag(t *testing.T) {
	t.Parallel()
	b := newELF(binary.LittleEndian, elf.EM_X86_64)
	b.modBase("untagged", "license=GPL")
	text := b.section(".text", elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_EXECINSTR, make([]byte, 16))
	sym := b.symbol(".klp.sym.btrfs.btrfs_helper,0", elf.STB_GLOBAL, elf.STT_NOTYPE, uint16(shnLivepatch), 0, 0)
	b.symbol(".klp.sym.bad", elf.STB_GLOBAL, elf.STT_NOTYPE, 0, 0, 0)
	b.rela(".klp.rela.btrfs..text", text, elf.SHF_ALLOC|shfRelaLivepatch, trel{1, sym, uint32(elf.R_X86_64_PLT32), -4})
	m, err := ParseBytes(b.bytes(true))
	if err != nil {
		t.Fatal(err)
	}
	want := &Targets{
		Objects:     []TargetObject{{Name: "btrfs", Sources: []Source{SourceKlpRela, SourceKlpSym}}},
		Functions:   []Target{},
		Symbols:     []KlpSymbol{{Object: "btrfs", Name: "btrfs_helper", Sympos: 0}},
		Relocations: []KlpRelocation{{Section: ".klp.rela.btrfs..text", Object: "btrfs", Applies: ".text", Count: 1}},
		Notes: []string{
			`symbol ".klp.sym.bad" is not .klp.sym.<object>.<name>,<sympos>`,
			"livepatch ELF sections or symbols without the livepatch modinfo tag: the kernel refuses such a module",
		},
	}
	if m.Targets == nil {
		t.Fatal("Targets = nil")
	}
	got := *m.Targets
	got.Undetermined = "" // covered elsewhere
	if diff := cmp.Diff(want, &got); diff != "" {
		t.Errorf("unexpected diff (-want +got):\n%s", diff)
	}
	if m.Livepatch {
		t.Error("Livepatch = true")
	}
}

func TestKernelBefore(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		vermagic string
		want     bool
	}{
		{"5.4.0-100-generic SMP mod_unload ", true},
		{"5.5.0 SMP", false},
		{"6.1.0-56-cloud-amd64 SMP preempt mod_unload modversions ", false},
		{"4.12.14-122.37-default SMP mod_unload modversions ", true},
		{"", false},
		{"garbage", false},
		{"5.4", true},
		{"5", false},
		{"5.4+ SMP", true},
		{"5.10.0 SMP", false},
		{"5.19.0 SMP", false},
		{"6.0.0", false},
		{"5.x", false},
	} {
		if got := kernelBefore(tc.vermagic, 5, 5); got != tc.want {
			t.Errorf("kernelBefore(%q, 5, 5) = %v, want %v", tc.vermagic, got, tc.want)
		}
	}
}

// finder returns a targetFinder over a module holding the given sections
// (little-endian x86_64), and the sections' indexes by name.
func finder(t *testing.T, secs ...tsec) (*targetFinder, map[string]int) {
	t.Helper()
	b := newELF(binary.LittleEndian, elf.EM_X86_64)
	b.modBase("finder")
	idx := map[string]int{}
	for _, s := range secs {
		idx[s.name] = b.section(s.name, s.typ, s.flags, s.data)
	}
	f, err := openELF(b.bytes(true))
	if err != nil {
		t.Fatal(err)
	}
	return &targetFinder{f: f, t: &Targets{}}, idx
}

// The string reader takes printable NUL-terminated strings shorter than
// KSYM_NAME_LEN from string or read-only data (any data when lenient).
func TestStrIn(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("l", ksymNameLen-1)
	data := []byte("\x00ok\x00sp ace\x00tilde~\x00del\x7f\x00" + long + "\x00" + long + "l\x00")
	str, ro, rw := elf.SHF_ALLOC|elf.SHF_MERGE|elf.SHF_STRINGS, elf.SHF_ALLOC, elf.SHF_ALLOC|elf.SHF_WRITE
	tf, sec := finder(t,
		tsec{name: ".str", typ: elf.SHT_PROGBITS, flags: str, data: data},
		tsec{name: ".rodata", typ: elf.SHT_PROGBITS, flags: ro, data: data},
		tsec{name: ".data", typ: elf.SHT_PROGBITS, flags: rw, data: data},
		tsec{name: ".text", typ: elf.SHT_PROGBITS, flags: elf.SHF_ALLOC | elf.SHF_EXECINSTR, data: data},
		tsec{name: ".bss", typ: elf.SHT_NOBITS, flags: rw, data: data},
	)
	at := func(s string) uint64 { return uint64(bytes.Index(data, []byte(s+"\x00"))) }
	for _, tc := range []struct {
		name    string
		p       pointer
		lenient bool
		want    string // "" for none
	}{
		{"string section", pointer{sec: sec[".str"], off: 1}, false, "ok"},
		{"read-only data", pointer{sec: sec[".rodata"], off: 1}, false, "ok"},
		{"writable data", pointer{sec: sec[".data"], off: 1}, false, ""},
		{"writable data, lenient", pointer{sec: sec[".data"], off: 1}, true, "ok"},
		{"code", pointer{sec: sec[".text"], off: 1}, true, ""},
		{"no bits", pointer{sec: sec[".bss"], off: 1}, true, ""},
		{"outside the sections", pointer{sec: -1}, true, ""},
		{"empty string", pointer{sec: sec[".str"], off: 0}, false, ""},
		{"last byte", pointer{sec: sec[".str"], off: uint64(len(data)) - 1}, false, ""},
		{"past the end", pointer{sec: sec[".str"], off: uint64(len(data))}, false, ""},
		{"a space", pointer{sec: sec[".str"], off: at("sp ace")}, false, ""},
		{"a tilde", pointer{sec: sec[".str"], off: at("tilde~")}, false, "tilde~"},
		{"DEL", pointer{sec: sec[".str"], off: at("del\x7f")}, false, ""},
		{"longest name", pointer{sec: sec[".str"], off: at(long)}, false, long},
		{"name too long", pointer{sec: sec[".str"], off: at(long + "l")}, false, ""},
	} {
		got, ok := tf.strIn(tc.p, tc.lenient)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: strIn = %q, %v; want %q", tc.name, got, ok, tc.want)
		}
	}
}

// word reads 8 bytes only when all 8 are in the section.
func TestWord(t *testing.T) {
	t.Parallel()
	tf, _ := finder(t)
	tf.data = map[int][]byte{1: {1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}}
	for _, tc := range []struct {
		off  uint64
		want uint64
		ok   bool
	}{{0, 1, true}, {8, 2, true}, {9, 0, false}, {16, 0, false}, {17, 0, false}, {1 << 63, 0, false}} {
		if got, ok := tf.word(1, tc.off); got != tc.want || ok != tc.ok {
			t.Errorf("word(%d) = %d, %v; want %d, %v", tc.off, got, ok, tc.want, tc.ok)
		}
	}
}

// klpStates reads up to maxStates entries and the terminator after them.
func TestKlpStates(t *testing.T) {
	t.Parallel()
	states := func(n int, terminated bool) []byte {
		b := make([]byte, 24*n)
		for i := range n {
			binary.LittleEndian.PutUint64(b[24*i:], uint64(i+1))
			binary.LittleEndian.PutUint32(b[24*i+8:], uint32(i%3))
		}
		if terminated {
			b = append(b, make([]byte, 24)...)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
		p    func(sec map[string]int) pointer
		n    int    // states read; -1 for unknown (nil)
		note string // the note when unknown
	}{
		{"two", states(2, true), nil, 2, ""},
		{"none", states(0, true), nil, 0, ""},
		{"maxStates", states(maxStates, true), nil, maxStates, ""},
		{"one more than maxStates", states(maxStates+1, true), nil, -1, "more than 256 klp_state entries; its states are unknown"},
		{"no terminator", states(2, false), nil, -1, "the klp_state array in .data.states runs past its end without a terminator; its states are unknown"},
		{"terminator cut", states(2, true)[:2*24+23], nil, -1, "runs past its end without a terminator"},
		{"past the section", states(2, true), func(sec map[string]int) pointer { return pointer{sec: sec[".data.states"], off: 1 << 40} }, -1, "runs past its end"},
		{"outside the sections", states(2, true), func(map[string]int) pointer { return pointer{sec: -1} }, -1, "klp_patch.states points outside the module's sections; its states are unknown"},
		{"into code", states(2, true), func(sec map[string]int) pointer { return pointer{sec: sec[".text"]} }, -1, "klp_patch.states points into .text, which holds no data klp can read"},
		{"into no bits", states(2, true), func(sec map[string]int) pointer { return pointer{sec: sec[".bss"]} }, -1, "klp_patch.states points into .bss"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tf, sec := finder(t,
				tsec{name: ".data.states", typ: elf.SHT_PROGBITS, flags: elf.SHF_ALLOC | elf.SHF_WRITE, data: tc.data},
				tsec{name: ".text", typ: elf.SHT_PROGBITS, flags: elf.SHF_ALLOC | elf.SHF_EXECINSTR, data: make([]byte, 64)},
				tsec{name: ".bss", typ: elf.SHT_NOBITS, flags: elf.SHF_ALLOC | elf.SHF_WRITE, data: make([]byte, 64)},
			)
			p := pointer{sec: sec[".data.states"]}
			if tc.p != nil {
				p = tc.p(sec)
			}
			got := tf.klpStates(p)
			if tc.n < 0 {
				if got != nil || len(tf.t.Notes) != 1 || !strings.Contains(tf.t.Notes[0], tc.note) {
					t.Errorf("klpStates = %v, notes %q; want nil and a note %q", got, tf.t.Notes, tc.note)
				}
				return
			}
			if len(got) != tc.n || got == nil || len(tf.t.Notes) != 0 {
				t.Fatalf("klpStates = %d states, notes %q; want %d", len(got), tf.t.Notes, tc.n)
			}
			for i, s := range got {
				if s != (KlpState{ID: uint64(i + 1), Version: uint32(i % 3)}) {
					t.Errorf("state %d = %+v", i, s)
				}
			}
		})
	}
}

// Indexes one past the end (of the section table, of the symbol table) in
// relocations and symbols are ignored, not followed; so is a size-0 symbol.
func TestIgnoredIndexesAndSizes(t *testing.T) {
	t.Parallel()
	le := binary.LittleEndian
	img := synthPatchWith(t, le, elf.EM_X86_64, uint32(elf.R_X86_64_64), "klp", true, func(b *elfBuilder, data int) {
		abs := uint32(elf.R_X86_64_64)
		far := b.symbol("far", elf.STB_LOCAL, elf.STT_OBJECT, 0, 0, 8)
		// A symbol of size 0 at the start of a klp_func array does not
		// bound the array (f1, at 0x160, has its size).
		b.symbol("f1_start", elf.STB_LOCAL, elf.STT_OBJECT, uint16(data), 0x160, 0)
		// Symbol index len(symbols) (the null symbol is index 0), and a symbol
		// whose section index is set to the section count below.
		b.rela(".rela.data.far", data, 0, trel{0x30, uint32(len(b.syms) + 1), abs, 0}, trel{0x38, far, abs, 0})
		b.rela(".rela.nowhere", 0, 0, trel{0, far, abs, 0})
		b.rela(".klp.rela.vmlinux..nowhere", 0, shfRelaLivepatch)
	})
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	n := uint32(len(f.Sections))
	le.PutUint32(sectionHeader(t, img, ".rela.nowhere")[44:], n)
	le.PutUint32(sectionHeader(t, img, ".klp.rela.vmlinux..nowhere")[44:], n)
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	symtab := sectionHeader(t, img, ".symtab")
	for i, s := range syms {
		if s.Name == "far" {
			le.PutUint16(img[le.Uint64(symtab[24:])+uint64(i+1)*24+6:], uint16(n))
		}
	}
	m, err := ParseBytes(img)
	if err != nil {
		t.Fatal(err)
	}
	yes, one := true, uint32(1)
	want := &Targets{
		Objects: []TargetObject{{Name: "vmlinux", Sources: []Source{SourceKlpObject, SourceKlpRela}}, {Name: "ext4", Sources: []Source{SourceKlpObject}}},
		Functions: []Target{
			{Object: "vmlinux", Function: "cmdline_proc_show", Sympos: 0, Source: SourceKlpFunc},
			{Object: "ext4", Function: "ext4_foo", Sympos: 3, Source: SourceKlpFunc},
		},
		Symbols:     []KlpSymbol{},
		Relocations: []KlpRelocation{{Section: ".klp.rela.vmlinux..nowhere", Object: "vmlinux"}},
		Replace:     &yes, ReplaceSet: &one, States: []KlpState{},
	}
	if diff := cmp.Diff(want, m.Targets); diff != "" {
		t.Errorf("unexpected diff (-want +got):\n%s", diff)
	}
}

// .klp.sym symbols are listed once each, sorted by object, name and
// sympos; the notes stop at maxNotes.
func TestKlpSymbolsSortedAndNotesBounded(t *testing.T) {
	t.Parallel()
	b := newELF(binary.LittleEndian, elf.EM_X86_64)
	b.modBase("syms", "livepatch=Y")
	for _, n := range []string{"vmlinux.b,1", "btrfs.z,0", "vmlinux.a,2", "vmlinux.a,10", "btrfs.z,0", "vmlinux.a,1"} {
		b.symbol(".klp.sym."+n, elf.STB_GLOBAL, elf.STT_NOTYPE, uint16(shnLivepatch), 0, 0)
	}
	var notes []string
	for i := range maxNotes + 5 {
		name := fmt.Sprintf(".klp.sym.bad%d", i)
		b.symbol(name, elf.STB_GLOBAL, elf.STT_NOTYPE, uint16(shnLivepatch), 0, 0)
		if i < maxNotes {
			notes = append(notes, fmt.Sprintf("symbol %q is not .klp.sym.<object>.<name>,<sympos>", name))
		}
	}
	m, err := ParseBytes(b.bytes(true))
	if err != nil {
		t.Fatal(err)
	}
	want := []KlpSymbol{{"btrfs", "z", 0}, {"vmlinux", "a", 1}, {"vmlinux", "a", 2}, {"vmlinux", "a", 10}, {"vmlinux", "b", 1}}
	if diff := cmp.Diff(want, m.Targets.Symbols); diff != "" {
		t.Errorf("symbols (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(append(notes, "more notes omitted"), m.Targets.Notes); diff != "" {
		t.Errorf("notes (-want +got):\n%s", diff)
	}
}

// Only a pointer to the module itself (__this_module, or its section at
// offset 0) followed by one to a klp_object array starts a klp_patch: any
// other pointer before a pointer to the objects is not a candidate.
func TestPatchNeedsTheModulePointer(t *testing.T) {
	t.Parallel()
	img := synthPatchWith(t, binary.LittleEndian, elf.EM_X86_64, uint32(elf.R_X86_64_64), "klp", true, func(b *elfBuilder, data int) {
		abs := uint32(elf.R_X86_64_64)
		other := b.section(".data.other", elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_WRITE, make([]byte, 16))
		// {&other, &objs}: the shape of klp_patch's first two fields, but
		// the first points elsewhere (objs is at 0x40 in .data).
		b.rela(".rela.data.other", other, 0, trel{0, b.sectionSym(other), abs, 8}, trel{8, b.sectionSym(data), abs, 0x40})
	})
	m, err := ParseBytes(img)
	if err != nil {
		t.Fatal(err)
	}
	if m.Targets == nil || m.Targets.Replace == nil || !*m.Targets.Replace || len(m.Targets.Notes) != 0 {
		t.Errorf("Targets = %+v, want the one klp_patch found (replace true, no notes)", m.Targets)
	}
}
