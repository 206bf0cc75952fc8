package modinfo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klp-project/klp/internal/modcompress"
	"github.com/klp-project/klp/internal/sysfile"
)

// DefaultLimit caps the size of a file and of the image it decompresses to.
const DefaultLimit = modcompress.DefaultLimit

// Module is what a kernel module file says about itself. It depends only on
// the file's bytes: the same file gives the same Module on every machine.
// Anything that depends on the running kernel (does vermagic match, is it
// loaded, do the target symbols exist) belongs to the callers.
//
// klp info --json prints it as package report builds it.
type Module struct {
	// Compression is the format the file was stored in: "none", "gzip",
	// "xz" or "zstd".
	Compression string
	// Size is the size of the (decompressed) module image, signature
	// included.
	Size int64

	// Name is the module name the kernel will use (and the directory name
	// under /sys/kernel/livepatch for a livepatch).
	Name string
	// NameSource says where Name was read.
	NameSource NameSource

	Class     string // "ELF64"
	ByteOrder string // "little-endian" or "big-endian"
	// Machine is the architecture in `uname -m` spelling where klp knows it
	// ("x86_64", "aarch64", "ppc64le", "ppc64", "s390x", "loongarch64",
	// "riscv64"), else debug/elf's name of e_machine in lower case.
	Machine string

	// Info holds the .modinfo entries in file order. Keys repeat (depends,
	// alias, parm, ...).
	Info Info
	// Livepatch is true when .modinfo has a livepatch entry: the kernel's
	// check_modinfo_livepatch sets mod->klp when the key is present,
	// whatever its value (MODULE_INFO(livepatch, "Y") writes "Y").
	Livepatch bool
	// Vermagic is .modinfo's vermagic entry (kernel release and flags the
	// module was built for), or "".
	Vermagic string

	// Signature is the appended module signature, or nil if there is none.
	Signature *Signature

	// Targets lists what a livepatch patches. It is nil for a module that is
	// neither tagged livepatch nor carries livepatch ELF sections or symbols.
	Targets *Targets

	// Notes are observations that are not errors: oddities in the file, and
	// facts that could not be determined.
	Notes []string
}

// NameSource says where [Module.Name] came from.
type NameSource string

const (
	// NameFromThisModule: struct module.name in .gnu.linkonce.this_module,
	// which is what the kernel uses.
	NameFromThisModule NameSource = "this_module"
	// NameFromModinfo: the name= entry of .modinfo (written by modpost),
	// used when .gnu.linkonce.this_module has no name.
	NameFromModinfo NameSource = "modinfo"
	// NameUnknown: neither had a name.
	NameUnknown NameSource = "unknown"
)

// KeyValue is one .modinfo entry.
type KeyValue struct {
	Key   string
	Value string
}

// Info is the ordered list of .modinfo entries.
type Info []KeyValue

