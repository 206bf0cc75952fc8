package modinfo

import (
	"bytes"
	"compress/gzip"
	"crypto/x509/pkix"
	"debug/elf"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFacts checks, independently of the golden files, the facts each test
// module was written to have (see testdata/src), so that a careless -update
// cannot bless a wrong result.
func TestFacts(t *testing.T) {
	t.Parallel()
	open := func(name string) *Module {
		t.Helper()
		m, err := Open(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	fn := func(obj, name string, pos uint64) Target {
		return Target{Object: obj, Function: name, Sympos: pos, Source: SourceKlpFunc}
	}
	no, yes := false, true
	for _, tc := range []struct {
		file      string
		funcs     []Target
		replace   *bool
		symbols   []KlpSymbol
		relas     int
		signed    bool
		livepatch bool
	}{
		{file: "klp_vmlinux.ko", livepatch: true, replace: &no,
			funcs: []Target{fn("vmlinux", "cmdline_proc_show", 0), fn("vmlinux", "version_proc_show", 2)}},
		{file: "klp_twoobj.ko", livepatch: true, replace: &no,
			funcs: []Target{fn("vmlinux", "meminfo_proc_show", 0), fn("klp_target", "klp_target_value", 0)}},
		{file: "klp_replace.ko", livepatch: true, replace: &yes, signed: true,
			funcs: []Target{fn("vmlinux", "cmdline_proc_show", 0)}},
		{file: "klp_klpsym.ko", livepatch: true, replace: &no, relas: 1,
			funcs:   []Target{fn("vmlinux", "cmdline_proc_show", 0)},
			symbols: []KlpSymbol{{Object: "vmlinux", Name: "klp_static_helper", Sympos: 2}}},
		{file: "klp_target.ko"},
	} {
		m := open(tc.file)
		if want := strings.TrimSuffix(tc.file, ".ko"); m.Name != want || m.NameSource != NameFromThisModule {
			t.Errorf("%s: name %q from %s, want %q from this_module", tc.file, m.Name, m.NameSource, want)
		}
		if m.Livepatch != tc.livepatch || (m.RequireLivepatch() == nil) != tc.livepatch {
			t.Errorf("%s: Livepatch = %v, want %v", tc.file, m.Livepatch, tc.livepatch)
		}
		if !strings.HasPrefix(m.Vermagic, "6.1.0-56-cloud-amd64 ") || m.Machine != "x86_64" {
			t.Errorf("%s: vermagic %q machine %q", tc.file, m.Vermagic, m.Machine)
		}
		if (m.Signature != nil) != tc.signed {
			t.Errorf("%s: Signature = %+v", tc.file, m.Signature)
		}
		if !tc.livepatch {
			if m.Targets != nil {
				t.Errorf("%s: Targets = %+v, want nil", tc.file, m.Targets)
			}
			if !errors.Is(m.RequireLivepatch(), ErrNotLivepatch) {
				t.Errorf("%s: RequireLivepatch = %v", tc.file, m.RequireLivepatch())
			}
			continue
		}
		tg := m.Targets
		if diff := cmp.Diff(tc.funcs, tg.Functions); diff != "" {
			t.Errorf("%s: functions (-want +got):\n%s", tc.file, diff)
		}
		if diff := cmp.Diff(tc.replace, tg.Replace); diff != "" {
			t.Errorf("%s: replace (-want +got):\n%s", tc.file, diff)
		}
		if tc.symbols == nil {
			tc.symbols = []KlpSymbol{}
		}
		if diff := cmp.Diff(tc.symbols, tg.Symbols); diff != "" {
			t.Errorf("%s: klp symbols (-want +got):\n%s", tc.file, diff)
		}
		if len(tg.Relocations) != tc.relas || tg.Undetermined != "" || len(tg.Notes) != 0 {
			t.Errorf("%s: relocations %v undetermined %q notes %q", tc.file, tg.Relocations, tg.Undetermined, tg.Notes)
		}
	}

	target := open("klp_target.ko")
	if got := target.Info.All("alias"); len(got) != 1 || got[0] != "klp-target-alias" {
		t.Errorf("alias = %q", got)
	}
	if got := target.Info.All("parm"); len(got) != 1 || got[0] != "answer:value returned by klp_target_value" {
		t.Errorf("parm = %q", got)
	}
	if target.Depends() != nil {
		t.Errorf("Depends = %q", target.Depends())
	}
	sig := open("klp_replace.ko").Signature
	// From kmod's `modinfo klp_replace.ko` (sig_id, signer, sig_key,
	// sig_hashalgo), recorded when the file was signed.
	want := &Signature{IDType: "pkcs7", Signer: "klp test signing key",
		KeyID:         "0C:DF:9A:10:39:79:E8:D4:65:2E:58:7D:EC:62:59:B6:46:40:84:B5",
		HashAlgorithm: "sha256", SignatureAlgorithm: "rsa", Length: sig.Length}
	if diff := cmp.Diff(want, sig); diff != "" {
		t.Errorf("signature (-want +got):\n%s", diff)
	}
	if got := (Target{Function: "f", Sympos: 0}).SysfsName(); got != "f,1" {
		t.Errorf("SysfsName = %q", got)
	}
}

// The compressed copies parse to the same Module as the plain file.
func TestCompressed(t *testing.T) {
	t.Parallel()
	plain, err := Open("testdata/klp_vmlinux.ko")
	if err != nil {
		t.Fatal(err)
	}
	for ext, kind := range map[string]string{".xz": "xz", ".zst": "zstd", ".gz": "gzip"} {
		m, err := Open("testdata/klp_vmlinux.ko" + ext)
		if err != nil {
			t.Fatal(err)
		}
		if m.Compression != kind {
			t.Errorf("%s: Compression = %q", ext, m.Compression)
		}
		m.Compression = plain.Compression
		if diff := cmp.Diff(plain, m); diff != "" {
			t.Errorf("%s: unexpected diff (-want +got):\n%s", ext, diff)
		}
	}
}

func TestParseReaderAt(t *testing.T) {
	t.Parallel()
	b := readTestdata(t, "klp_twoobj.ko")
	m, err := Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil || m.Name != "klp_twoobj" {
		t.Fatalf("Parse = %v, %v", m, err)
	}
	if _, err := Parse(bytes.NewReader(b), int64(len(b))+10); !errors.Is(err, ErrTruncated) {
		t.Errorf("Parse with a size past EOF: %v", err)
	}
	if _, err := Parse(bytes.NewReader(b), DefaultLimit+1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Parse past the limit: %v, want ErrTooLarge", err)
	}
	// Exactly the limit is allowed: this reader then ends short of it.
	if _, err := Parse(bytes.NewReader(b), DefaultLimit); !errors.Is(err, ErrTruncated) {
		t.Errorf("Parse of the limit from a shorter reader: %v, want ErrTruncated", err)
	}
	if _, err := Parse(bytes.NewReader(b), 0); !errors.Is(err, ErrNotELF) {
		t.Errorf("Parse of 0 bytes: %v, want ErrNotELF", err)
	}
	if _, err := Parse(bytes.NewReader(b), -1); err == nil || !strings.Contains(err.Error(), "negative size -1") {
		t.Errorf("Parse of -1 bytes: %v, want a negative size error", err)
	}
	// A read error other than EOF is passed on, not taken for a short file.
	errDisk := errors.New("input/output error")
	_, err = Parse(failingReader{b[:100], errDisk}, int64(len(b)))
	if !errors.Is(err, errDisk) || errors.Is(err, ErrTruncated) {
		t.Errorf("Parse from a failing reader: %v, want %v and not ErrTruncated", err, errDisk)
	}
	// A short read that ends with EOF is a truncated file.
	_, err = Parse(failingReader{b[:100], io.EOF}, int64(len(b)))
	if !errors.Is(err, ErrTruncated) {
		t.Errorf("Parse from a reader ending early: %v, want ErrTruncated", err)
	}
}

// failingReader returns its data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (r failingReader) ReadAt(p []byte, off int64) (int, error) {
	n := copy(p, r.data[min(off, int64(len(r.data))):])
	if n < len(p) {
		return n, r.err
	}
	return n, nil
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	_, err := Open("testdata/does-not-exist.ko")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing) = %v", err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(p, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(p)
	if !errors.Is(err, ErrNotELF) || !strings.Contains(err.Error(), p) {
		t.Errorf("Open(text) = %v, want ErrNotELF naming the file", err)
	}
}

// mutate returns a copy of the klp_vmlinux.ko image changed by fn.
func mutate(t *testing.T, fn func(b []byte, bo binary.ByteOrder) []byte) []byte {
	t.Helper()
	b := bytes.Clone(readTestdata(t, "klp_vmlinux.ko"))
	return fn(b, binary.LittleEndian)
}

func shoff(b []byte) uint64 { return binary.LittleEndian.Uint64(b[40:]) }

// renameSection renames a section in .shstrtab in place (same length). The
// name may be stored as the tail of a longer one (".rela.gnu.linkonce..."),
// so only the terminating NUL is matched.
func renameSection(b []byte, from, to string) []byte {
	return bytes.Replace(b, []byte(from+"\x00"), []byte(to+"\x00"), 1)
}

func TestMalformed(t *testing.T) {
	t.Parallel()
	le := binary.LittleEndian
	for _, tc := range []struct {
		name string
		img  []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrNotELF, "no ELF magic"},
		{"text", []byte("#!/bin/sh\necho hi\n"), ErrNotELF, "no ELF magic"},
		{"magic only", []byte(elf.ELFMAG), ErrTruncated, "identification"},
		{"header cut", mutate(t, func(b []byte, _ binary.ByteOrder) []byte { return b[:40] }), ErrTruncated, "ELF header"},
		{"half file", mutate(t, func(b []byte, _ binary.ByteOrder) []byte { return b[:len(b)/2] }), ErrTruncated, "section header table"},
		{"last byte cut", mutate(t, func(b []byte, _ binary.ByteOrder) []byte { return b[:len(b)-1] }), ErrTruncated, ""},
		{"32-bit", mutate(t, func(b []byte, _ binary.ByteOrder) []byte { b[elf.EI_CLASS] = byte(elf.ELFCLASS32); return b }), ErrWrongArch, "32-bit"},
		{"bad class", mutate(t, func(b []byte, _ binary.ByteOrder) []byte { b[elf.EI_CLASS] = 7; return b }), ErrNotELF, "class"},
		{"bad data", mutate(t, func(b []byte, _ binary.ByteOrder) []byte { b[elf.EI_DATA] = 0; return b }), ErrNotELF, "encoding"},
		{"bad version", mutate(t, func(b []byte, _ binary.ByteOrder) []byte { b[elf.EI_VERSION] = 9; return b }), ErrMalformed, "version"},
		{"executable", mutate(t, func(b []byte, bo binary.ByteOrder) []byte { bo.PutUint16(b[16:], uint16(elf.ET_EXEC)); return b }), ErrNotModule, "ET_EXEC"},
		{"no section headers", mutate(t, func(b []byte, bo binary.ByteOrder) []byte { bo.PutUint64(b[40:], 0); return b }), ErrNotModule, "section header table"},
		{"65535 sections", mutate(t, func(b []byte, bo binary.ByteOrder) []byte { bo.PutUint16(b[60:], 0xffff); return b }), ErrTruncated, "65535 section headers"},
		{"2^40 sections", mutate(t, func(b []byte, bo binary.ByteOrder) []byte {
			bo.PutUint16(b[60:], 0) // extended numbering: count in section 0's sh_size
			bo.PutUint64(b[shoff(b)+32:], 1<<40)
			return b
		}), ErrTruncated, "1099511627776 section headers"},
		{"4 GiB section headers", mutate(t, func(b []byte, bo binary.ByteOrder) []byte {
			bo.PutUint16(b[60:], 0)
			bo.PutUint64(b[shoff(b)+32:], 1<<26) // 64 B each
			return b
		}), ErrTruncated, "do not fit"},
		{"shoff past end", mutate(t, func(b []byte, bo binary.ByteOrder) []byte { bo.PutUint64(b[40:], 1<<62); return b }), ErrTruncated, "past end"},
		{"shentsize", mutate(t, func(b []byte, bo binary.ByteOrder) []byte { bo.PutUint16(b[58:], 40); return b }), ErrMalformed, "entry size"},
		{"shstrndx", mutate(t, func(b []byte, bo binary.ByteOrder) []byte { bo.PutUint16(b[62:], 500); return b }), ErrMalformed, "name table index"},
		{"huge section", mutate(t, func(b []byte, bo binary.ByteOrder) []byte { bo.PutUint64(b[shoff(b)+3*64+32:], 1<<62); return b }), ErrTruncated, "section 3"},
		{"section offset past end", mutate(t, func(b []byte, bo binary.ByteOrder) []byte { bo.PutUint64(b[shoff(b)+3*64+24:], 1<<40); return b }), ErrTruncated, "section 3"},
		{"program headers past end", mutate(t, func(b []byte, bo binary.ByteOrder) []byte {
			bo.PutUint64(b[32:], 64)
			bo.PutUint16(b[54:], 56)
			bo.PutUint16(b[56:], 0xffff)
			return b
		}), ErrTruncated, "program headers"},
		{"compressed .modinfo", mutate(t, func(b []byte, bo binary.ByteOrder) []byte {
			f, _ := elf.NewFile(bytes.NewReader(b))
			for i, s := range f.Sections {
				if s.Name == ".modinfo" {
					off := shoff(b) + uint64(i)*64 + 8
					bo.PutUint64(b[off:], uint64(s.Flags|elf.SHF_COMPRESSED))
				}
			}
			return b
		}), ErrMalformed, "compressed"},
		{"compressed name table", mutate(t, func(b []byte, bo binary.ByteOrder) []byte {
			off := shoff(b) + uint64(bo.Uint16(b[62:]))*64 + 8
			bo.PutUint64(b[off:], bo.Uint64(b[off:])|uint64(elf.SHF_COMPRESSED))
			return b
		}), ErrMalformed, "name table is compressed"},
		{"not a module", mutate(t, func(b []byte, _ binary.ByteOrder) []byte {
			b = renameSection(b, ".modinfo", ".xodinfo")
			return renameSection(b, ".gnu.linkonce.this_module", ".gnu.linkonce.xhis_module")
		}), ErrNotModule, ".modinfo"},
		{"gzip cut", func() []byte { b := readTestdata(t, "klp_vmlinux.ko.gz"); return b[:len(b)/2] }(), ErrTruncated, "gzip"},
		{"xz cut", func() []byte { b := readTestdata(t, "klp_vmlinux.ko.xz"); return b[:len(b)/2] }(), ErrMalformed, "xz"},
		{"zstd cut", func() []byte { b := readTestdata(t, "klp_vmlinux.ko.zst"); return b[:len(b)/2] }(), nil, "zstd"},
		// Boundaries: exactly at each limit of the header checks.
		{"identification only", basicModule()[:elf.EI_NIDENT], ErrTruncated, "16-byte file, ELF header needs 64"},
		{"32-bit, machine readable", func() []byte {
			b := basicModule()[:20]
			b[elf.EI_CLASS] = byte(elf.ELFCLASS32)
			return b
		}(), ErrWrongArch, "32-bit ELF file for EM_X86_64;"},
		{"32-bit, machine cut", func() []byte {
			b := basicModule()[:19]
			b[elf.EI_CLASS] = byte(elf.ELFCLASS32)
			return b
		}(), ErrWrongArch, "32-bit ELF file;"},
		{"header only", func() []byte {
			b := basicModule()[:64]
			le.PutUint64(b[40:], 0)
			return b
		}(), ErrNotModule, "no section header table"},
		{"program header one byte past the end", func() []byte {
			b := basicModule()
			le.PutUint64(b[32:], uint64(len(b))+1)
			le.PutUint16(b[54:], 56)
			le.PutUint16(b[56:], 1)
			return append(b, make([]byte, 56)...)
		}(), ErrTruncated, "1 program headers at"},
		{"section header table cut", func() []byte {
			b := basicModule()
			le.PutUint64(b[40:], uint64(len(b))-32)
			return b
		}(), ErrTruncated, "section header table at"},
		{"section one byte past the end", func() []byte {
			b := appendModinfo(t, basicModule(), "license=GPL\x00")
			h := sectionHeader(t, b, ".modinfo")
			le.PutUint64(h[32:], le.Uint64(h[32:])+1)
			return b
		}(), ErrTruncated, "extends past end of file"},
		{"one section header ending the file", func() []byte {
			b := append(basicModule()[:64], make([]byte, 64)...)
			le.PutUint64(b[40:], 64)
			le.PutUint16(b[60:], 1)
			le.PutUint16(b[62:], 0)
			return b
		}(), ErrMalformed, "section name table index 0 of 1"},
		{"shstrndx = shnum", func() []byte {
			b := basicModule()
			le.PutUint16(b[62:], le.Uint16(b[60:]))
			return b
		}(), ErrMalformed, "name table index"},
		{"name index past the name table", func() []byte {
			b := basicModule()
			h := sectionHeader(t, b, ".modinfo")
			le.PutUint32(h[0:], uint32(le.Uint64(sectionHeader(t, b, ".shstrtab")[32:])))
			return b
		}(), ErrMalformed, "bad section name index"},
		{"names one byte over", namesOver(t, 1), ErrMalformed, "section names add up to more than the file size"},
		{"long section name", func() []byte {
			b := newELF(le, elf.EM_X86_64)
			b.modBase("x")
			b.section(strings.Repeat("n", maxSectionName+1), elf.SHT_PROGBITS, 0, nil)
			return b.bytes(true)
		}(), ErrMalformed, "name longer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseBytes(tc.img)
			if err == nil {
				t.Fatalf("ParseBytes = %+v, want an error", m)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %q does not wrap %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

// Other 64-bit architectures parse; the CLI decides what to do with them.
// With x86_64 relocation numbers under another e_machine, the functions
// cannot be found, and the Module says so rather than guessing.
func TestOtherArch(t *testing.T) {
	t.Parallel()
	img := mutate(t, func(b []byte, bo binary.ByteOrder) []byte { bo.PutUint16(b[18:], uint16(elf.EM_AARCH64)); return b })
	m, err := ParseBytes(img)
	if err != nil {
		t.Fatal(err)
	}
	if m.Machine != "aarch64" || m.Name != "klp_vmlinux" {
		t.Errorf("machine %q name %q", m.Machine, m.Name)
	}
	if m.Targets == nil || len(m.Targets.Functions) != 0 || m.Targets.Undetermined == "" {
		t.Errorf("Targets = %+v, want undetermined functions", m.Targets)
	}
}

func TestNameFromModinfo(t *testing.T) {
	t.Parallel()
	b := newELF(binary.LittleEndian, elf.EM_X86_64)
	b.section(".modinfo", elf.SHT_PROGBITS, elf.SHF_ALLOC, []byte("license=GPL\x00\x00\x00name=only_modinfo\x00noequals\x00"))
	m, err := ParseBytes(b.bytes(true))
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "only_modinfo" || m.NameSource != NameFromModinfo {
		t.Errorf("name %q from %s", m.Name, m.NameSource)
	}
	want := Info{{"license", "GPL"}, {"name", "only_modinfo"}, {"noequals", ""}}
	if diff := cmp.Diff(want, m.Info); diff != "" {
		t.Errorf("Info (-want +got):\n%s", diff)
	}
	if len(m.Notes) == 0 {
		t.Error("no note about the missing .gnu.linkonce.this_module")
	}

	// A this_module name that disagrees with name= is noted.
	b = newELF(binary.LittleEndian, elf.EM_X86_64)
	b.modBase("real_name", "name=other_name", "depends=a,b")
	m, err = ParseBytes(b.bytes(true))
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "real_name" || len(m.Notes) != 1 || !strings.Contains(m.Notes[0], "differs") {
		t.Errorf("name %q notes %q", m.Name, m.Notes)
	}
	if diff := cmp.Diff([]string{"a", "b"}, m.Depends()); diff != "" {
		t.Errorf("Depends (-want +got):\n%s", diff)
	}
}

// sign appends sig data, a struct module_signature and the marker.
func sign(img []byte, algo, hash, idType byte, signer, keyID, sig []byte, sigLen uint32) []byte {
	out := bytes.Clone(img)
	out = append(out, signer...)
	out = append(out, keyID...)
	out = append(out, sig...)
	ms := []byte{algo, hash, idType, byte(len(signer)), byte(len(keyID)), 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(ms[8:], sigLen)
	return append(append(out, ms...), moduleSigMagic...)
}

func TestSignatureVariants(t *testing.T) {
	t.Parallel()
	plain := readTestdata(t, "klp_target.ko")
	for _, tc := range []struct {
		name  string
		img   []byte
		want  *Signature
		notes int
	}{
		{"marker only", append(bytes.Clone(plain[:64]), moduleSigMagic...), nil, 0},
		{"pkcs7 garbage", sign(plain, 0, 0, 2, nil, nil, []byte("not DER"), 7),
			&Signature{IDType: "pkcs7", Length: 7, Undetermined: "cannot parse PKCS#7 signature: content info: asn1: structure error"}, 0},
		{"pkcs7 length past start", sign(plain, 0, 0, 2, nil, nil, nil, 1<<31),
			&Signature{IDType: "pkcs7", Length: 1 << 31, Undetermined: "sig_len 2147483648 exceeds the 7232 bytes before it"}, 0},
		{"pkcs7 non-zero params", sign(plain, 1, 4, 2, nil, nil, []byte{0x30, 0}, 2),
			&Signature{IDType: "pkcs7", Length: 2, Undetermined: "cannot parse PKCS#7 signature: content info: asn1: "}, 1},
		{"legacy x509", sign(plain, 1, 4, 1, []byte("Example Signer"), []byte{0xab, 0x01}, []byte{1, 2, 3}, 3),
			&Signature{IDType: "x509", Signer: "Example Signer", KeyID: "AB:01", HashAlgorithm: "sha256", SignatureAlgorithm: "rsa", Length: 3}, 1},
		{"unknown id type", sign(plain, 0, 0, 9, nil, nil, []byte{1}, 1),
			&Signature{IDType: "unknown(9)", Length: 1, Undetermined: "unknown signature id_type 9"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseBytes(tc.img)
			if tc.want == nil { // a 64-byte image cannot parse; the marker must not crash anything
				if err == nil {
					t.Errorf("ParseBytes = %+v", m)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Name != "klp_target" {
				t.Errorf("Name = %q: the signature was not cut off correctly", m.Name)
			}
			// Undetermined is compared by prefix: its tail is encoding/asn1's text.
			if m.Signature != nil && strings.HasPrefix(m.Signature.Undetermined, tc.want.Undetermined) {
				m.Signature.Undetermined = tc.want.Undetermined
			}
			if diff := cmp.Diff(tc.want, m.Signature); diff != "" {
				t.Errorf("unexpected diff (-want +got):\n%s", diff)
			}
			if len(m.Notes) != tc.notes {
				t.Errorf("Notes = %q, want %d", m.Notes, tc.notes)
			}
		})
	}
}

// splitSignature at the limits of its length checks: a signature that
// fills everything before it leaves an empty ELF part, one byte more is
// past the start.
func TestSplitSignatureLimits(t *testing.T) {
	t.Parallel()
	pkcs7Err := "cannot parse PKCS#7 signature: content info: "
	for _, tc := range []struct {
		name    string
		img     []byte
		elfPart string
		want    Signature // Undetermined is compared by prefix
	}{
		{"struct only", sign(nil, 0, 0, 2, nil, nil, nil, 0), "",
			Signature{IDType: "pkcs7", Undetermined: pkcs7Err}},
		{"struct cut by one byte", sign(nil, 0, 0, 2, nil, nil, nil, 0)[1:], "\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00",
			Signature{IDType: "unknown", Undetermined: "signature marker present but struct module_signature is truncated"}},
		{"pkcs7 filling the image", sign(nil, 0, 0, 2, nil, nil, []byte("abc"), 3), "",
			Signature{IDType: "pkcs7", Length: 3, Undetermined: pkcs7Err}},
		{"pkcs7 one byte past the start", sign(nil, 0, 0, 2, nil, nil, []byte("abc"), 4), "abc",
			Signature{IDType: "pkcs7", Length: 4, Undetermined: "sig_len 4 exceeds the 3 bytes before it"}},
		{"x509 filling the image", sign(nil, 1, 7, 1, []byte("S"), []byte{0xc1}, []byte("z"), 1), "",
			Signature{IDType: "x509", Signer: "S", KeyID: "C1", HashAlgorithm: "sha224", SignatureAlgorithm: "rsa", Length: 1}},
		{"x509 one byte past the start", sign(nil, 1, 7, 1, []byte("S"), []byte{0xc1}, []byte("z"), 2), "S\xc1z",
			Signature{IDType: "x509", Length: 2, Undetermined: "signature lengths (4) exceed the 3 bytes before them"}},
		{"pgp, unknown hash", sign([]byte("elf"), 0, 8, 0, nil, []byte{1, 2}, []byte("z"), 1), "elf",
			Signature{IDType: "pgp", KeyID: "01:02", HashAlgorithm: "unknown(8)", SignatureAlgorithm: "dsa", Length: 1}},
		{"x509, unknown algorithm", sign([]byte("elf"), 2, 0, 1, nil, nil, []byte("z"), 1), "elf",
			Signature{IDType: "x509", HashAlgorithm: "md4", SignatureAlgorithm: "unknown(2)", Length: 1}},
		{"unknown type filling the image", sign(nil, 0, 0, 9, nil, nil, []byte("abc"), 3), "",
			Signature{IDType: "unknown(9)", Length: 3, Undetermined: "unknown signature id_type 9"}},
		{"unknown type one byte past the start", sign(nil, 0, 0, 9, nil, nil, []byte("abc"), 4), "abc",
			Signature{IDType: "unknown(9)", Length: 4, Undetermined: "unknown signature id_type 9"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			elfPart, sig, _ := splitSignature(tc.img)
			if string(elfPart) != tc.elfPart {
				t.Errorf("ELF part %q, want %q", elfPart, tc.elfPart)
			}
			if sig == nil {
				t.Fatal("no signature")
			}
			if strings.HasPrefix(sig.Undetermined, tc.want.Undetermined) {
				sig.Undetermined = tc.want.Undetermined
			}
			if diff := cmp.Diff(&tc.want, sig); diff != "" {
				t.Errorf("signature (-want +got):\n%s", diff)
			}
		})
	}
}

// der builds DER values for the PKCS#7 cases.
type der struct{ t *testing.T }

func (d der) raw(class, tag int, compound bool, elems ...[]byte) []byte {
	b, err := asn1.Marshal(asn1.RawValue{Class: class, Tag: tag, IsCompound: compound, Bytes: bytes.Join(elems, nil)})
	if err != nil {
		d.t.Fatal(err)
	}
	return b
}

func (d der) val(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		d.t.Fatal(err)
	}
	return b
}

func (d der) seq(elems ...[]byte) []byte {
	return d.raw(asn1.ClassUniversal, asn1.TagSequence, true, elems...)
}
func (d der) set(elems ...[]byte) []byte {
	return d.raw(asn1.ClassUniversal, asn1.TagSet, true, elems...)
}
func (d der) alg(oid ...int) []byte { return d.seq(d.val(asn1.ObjectIdentifier(oid))) }

// signedData wraps signer infos (and the fields before them) in a
// ContentInfo of type signedData.
func (d der) signedData(fields ...[]byte) []byte {
	head := [][]byte{d.val(1), d.set(d.alg(2, 16, 840, 1, 101, 3, 4, 2, 1)), d.seq(d.val(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}))}
	return d.seq(d.val(oidSignedData), d.raw(asn1.ClassContextSpecific, 0, true, d.seq(append(head, fields...)...)))
}

// The PKCS#7 reader on the SignerInfo shapes sign-file does not make:
// a subject key identifier, authenticated attributes, an issuer without a
// common name, unknown algorithms, and broken structures.
func TestPKCS7Shapes(t *testing.T) {
	t.Parallel()
	d := der{t}
	sha256, rsa, ecdsa := d.alg(2, 16, 840, 1, 101, 3, 4, 2, 1), d.alg(1, 2, 840, 113549, 1, 1, 1), d.alg(1, 2, 840, 10045, 4, 3, 2)
	issuer := func(n pkix.Name, serial []byte) []byte {
		return d.seq(d.val(n.ToRDNSequence()), d.raw(asn1.ClassUniversal, asn1.TagInteger, false, serial))
	}
	ski := d.raw(asn1.ClassContextSpecific, 0, false, []byte{0xab, 0xcd})
	attrs := d.raw(asn1.ClassContextSpecific, 0, true, d.seq(d.val(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3})))
	sigValue := d.raw(asn1.ClassUniversal, asn1.TagOctetString, false, []byte{1, 2, 3})
	one := d.val(1)
	info := func(elems ...[]byte) []byte { return d.signedData(d.set(d.seq(elems...))) }
	for _, tc := range []struct {
		name string
		der  []byte
		want Signature
		err  string
	}{
		{"subject key identifier, authenticated attributes", info(one, ski, sha256, attrs, ecdsa, sigValue),
			Signature{KeyID: "AB:CD", HashAlgorithm: "sha256", SignatureAlgorithm: "ecdsa"}, ""},
		{"issuer without a common name", info(one, issuer(pkix.Name{Organization: []string{"Example"}}, []byte{0, 0x42}), sha256, rsa, sigValue),
			Signature{Signer: "O=Example", KeyID: "42", HashAlgorithm: "sha256", SignatureAlgorithm: "rsa"}, ""},
		{"unknown algorithms", info(one, ski, d.alg(1, 2, 3), d.alg(1, 2, 4), sigValue),
			Signature{KeyID: "AB:CD", HashAlgorithm: "unknown(1.2.3)", SignatureAlgorithm: "unknown(1.2.4)"}, ""},
		{"certificates before the signer infos", d.signedData(d.raw(asn1.ClassContextSpecific, 0, true), d.set(d.seq(one, ski, sha256, rsa, sigValue))),
			Signature{KeyID: "AB:CD", HashAlgorithm: "sha256", SignatureAlgorithm: "rsa"}, ""},
		{"unknown signer identifier", info(one, one, sha256, rsa, sigValue),
			Signature{HashAlgorithm: "sha256", SignatureAlgorithm: "rsa"}, "unknown signer identifier"},
		{"bad algorithms", info(one, ski, one, attrs, one, sigValue),
			Signature{KeyID: "AB:CD"}, "digest algorithm: asn1: structure error"},
		{"signer info of four elements", info(one, ski, sha256, rsa), Signature{}, "signer info too short"},
		{"no signer infos", d.signedData(), Signature{}, "no signer infos"},
		{"empty signer infos", d.signedData(d.set()), Signature{}, "no signer info"},
		{"not signed data", d.seq(d.val(asn1.ObjectIdentifier{1, 2, 3}), d.raw(asn1.ClassContextSpecific, 0, true, d.seq())), Signature{}, "content type 1.2.3 is not signedData"},
		{"trailing data", append(info(one, ski, sha256, rsa, sigValue), 0), Signature{}, "trailing data after content info"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var sig Signature
			err := parsePKCS7(tc.der, &sig)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.err)) {
				t.Errorf("parsePKCS7 = %v, want an error starting %q", err, tc.err)
			}
			if diff := cmp.Diff(tc.want, sig); diff != "" {
				t.Errorf("signature (-want +got):\n%s", diff)
			}
		})
	}
}

// A compressed module that expands past the limit fails with ErrTooLarge
// (the limit is lowered from DefaultLimit to keep the test small).
func TestDecompressionBomb(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(make([]byte, 8<<20)); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	_, err := parseLimit(buf.Bytes(), 1<<20)
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("parse of a %d-byte gzip bomb = %v, want ErrTooLarge", buf.Len(), err)
	}
}

