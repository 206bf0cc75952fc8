package modinfo

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"strings"
)

// Limits that keep a hostile file from costing more than O(file size). Real
// modules are far below all of them.
const (
	// maxSectionName bounds one section name; debug/elf copies every name
	// out of .shstrtab, so 1e5 sections all named by the same 1 MiB string
	// would otherwise allocate 100 GB.
	maxSectionName = 4096
	// namesSlack is how far the sum of all section name lengths may exceed
	// the file size (names may share a tail: ".rela.text" and ".text").
	namesSlack = 1 << 20
)

// elfFile is a validated, parsed module image.
type elfFile struct {
	*elf.File
	img []byte // the ELF image, without an appended signature
	bo  binary.ByteOrder
}

func (f *elfFile) bigEndian() bool { return f.Data == elf.ELFDATA2MSB }

// openELF validates the ELF header and section header table against the
// image size, then hands the image to debug/elf. The validation comes first
// so that debug/elf never sizes an allocation from a header field that the
// file cannot back; the recover is for the bugs debug/elf still has on
// malformed input (the approach of cilium/ebpf's internal.NewSafeELFFile).
func openELF(img []byte) (f *elfFile, err error) {
	bo, err := validateELF(img)
	if err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("%w: debug/elf panicked: %v", ErrMalformed, r)
		}
	}()
	ef, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return &elfFile{File: ef, img: img, bo: bo}, nil
}

