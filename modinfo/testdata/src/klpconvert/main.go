// Command klpconvert turns references to ".klp.sym.<obj>.<name>,<pos>"
// symbols in a freshly built x86_64 module into the livepatch ELF format
// (Documentation/livepatch/module-elf-format.rst), as a test-data generator
// for klp's modinfo parser. It is a tiny stand-in for kpatch-build's
// create-klp-module and klp-build, written for the klp project:
//
//   - each such symbol gets st_shndx = SHN_LIVEPATCH;
//   - relocations against them move out of ".rela<sec>" into a new
//     ".klp.rela.<obj>.<sec>" section (SHT_RELA, SHF_ALLOC|SHF_RELA_LIVEPATCH,
//     sh_info = <sec>);
//   - the new section headers and the grown .shstrtab are appended to the
//     file; every existing section keeps its offset.
//
// Usage: go run ./klpconvert FILE.ko (rewrites FILE.ko in place).
package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"log"
	"os"
	"strings"
)

const (
	shnLivepatch     = 0xff20
	shfRelaLivepatch = 0x00100000
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: klpconvert FILE.ko")
	}
	if err := convert(os.Args[1]); err != nil {
		log.Fatal(err)
	}
}

func convert(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return err
	}
	if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB {
		return fmt.Errorf("%s: only ELF64 little-endian is supported", path)
	}
	le := binary.LittleEndian
	symtab := f.SectionByType(elf.SHT_SYMTAB)
	syms, err := f.Symbols()
	if err != nil {
		return err
	}
	klpObj := map[uint32]string{} // symbol index -> object
	for i, s := range syms {
		if !strings.HasPrefix(s.Name, ".klp.sym.") {
			continue
		}
		idx := uint32(i + 1) // Symbols() omits the null symbol
		obj, _, _ := strings.Cut(strings.TrimPrefix(s.Name, ".klp.sym."), ".")
		klpObj[idx] = obj
		off := symtab.Offset + uint64(idx)*24
		le.PutUint16(b[off+6:], shnLivepatch)
	}
	if len(klpObj) == 0 {
		return fmt.Errorf("%s: no .klp.sym symbols", path)
	}

	shstrndx := int(le.Uint16(b[0x3e:]))
	shstr := f.Sections[shstrndx]
	names, err := shstr.Data()
	if err != nil {
		return err
	}
	var newHdrs []elf.Section64
	var tail []byte // appended after the original file
	appendAt := func(data []byte, align int) uint64 {
		for (len(b)+len(tail))%align != 0 {
			tail = append(tail, 0)
		}
		off := uint64(len(b) + len(tail))
		tail = append(tail, data...)
		return off
	}
	for _, s := range f.Sections {
		if s.Type != elf.SHT_RELA {
			continue
		}
		data, err := s.Data()
		if err != nil {
			return err
		}
		var keep []byte
		moved := map[string][]byte{}
		for p := 0; p+24 <= len(data); p += 24 {
			e := data[p : p+24]
			sym := uint32(le.Uint64(e[8:]) >> 32)
			if obj, ok := klpObj[sym]; ok {
				moved[obj] = append(moved[obj], e...)
			} else {
				keep = append(keep, e...)
			}
		}
		if len(moved) == 0 {
			continue
		}
		// Rewrite the original section in place, shorter.
		copy(b[s.Offset:], keep)
		clear(b[s.Offset+uint64(len(keep)) : s.Offset+s.Size])
		hdr := f.Sections[s.Info]
		for obj, ents := range moved {
			name := ".klp.rela." + obj + "." + hdr.Name
			nameOff := uint32(len(names))
			names = append(append(names, name...), 0)
			newHdrs = append(newHdrs, elf.Section64{
				Name:      nameOff,
				Type:      uint32(elf.SHT_RELA),
				Flags:     uint64(elf.SHF_ALLOC|elf.SHF_INFO_LINK) | shfRelaLivepatch,
				Off:       appendAt(ents, 8),
				Size:      uint64(len(ents)),
				Link:      s.Link,
				Info:      s.Info,
				Addralign: 8,
				Entsize:   24,
			})
		}
		setShSize(b, f, s, uint64(len(keep)))
	}
	// The grown .shstrtab and the section header table go at the end.
	shstrOff := appendAt(names, 1)
	var table bytes.Buffer
	shoff := le.Uint64(b[0x28:])
	shnum := int(le.Uint16(b[0x3c:]))
	table.Write(b[shoff : shoff+uint64(shnum)*64])
	for _, h := range newHdrs {
		if err := binary.Write(&table, le, h); err != nil {
			return err
		}
	}
	tb := table.Bytes()
	// Patch the .shstrtab header inside the copied table.
	le.PutUint64(tb[shstrndx*64+0x18:], shstrOff)
	le.PutUint64(tb[shstrndx*64+0x20:], uint64(len(names)))
	newShoff := appendAt(tb, 8)
	le.PutUint64(b[0x28:], newShoff)
	le.PutUint16(b[0x3c:], uint16(shnum+len(newHdrs)))
	return os.WriteFile(path, append(b, tail...), 0o644)
}

// setShSize rewrites sh_size of s in the original section header table.
func setShSize(b []byte, f *elf.File, s *elf.Section, size uint64) {
	shoff := binary.LittleEndian.Uint64(b[0x28:])
	for i, t := range f.Sections {
		if t == s {
			binary.LittleEndian.PutUint64(b[shoff+uint64(i)*64+0x20:], size)
		}
	}
}