func BenchmarkParse(b *testing.B) {
	for _, name := range []string{"klp_twoobj.ko", "klp_vmlinux.ko.xz"} {
		img := readTestdata(b, name)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(img)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseBytes(img); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// basicModule is a small well-formed module (little-endian x86_64) for the
// boundary cases below: .modinfo, .gnu.linkonce.this_module, a symbol table.
func basicModule() []byte {
	b := newELF(binary.LittleEndian, elf.EM_X86_64)
	b.modBase("edge", "license=GPL", "vermagic=6.1.0 SMP mod_unload ")
	return b.bytes(true)
}

// sectionHeader returns the header of the section named name in a
// little-endian image (a slice of the image: writes change it).
func sectionHeader(t *testing.T, img []byte, name string) []byte {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range f.Sections {
		if s.Name == name {
			return img[shoff(img)+uint64(i)*64:][:64]
		}
	}
	t.Fatalf("no section %s", name)
	return nil
}

// appendModinfo appends entries after the section header table and points
// .modinfo at them, so that the section ends exactly at the end of the file.
func appendModinfo(t *testing.T, img []byte, entries string) []byte {
	t.Helper()
	img = bytes.Clone(img)
	off := uint64(len(img))
	img = append(img, entries...)
	h := sectionHeader(t, img, ".modinfo")
	binary.LittleEndian.PutUint64(h[24:], off)
	binary.LittleEndian.PutUint64(h[32:], uint64(len(entries)))
	return img
}

// namesOver builds a module whose section names add up to over bytes more
// than the file size plus namesSlack: 300 sections share one 4096-byte name
// (section names may share .shstrtab bytes), and bytes appended after the
// section header table set the file size.
func namesOver(t *testing.T, over int) []byte {
	t.Helper()
	b := newELF(binary.LittleEndian, elf.EM_X86_64)
	b.modBase("names")
	long := strings.Repeat("s", maxSectionName)
	b.section(long, elf.SHT_PROGBITS, 0, nil)
	for range 299 {
		b.section("x", elf.SHT_PROGBITS, 0, nil)
	}
	img := b.bytes(false)
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	shared := binary.LittleEndian.Uint32(sectionHeader(t, img, long)[0:])
	total := 0
	for i, s := range f.Sections[1:] {
		if s.Name == "x" {
			binary.LittleEndian.PutUint32(img[shoff(img)+uint64(i+1)*64:], shared)
			total += len(long)
		} else {
			total += len(s.Name)
		}
	}
	size := total - namesSlack - over
	if size < len(img) {
		t.Fatalf("names add up to %d bytes, too few for a %d-byte file", total, len(img))
	}
	return append(img, make([]byte, size-len(img))...)
}

// Files that sit exactly at a limit of the checks parse.
func TestELFLimitsAccepted(t *testing.T) {
	t.Parallel()
	le := binary.LittleEndian
	for _, tc := range []struct {
		name string
		img  []byte
		info Info
	}{
		{"program header ending the file", func() []byte {
			b := basicModule()
			le.PutUint64(b[32:], uint64(len(b)))
			le.PutUint16(b[54:], 56)
			le.PutUint16(b[56:], 1)
			return append(b, make([]byte, 56)...)
		}(), Info{{"license", "GPL"}, {"vermagic", "6.1.0 SMP mod_unload "}}},
		{"empty .modinfo at the end of the file", appendModinfo(t, basicModule(), ""), Info{}},
		{".modinfo ending the file", appendModinfo(t, basicModule(), "license=GPL\x00name=edge\x00"),
			Info{{"license", "GPL"}, {"name", "edge"}}},
		{"section without a name", func() []byte {
			b := newELF(le, elf.EM_X86_64)
			b.modBase("edge", "license=GPL")
			b.section("", elf.SHT_PROGBITS, 0, []byte{1})
			return b.bytes(true)
		}(), Info{{"license", "GPL"}}},
		{"longest section name", func() []byte {
			b := newELF(le, elf.EM_X86_64)
			b.modBase("edge", "license=GPL")
			b.section(strings.Repeat("n", maxSectionName), elf.SHT_PROGBITS, 0, nil)
			return b.bytes(true)
		}(), Info{{"license", "GPL"}}},
		{"names add up to the limit", namesOver(t, 0), Info{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseBytes(tc.img)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.info, m.Info); diff != "" {
				t.Errorf("Info (-want +got):\n%s", diff)
			}
		})
	}
}