// validateELF checks the parts of the ELF header and section header table
// that size allocations or reads.
func validateELF(b []byte) (binary.ByteOrder, error) {
	if len(b) < 4 || !bytes.HasPrefix(b, []byte(elf.ELFMAG)) {
		return nil, fmt.Errorf("%w: no ELF magic", ErrNotELF)
	}
	if len(b) < elf.EI_NIDENT {
		return nil, fmt.Errorf("%w: %d-byte ELF identification", ErrTruncated, len(b))
	}
	var bo binary.ByteOrder
	switch elf.Data(b[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		bo = binary.LittleEndian
	case elf.ELFDATA2MSB:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("%w: invalid data encoding %d", ErrNotELF, b[elf.EI_DATA])
	}
	switch c := elf.Class(b[elf.EI_CLASS]); c {
	case elf.ELFCLASS64:
	case elf.ELFCLASS32:
		msg := "32-bit ELF file"
		if len(b) >= 20 {
			msg += " for " + elf.Machine(bo.Uint16(b[18:])).String()
		}
		return nil, fmt.Errorf("%w: %s; klp reads 64-bit modules only", ErrWrongArch, msg)
	default:
		return nil, fmt.Errorf("%w: invalid ELF class %d", ErrNotELF, b[elf.EI_CLASS])
	}
	if v := elf.Version(b[elf.EI_VERSION]); v != elf.EV_CURRENT {
		return nil, fmt.Errorf("%w: ELF version %d", ErrMalformed, v)
	}
	const ehsize = 64 // sizeof(Elf64_Ehdr)
	if len(b) < ehsize {
		return nil, fmt.Errorf("%w: %d-byte file, ELF header needs 64", ErrTruncated, len(b))
	}
	if t := elf.Type(bo.Uint16(b[16:])); t != elf.ET_REL {
		return nil, fmt.Errorf("%w: ELF type %v, kernel modules are ET_REL", ErrNotModule, t)
	}
	size := uint64(len(b))
	phoff, shoff := bo.Uint64(b[32:]), bo.Uint64(b[40:])
	phentsize, phnum := uint64(bo.Uint16(b[54:])), uint64(bo.Uint16(b[56:]))
	shentsize, shnum := uint64(bo.Uint16(b[58:])), uint64(bo.Uint16(b[60:]))
	shstrndx := uint64(bo.Uint16(b[62:]))

	if phnum > 0 {
		if phentsize != 56 {
			return nil, fmt.Errorf("%w: program header entry size %d", ErrMalformed, phentsize)
		}
		if phoff > size || phnum*56 > size-phoff {
			return nil, fmt.Errorf("%w: %d program headers at %#x past end of file (%d bytes)", ErrTruncated, phnum, phoff, size)
		}
	}
	if shoff == 0 {
		return nil, fmt.Errorf("%w: no section header table", ErrNotModule)
	}
	if shentsize != 64 {
		return nil, fmt.Errorf("%w: section header entry size %d, want 64", ErrMalformed, shentsize)
	}
	if shoff > size || size-shoff < 64 {
		return nil, fmt.Errorf("%w: section header table at %#x past end of file (%d bytes)", ErrTruncated, shoff, size)
	}
	sh0 := b[shoff:]
	if shnum == 0 { // extended numbering: the count is in section 0's sh_size
		shnum = bo.Uint64(sh0[32:])
	}
	if shstrndx == uint64(elf.SHN_XINDEX) {
		shstrndx = uint64(bo.Uint32(sh0[24:]))
	}
	if shnum > (size-shoff)/64 {
		return nil, fmt.Errorf("%w: %d section headers at %#x do not fit in %d bytes", ErrTruncated, shnum, shoff, size)
	}
	if shstrndx == 0 || shstrndx >= shnum {
		return nil, fmt.Errorf("%w: section name table index %d of %d", ErrMalformed, shstrndx, shnum)
	}
	type shdr struct{ name, typ, flags, off, size uint64 }
	hdr := func(i uint64) shdr {
		h := b[shoff+i*64:]
		return shdr{uint64(bo.Uint32(h[0:])), uint64(bo.Uint32(h[4:])), bo.Uint64(h[8:]), bo.Uint64(h[24:]), bo.Uint64(h[32:])}
	}
	for i := uint64(1); i < shnum; i++ {
		h := hdr(i)
		if elf.SectionType(h.typ) == elf.SHT_NOBITS {
			continue
		}
		if h.off > size || h.size > size-h.off {
			return nil, fmt.Errorf("%w: section %d (offset %#x, size %#x) extends past end of file (%d bytes)", ErrTruncated, i, h.off, h.size, size)
		}
	}
	strs := hdr(shstrndx)
	if elf.SectionType(strs.typ) == elf.SHT_NOBITS {
		return nil, fmt.Errorf("%w: section name table has no contents", ErrMalformed)
	}
	// debug/elf would size its read of a compressed name table by the
	// compression header's claim (up to 10 MB at once, whatever the file's
	// size); the kernel never decompresses sections.
	if elf.SectionFlag(strs.flags)&elf.SHF_COMPRESSED != 0 {
		return nil, fmt.Errorf("%w: section name table is compressed (SHF_COMPRESSED)", ErrMalformed)
	}
	names := b[strs.off : strs.off+strs.size]
	total := uint64(0)
	for i := uint64(1); i < shnum; i++ {
		n := hdr(i).name
		if n >= uint64(len(names)) {
			continue // debug/elf reports this itself
		}
		end := bytes.IndexByte(names[n:min(uint64(len(names)), n+maxSectionName+1)], 0)
		if end < 0 {
			return nil, fmt.Errorf("%w: section %d name longer than %d bytes or unterminated", ErrMalformed, i, maxSectionName)
		}
		if total += uint64(end); total > size+namesSlack {
			return nil, fmt.Errorf("%w: section names add up to more than the file size", ErrMalformed)
		}
	}
	return bo, nil
}

// section returns the first section named name, or nil.
func (f *elfFile) section(name string) *elf.Section {
	for _, s := range f.Sections {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// data returns a section's bytes without copying them. SHT_NOBITS sections
// have none. Compressed sections (SHF_COMPRESSED) are refused: the kernel
// module loader never decompresses sections, and decompressing them would
// let a small file expand without bound.
func (f *elfFile) data(s *elf.Section) ([]byte, error) {
	if s.Type == elf.SHT_NOBITS {
		return nil, nil
	}
	if s.Flags&elf.SHF_COMPRESSED != 0 {
		return nil, fmt.Errorf("%w: section %s is compressed (SHF_COMPRESSED)", ErrMalformed, s.Name)
	}
	// Bounds were checked by validateELF; check again rather than trust it
	// across edits.
	if s.Offset > uint64(len(f.img)) || s.FileSize > uint64(len(f.img))-s.Offset {
		return nil, fmt.Errorf("%w: section %s past end of file", ErrTruncated, s.Name)
	}
	return f.img[s.Offset : s.Offset+s.FileSize], nil
}

// symbol is one .symtab entry. Names are substrings of one string copy of
// .strtab, so that many symbols sharing one long name cost nothing extra.
type symbol struct {
	name  string
	info  byte
	shndx elf.SectionIndex
	value uint64
	size  uint64
}

func (s symbol) typ() elf.SymType { return elf.ST_TYPE(s.info) }

// symbols parses .symtab. Index i of the result is symbol index i (0 is the
// null symbol), which is what relocations refer to.
func (f *elfFile) symbols() ([]symbol, error) {
	st := f.SectionByType(elf.SHT_SYMTAB)
	if st == nil {
		return nil, nil
	}
	data, err := f.data(st)
	if err != nil {
		return nil, err
	}
	if st.Link == 0 || int(st.Link) >= len(f.Sections) {
		return nil, fmt.Errorf("%w: .symtab string table index %d", ErrMalformed, st.Link)
	}
	strData, err := f.data(f.Sections[st.Link])
	if err != nil {
		return nil, err
	}
	strtab := string(strData)
	const symsize = 24 // sizeof(Elf64_Sym)
	syms := make([]symbol, len(data)/symsize)
	for i := range syms {
		e := data[i*symsize:]
		name := ""
		if n := uint64(f.bo.Uint32(e[0:])); n < uint64(len(strtab)) {
			name = strtab[n:]
			if j := strings.IndexByte(name, 0); j >= 0 {
				name = name[:j]
			}
		}
		syms[i] = symbol{
			name:  name,
			info:  e[4],
			shndx: elf.SectionIndex(f.bo.Uint16(e[6:])),
			value: f.bo.Uint64(e[8:]),
			size:  f.bo.Uint64(e[16:]),
		}
	}
	return syms, nil
}

// rela is one Elf64_Rela entry.
type rela struct {
	off    uint64
	sym    uint32
	typ    uint32
	addend int64
}

// relas parses a SHT_RELA section.
func (f *elfFile) relas(s *elf.Section) ([]rela, error) {
	data, err := f.data(s)
	if err != nil {
		return nil, err
	}
	const relasize = 24 // sizeof(Elf64_Rela)
	rs := make([]rela, len(data)/relasize)
	for i := range rs {
		e := data[i*relasize:]
		info := f.bo.Uint64(e[8:])
		rs[i] = rela{off: f.bo.Uint64(e[0:]), sym: uint32(info >> 32), typ: uint32(info), addend: int64(f.bo.Uint64(e[16:]))}
	}
	return rs, nil
}

// machineName spells e_machine as `uname -m` does on that architecture.
func machineName(m elf.Machine, bigEndian bool) string {
	switch m {
	case elf.EM_X86_64:
		return "x86_64"
	case elf.EM_AARCH64:
		if bigEndian {
			return "aarch64_be"
		}
		return "aarch64"
	case elf.EM_PPC64:
		if bigEndian {
			return "ppc64"
		}
		return "ppc64le"
	case elf.EM_S390:
		return "s390x"
	case elf.EM_LOONGARCH:
		return "loongarch64"
	case elf.EM_RISCV:
		return "riscv64"
	case elf.EM_386:
		return "i386"
	case elf.EM_ARM:
		return "arm"
	}
	return strings.ToLower(strings.TrimPrefix(m.String(), "EM_"))
}
