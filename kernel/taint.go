package kernel

import (
	"fmt"
	"strconv"
)

// TaintFlag is one bit of the kernel's taint mask, <procfs>/sys/kernel/tainted
// (Documentation/admin-guide/tainted-kernels.rst).
type TaintFlag struct {
	Bit     uint   // the bit: the mask holds 1<<Bit
	Letter  byte   // the letter of oops reports and /proc/modules
	Meaning string // what set it
	// Trouble marks a kernel that hit a problem or had a module forced:
	// tasks may be stuck in the kernel, and vendors may not support
	// patching it.
	Trouble bool
}

// TaintFlags are the taint bits known to klp, indexed by bit.
var TaintFlags = []TaintFlag{
	{0, 'P', "proprietary module loaded", false},
	{1, 'F', "module force-loaded", true},
	{2, 'S', "unsafe SMP or out-of-spec system", false},
	{3, 'R', "module force-unloaded", true},
	{4, 'M', "machine check", true},
	{5, 'B', "bad page", true},
	{6, 'U', "taint requested by user space", false},
	{7, 'D', "kernel oops or BUG", true},
	{8, 'A', "ACPI table overridden", false},
	{9, 'W', "kernel warning", false},
	{10, 'C', "staging driver loaded", false},
	{11, 'I', "firmware bug workaround", false},
	{12, 'O', "out-of-tree module loaded", false},
	{13, 'E', "unsigned module loaded", false},
	{14, 'L', "soft lockup", true},
	{15, 'K', "kernel live patched", false},
	{16, 'X', "auxiliary (distribution-defined)", false},
	{17, 'T', "struct randomization plugin", false},
	{18, 'N', "in-kernel test", false},
}

// TaintLivepatch is the bit of K: set by the first live patch module ever
// loaded, and never cleared until reboot.
const TaintLivepatch = 15

// Tainted reads the taint mask, <procfs>/sys/kernel/tainted.
func (h *Handle) Tainted() (uint64, error) {
	path := h.ProcPath("sys", "kernel", "tainted")
	s, err := h.ReadString(path)
	if err != nil {
		return 0, fmt.Errorf("read taint: %w", err)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read taint: %w: %s holds %q, not a number", ErrParse, path, s)
	}
	return v, nil
}
