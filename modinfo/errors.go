package modinfo

import (
	"errors"

	"github.com/klp-project/klp/internal/modcompress"
)

// Sentinel errors. Errors returned by [Open] and [Parse] wrap one of these
// (test with [errors.Is]) together with a message saying what was wrong.
var (
	// ErrNotELF: the (decompressed) file does not start with the ELF magic, or
	// its ELF identification bytes are invalid.
	ErrNotELF = errors.New("not an ELF file")
	// ErrTruncated: the file ends before a structure it declares (header,
	// section header table, a section's contents, a compressed stream).
	ErrTruncated = errors.New("truncated file")
	// ErrWrongArch: a well-formed ELF file that klp cannot read as a kernel
	// module, such as a 32-bit one. No livepatch architecture is 32-bit, and
	// the struct layouts read here (struct module, klp_func) are the 64-bit
	// ones. 64-bit files of any machine are parsed; [Module.Machine] says which.
	ErrWrongArch = errors.New("unsupported ELF class or architecture")
	// ErrNotModule: an ELF file that is not a loadable kernel module: not
	// ET_REL, or without both .modinfo and .gnu.linkonce.this_module.
	ErrNotModule = errors.New("not a kernel module")
	// ErrMalformed: an ELF structure is inconsistent (bad sizes, indexes out
	// of range, debug/elf gave up or panicked).
	ErrMalformed = errors.New("malformed ELF file")
	// ErrTooLarge: the file, or the image it decompresses to, exceeds the
	// size limit (a decompression bomb ends here).
	ErrTooLarge = modcompress.ErrTooLarge
	// ErrNotLivepatch is returned by [Module.RequireLivepatch] for a module
	// without the livepatch modinfo tag. Parsing such a module is not an error.
	ErrNotLivepatch = errors.New("not a livepatch module")
)