// Get returns the value of the first entry with key, as modinfo -F does for
// single-valued keys.
func (in Info) Get(key string) (string, bool) {
	for _, kv := range in {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

// All returns the values of every entry with key, in file order.
func (in Info) All(key string) []string {
	var vs []string
	for _, kv := range in {
		if kv.Key == key {
			vs = append(vs, kv.Value)
		}
	}
	return vs
}

// Depends returns the module names in the depends= entry. An empty entry
// (modpost always writes one) gives nil.
func (m *Module) Depends() []string {
	v, _ := m.Info.Get("depends")
	var deps []string
	for _, d := range strings.Split(v, ",") {
		if d != "" {
			deps = append(deps, d)
		}
	}
	return deps
}

// RequireLivepatch returns nil for a livepatch module and an error wrapping
// [ErrNotLivepatch] otherwise.
func (m *Module) RequireLivepatch() error {
	if m.Livepatch {
		return nil
	}
	return fmt.Errorf("module %q: %w (no livepatch entry in .modinfo)", m.Name, ErrNotLivepatch)
}

// Open parses the kernel module file at path, which may be compressed with
// xz, zstd or gzip (detected from its contents). Errors name the file.
//
// Only a regular file (or a link to one) is read: a FIFO, a device or a
// socket given as a module is refused at once, without blocking.
func Open(path string) (*Module, error) {
	f, err := sysfile.OpenFollow(path)
	if err != nil {
		return nil, err // *PathError names the file
	}
	defer f.Close()
	b, err := modcompress.ReadAllLimit(f, DefaultLimit)
	if errors.Is(err, ErrTooLarge) {
		return nil, fmt.Errorf("file %s: over %d bytes: %w", path, DefaultLimit, ErrTooLarge)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	m, err := ParseBytes(b)
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", path, err)
	}
	return m, nil
}

// Parse parses a kernel module of size bytes read from r. Like [Open] it
// accepts compressed modules. size may not exceed [DefaultLimit].
func Parse(r io.ReaderAt, size int64) (*Module, error) {
	if size < 0 {
		return nil, fmt.Errorf("read module: negative size %d", size)
	}
	if size > DefaultLimit {
		return nil, fmt.Errorf("read module: %d bytes: %w", size, ErrTooLarge)
	}
	b := make([]byte, size)
	n, err := r.ReadAt(b, 0)
	if n < len(b) {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read module: %w: %d of %d bytes", ErrTruncated, n, size)
		}
		return nil, fmt.Errorf("read module: %w", err)
	}
	return ParseBytes(b)
}

// ParseBytes parses a kernel module image held in memory (compressed or
// not). The Module does not keep references to b.
func ParseBytes(b []byte) (*Module, error) {
	return parseLimit(b, DefaultLimit)
}

func parseLimit(b []byte, limit int64) (*Module, error) {
	img, kind, err := modcompress.Decompress(b, limit)
	if err != nil {
		return nil, classifyDecompress(err)
	}
	return parseImage(img, kind)
}

// classifyDecompress adds the matching sentinel to a decompression error.
func classifyDecompress(err error) error {
	switch {
	case errors.Is(err, ErrTooLarge):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("%w: %w", ErrTruncated, err)
	}
	return fmt.Errorf("%w: %w", ErrMalformed, err)
}

// parseImage parses a decompressed module image.
func parseImage(img []byte, kind modcompress.Kind) (*Module, error) {
	m := &Module{Compression: kind.String(), Size: int64(len(img))}

	elfPart, sig, sigNotes := splitSignature(img)
	m.Signature = sig
	m.Notes = append(m.Notes, sigNotes...)

	f, err := openELF(elfPart)
	if err != nil {
		return nil, err
	}
	m.Class = "ELF64"
	m.ByteOrder = "little-endian"
	if f.bigEndian() {
		m.ByteOrder = "big-endian"
	}
	m.Machine = machineName(f.Machine, f.bigEndian())

	modinfoSec := f.section(".modinfo")
	thisModule := f.section(".gnu.linkonce.this_module")
	if modinfoSec == nil && thisModule == nil {
		return nil, fmt.Errorf("%w: no .modinfo or .gnu.linkonce.this_module section", ErrNotModule)
	}
	if modinfoSec != nil {
		data, err := f.data(modinfoSec)
		if err != nil {
			return nil, err
		}
		m.Info = parseModinfo(data)
	} else {
		m.Notes = append(m.Notes, "no .modinfo section")
	}
	if m.Info == nil {
		m.Info = Info{} // JSON [] rather than null
	}
	_, m.Livepatch = m.Info.Get("livepatch")
	m.Vermagic, _ = m.Info.Get("vermagic")

	m.NameSource = NameUnknown
	var thisName string
	if thisModule != nil {
		data, err := f.data(thisModule)
		if err != nil {
			return nil, err
		}
		thisName = thisModuleName(data)
	} else {
		m.Notes = append(m.Notes, "no .gnu.linkonce.this_module section: the kernel will refuse to load it")
	}
	infoName, _ := m.Info.Get("name")
	switch {
	case thisName != "":
		m.Name, m.NameSource = thisName, NameFromThisModule
		if infoName != "" && infoName != thisName {
			m.Notes = append(m.Notes, fmt.Sprintf("name in .modinfo (%q) differs from .gnu.linkonce.this_module (%q)", infoName, thisName))
		}
	case infoName != "":
		m.Name, m.NameSource = infoName, NameFromModinfo
	}

	m.Targets = findTargets(f, m)
	return m, nil
}

// parseModinfo splits .modinfo into key=value entries. Entries are
// NUL-terminated; runs of NULs are alignment padding on some kernels. An
// entry without '=' is kept with an empty value (the kernel would ignore it).
func parseModinfo(data []byte) Info {
	var in Info
	for _, e := range bytes.Split(data, []byte{0}) {
		if len(e) == 0 {
			continue
		}
		k, v, _ := strings.Cut(string(e), "=")
		in = append(in, KeyValue{Key: k, Value: v})
	}
	return in
}

// Layout of the start of struct module on 64-bit kernels: enum module_state
// state (4 bytes, padded to 8); struct list_head list (16); char
// name[MODULE_NAME_LEN], MODULE_NAME_LEN = 64 - sizeof(unsigned long). This
// prefix has not changed since 2.6.
const (
	moduleNameOffset = 24
	moduleNameLen    = 56
)

// thisModuleName reads struct module.name from .gnu.linkonce.this_module.
func thisModuleName(data []byte) string {
	if len(data) <= moduleNameOffset {
		return ""
	}
	name := data[moduleNameOffset:min(len(data), moduleNameOffset+moduleNameLen)]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	} else {
		return "" // not NUL-terminated: not a name
	}
	return string(name)
}
