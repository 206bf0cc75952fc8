package modinfo

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
)

// elfBuilder writes small ELF64 relocatable files for tests: the shapes real
// compilers do not produce on this machine (other architectures, big-endian,
// kpatch-build and klp-build layouts) and deliberately broken files.
type elfBuilder struct {
	bo      binary.ByteOrder
	machine elf.Machine
	secs    []*tsec // section i+1
	syms    []tsym  // symbol i+1
	relas   []trela
}

type tsec struct {
	name    string
	typ     elf.SectionType
	flags   elf.SectionFlag
	data    []byte
	link    uint32
	info    uint32
	entsize uint64
}

type tsym struct {
	name  string
	info  byte
	shndx uint16
	value uint64
	size  uint64
}

type trel struct {
	off    uint64
	sym    uint32
	typ    uint32
	addend int64
}

type trela struct {
	name   string
	target int
	rels   []trel
	flags  elf.SectionFlag
}

func newELF(bo binary.ByteOrder, m elf.Machine) *elfBuilder {
	return &elfBuilder{bo: bo, machine: m}
}

// section adds a section and returns its index.
func (b *elfBuilder) section(name string, typ elf.SectionType, flags elf.SectionFlag, data []byte) int {
	b.secs = append(b.secs, &tsec{name: name, typ: typ, flags: flags, data: data})
	return len(b.secs)
}

// symbol adds a symbol and returns its index.
func (b *elfBuilder) symbol(name string, bind elf.SymBind, typ elf.SymType, shndx uint16, value, size uint64) uint32 {
	b.syms = append(b.syms, tsym{name, elf.ST_INFO(bind, typ), shndx, value, size})
	return uint32(len(b.syms))
}

// sectionSym adds an STT_SECTION symbol for section idx.
func (b *elfBuilder) sectionSym(idx int) uint32 {
	return b.symbol("", elf.STB_LOCAL, elf.STT_SECTION, uint16(idx), 0, 0)
}

// rela adds relocations for section target, in a section added by bytes().
func (b *elfBuilder) rela(name string, target int, flags elf.SectionFlag, rels ...trel) {
	b.relas = append(b.relas, trela{name, target, rels, flags})
}

// bytes lays the file out: header, section contents, section headers.
func (b *elfBuilder) bytes(withSymtab bool) []byte {
	secs := append([]*tsec(nil), b.secs...)
	symtabIdx := 0
	if withSymtab {
		var strtab bytes.Buffer
		strtab.WriteByte(0)
		symtab := make([]byte, 24) // the null symbol
		for _, s := range b.syms {
			e := make([]byte, 24)
			if s.name != "" {
				b.bo.PutUint32(e[0:], uint32(strtab.Len()))
				strtab.WriteString(s.name)
				strtab.WriteByte(0)
			}
			e[4] = s.info
			b.bo.PutUint16(e[6:], s.shndx)
			b.bo.PutUint64(e[8:], s.value)
			b.bo.PutUint64(e[16:], s.size)
			symtab = append(symtab, e...)
		}
		secs = append(secs, &tsec{name: ".symtab", typ: elf.SHT_SYMTAB, data: symtab, entsize: 24})
		symtabIdx = len(secs)
		secs = append(secs, &tsec{name: ".strtab", typ: elf.SHT_STRTAB, data: strtab.Bytes()})
		secs[symtabIdx-1].link = uint32(len(secs))
		secs[symtabIdx-1].info = 1
	}
	for _, r := range b.relas {
		var d []byte
		for _, e := range r.rels {
			x := make([]byte, 24)
			b.bo.PutUint64(x[0:], e.off)
			b.bo.PutUint64(x[8:], uint64(e.sym)<<32|uint64(e.typ))
			b.bo.PutUint64(x[16:], uint64(e.addend))
			d = append(d, x...)
		}
		secs = append(secs, &tsec{name: r.name, typ: elf.SHT_RELA, flags: elf.SHF_INFO_LINK | r.flags,
			data: d, link: uint32(symtabIdx), info: uint32(r.target), entsize: 24})
	}
	var shstr bytes.Buffer
	shstr.WriteByte(0)
	secs = append(secs, &tsec{name: ".shstrtab", typ: elf.SHT_STRTAB})
	names := make([]uint32, len(secs))
	for i, s := range secs {
		names[i] = uint32(shstr.Len())
		shstr.WriteString(s.name)
		shstr.WriteByte(0)
	}
	secs[len(secs)-1].data = shstr.Bytes()

	out := make([]byte, 64)
	offs := make([]uint64, len(secs))
	for i, s := range secs {
		for len(out)%8 != 0 {
			out = append(out, 0)
		}
		offs[i] = uint64(len(out))
		if s.typ != elf.SHT_NOBITS {
			out = append(out, s.data...)
		}
	}
	for len(out)%8 != 0 {
		out = append(out, 0)
	}
	shoff := uint64(len(out))
	out = append(out, make([]byte, 64)...) // null section header
	for i, s := range secs {
		h := make([]byte, 64)
		b.bo.PutUint32(h[0:], names[i])
		b.bo.PutUint32(h[4:], uint32(s.typ))
		b.bo.PutUint64(h[8:], uint64(s.flags))
		b.bo.PutUint64(h[24:], offs[i])
		b.bo.PutUint64(h[32:], uint64(len(s.data)))
		b.bo.PutUint32(h[40:], s.link)
		b.bo.PutUint32(h[44:], s.info)
		b.bo.PutUint64(h[48:], 8)
		b.bo.PutUint64(h[56:], s.entsize)
		out = append(out, h...)
	}
	copy(out, elf.ELFMAG)
	out[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	out[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	if b.bo == binary.BigEndian {
		out[elf.EI_DATA] = byte(elf.ELFDATA2MSB)
	}
	out[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	b.bo.PutUint16(out[16:], uint16(elf.ET_REL))
	b.bo.PutUint16(out[18:], uint16(b.machine))
	b.bo.PutUint32(out[20:], uint32(elf.EV_CURRENT))
	b.bo.PutUint64(out[40:], shoff)
	b.bo.PutUint16(out[52:], 64)
	b.bo.PutUint16(out[58:], 64)
	b.bo.PutUint16(out[60:], uint16(len(secs)+1))
	b.bo.PutUint16(out[62:], uint16(len(secs)))
	return out
}

// strs builds a string section and returns each string's offset.
func strs(ss ...string) ([]byte, []uint64) {
	var b []byte
	var offs []uint64
	for _, s := range ss {
		offs = append(offs, uint64(len(b)))
		b = append(append(b, s...), 0)
	}
	return b, offs
}

// modBase adds .modinfo and .gnu.linkonce.this_module for a module named
// name, and returns the this_module section index.
func (b *elfBuilder) modBase(name string, info ...string) int {
	var mi []byte
	for _, kv := range info {
		mi = append(append(mi, kv...), 0)
	}
	b.section(".modinfo", elf.SHT_PROGBITS, elf.SHF_ALLOC, mi)
	this := make([]byte, 0x380)
	copy(this[moduleNameOffset:], name)
	return b.section(".gnu.linkonce.this_module", elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_WRITE, this)
}
