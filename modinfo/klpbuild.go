package modinfo

import (
	"debug/elf"
	"fmt"
	"strings"
)

// The patch description of klp-build modules (Linux 6.19+, see
// docs/kernel-notes.md). klp-build emits no static struct klp_patch: every
// object it diffs contributes one struct klp_object_ext to a section of its
// own, whose funcs field points at that object's struct klp_func_ext array
// in another section, and the module's init code builds the klp_patch from
// them before calling klp_enable_patch:
//
//	struct klp_func_ext {           // 24 bytes
//		const char *old_name;   // +0, relocated to a string
//		void *new_func;         // +8, relocated to code
//		unsigned long sympos;   // +16, a literal
//	};
//	struct klp_object_ext {         // 64 bytes
//		const char *name;       // +0, relocated to a string; NULL: vmlinux
//		struct klp_func_ext *funcs; // +8, relocated
//		struct klp_callbacks callbacks; // +16: four code pointers, a bool
//		unsigned int nr_funcs;  // +56
//	};
//
// Unlike klp_object arrays, neither array has a terminating entry: the
// object entries fill their section, and nr_funcs counts the functions.
const (
	klpObjectExtSize    = 64
	klpObjectExtFuncs   = 8
	klpObjectExtCBs     = 16
	klpObjectExtNrFuncs = 56
	klpFuncExtSize      = 24
	// moduleNameMax is MODULE_NAME_LEN: the kernel refuses a klp_object
	// whose name does not fit (klp_init_object, EINVAL).
	moduleNameMax = 56
)

// klpObjectsSections are the names of the klp_object_ext section: 6.19
// names it __klp_objects; later kernels .init.klp_objects, so that the
// loader frees it after init. klpFuncsSections are the klp_func_ext ones.
var (
	klpObjectsSections = []string{"__klp_objects", ".init.klp_objects"}
	klpFuncsSections   = []string{"__klp_funcs", ".init.klp_funcs"}
)

// klpCallbacks names the klp_callbacks function pointers in field order.
var klpCallbacks = []string{"pre_patch", "post_patch", "pre_unpatch", "post_unpatch"}

func isKlpObjectsSection(name string) bool {
	for _, n := range klpObjectsSections {
		if name == n {
			return true
		}
	}
	return false
}

// isKlpBuildSection reports whether name is a klp-build patch description
// section, which only the klp-build reader interprets.
func isKlpBuildSection(name string) bool {
	if isKlpObjectsSection(name) {
		return true
	}
	for _, n := range klpFuncsSections {
		if name == n {
			return true
		}
	}
	return false
}

// hasKlpBuildSections reports whether f has a klp_object_ext section.
func hasKlpBuildSections(f *elfFile) bool {
	for _, s := range f.Sections {
		if isKlpObjectsSection(s.Name) {
			return true
		}
	}
	return false
}

// klpBuildReplaceNote says why Targets.Replace is nil for a klp-build module.
const klpBuildReplaceNote = "klp-build layout: the module's init code sets klp_patch.replace, " +
	"true (an atomic replace patch) unless it was built with klp-build --no-replace, " +
	"and the file's data does not record which; once it is loaded, the replace attribute of its /sys/kernel/livepatch directory (6.11+) shows it"

// klpBuild reads the klp_object_ext sections. It records the objects and
// functions of every entry that reads whole, in section order, and returns
// why the layout is malformed, or "" (also when there is none). It needs
// collectPointers to have run.
func (tf *targetFinder) klpBuild() string {
	found := false
	for i, s := range tf.f.Sections {
		if !isKlpObjectsSection(s.Name) {
			continue
		}
		found = true
		if why := tf.klpBuildObjects(i); why != "" {
			return "klp-build's " + s.Name + " section is malformed: " + why
		}
	}
	if found {
		tf.note(klpBuildReplaceNote)
	}
	return ""
}

// klpBuildObjects reads the klp_object_ext entries of section sec.
func (tf *targetFinder) klpBuildObjects(sec int) string {
	s := tf.f.Sections[sec]
	if s.Type != elf.SHT_PROGBITS {
		return fmt.Sprintf("it is %v, not SHT_PROGBITS", s.Type)
	}
	data, err := tf.f.data(s)
	if err != nil {
		return err.Error()
	}
	switch {
	case len(data) == 0:
		return "it holds no klp_object_ext entry (the init code refuses such a module: nothing to patch)"
	case len(data)%klpObjectExtSize != 0:
		return fmt.Sprintf("%d bytes is not a whole number of %d-byte klp_object_ext entries", len(data), klpObjectExtSize)
	}
	ptrs := tf.ptrs[sec]
	seen := map[secOff]bool{} // klp_func_ext entries already read
	entries := map[string]int{}
	for off := uint64(0); off < uint64(len(data)); off += klpObjectExtSize {
		e := off / klpObjectExtSize
		name, why := tf.klpBuildName(ptrs, data, off)
		if why != "" {
			return fmt.Sprintf("entry %d: %s", e, why)
		}
		nr := uint64(tf.f.bo.Uint32(data[off+klpObjectExtNrFuncs:]))
		funcs, why := tf.klpBuildFuncs(ptrs, data, off, nr, seen)
		if why != "" {
			return fmt.Sprintf("entry %d (object %s): %s", e, name, why)
		}
		var cbs []string
		for k, cb := range klpCallbacks {
			p, ok := ptrs[off+klpObjectExtCBs+uint64(8*k)]
			if !ok {
				continue
			}
			if !tf.code(p) {
				return fmt.Sprintf("entry %d (object %s): the %s callback does not point at code", e, name, cb)
			}
			cbs = append(cbs, cb)
		}

		tf.addObject(name, SourceKlpBuild)
		for _, fe := range funcs {
			tf.t.Functions = append(tf.t.Functions, Target{Object: name, Function: fe.name, Sympos: fe.sympos, Source: SourceKlpBuild})
		}
		if entries[name]++; entries[name] == 2 {
			tf.note(fmt.Sprintf("object %s is named by more than one klp_object_ext entry; the kernel gives each object one sysfs directory", name))
		}
		if len(funcs) == 0 {
			tf.note(fmt.Sprintf("object %s has no functions (nr_funcs 0)", name))
		}
		if len(cbs) > 0 {
			tf.note(fmt.Sprintf("object %s has %s callbacks", name, strings.Join(cbs, ", ")))
		}
		if len(name) >= moduleNameMax {
			tf.note(fmt.Sprintf("object name %s is %d bytes; the kernel refuses names of %d or more (EINVAL)", name, len(name), moduleNameMax))
		}
	}
	return ""
}

// klpBuildName reads klp_object_ext.name at off: a string, or NULL for
// vmlinux.
func (tf *targetFinder) klpBuildName(ptrs map[uint64]pointer, data []byte, off uint64) (string, string) {
	p, ok := ptrs[off]
	if !ok {
		if tf.f.bo.Uint64(data[off:]) != 0 {
			return "", "the name is a non-zero word with no relocation"
		}
		return "vmlinux", ""
	}
	name, ok := tf.str(p)
	if !ok {
		return "", "the name does not point at a string (relocation against " + printableSym(p.sym) + ")"
	}
	return name, ""
}

// klpBuildFuncs reads the nr klp_func_ext entries that the funcs field of
// the klp_object_ext at off points at. seen holds the entries read for
// earlier objects: arrays that overlap are refused, which also keeps the
// work linear in the file size.
func (tf *targetFinder) klpBuildFuncs(ptrs map[uint64]pointer, data []byte, off, nr uint64, seen map[secOff]bool) ([]funcEntry, string) {
	fp, ok := ptrs[off+klpObjectExtFuncs]
	if !ok {
		if nr == 0 && tf.f.bo.Uint64(data[off+klpObjectExtFuncs:]) == 0 {
			return nil, ""
		}
		return nil, fmt.Sprintf("nr_funcs is %d but funcs has no relocation", nr)
	}
	if fp.sec < 0 {
		return nil, "funcs points at " + printableSym(fp.sym) + ", outside the module's sections"
	}
	fs := tf.f.Sections[fp.sec]
	fdata, err := tf.f.data(fs)
	if err != nil {
		return nil, err.Error()
	}
	if fp.off > uint64(len(fdata)) || nr > (uint64(len(fdata))-fp.off)/klpFuncExtSize {
		return nil, fmt.Sprintf("%d klp_func_ext entries at %s+%#x run past the section's %d bytes", nr, fs.Name, fp.off, len(fdata))
	}
	fptrs := tf.ptrs[fp.sec]
	funcs := make([]funcEntry, 0, nr)
	for j := uint64(0); j < nr; j++ {
		x := fp.off + j*klpFuncExtSize
		if seen[secOff{fp.sec, x}] {
			return nil, fmt.Sprintf("its functions overlap those of an earlier entry (%s+%#x)", fs.Name, x)
		}
		seen[secOff{fp.sec, x}] = true
		np, ok := fptrs[x]
		name := ""
		if ok {
			name, ok = tf.str(np)
		}
		if !ok {
			return nil, fmt.Sprintf("function %d: old_name does not point at a string", j)
		}
		if p, ok := fptrs[x+8]; !ok || !tf.code(p) {
			return nil, fmt.Sprintf("function %s: new_func does not point at code", name)
		}
		if _, reloc := fptrs[x+16]; reloc {
			return nil, fmt.Sprintf("function %s: sympos is relocated, not a number", name)
		}
		funcs = append(funcs, funcEntry{name, tf.f.bo.Uint64(fdata[x+16:])})
	}
	return funcs, ""
}

// printableSym names a relocation's symbol in a message.
func printableSym(name string) string {
	if name == "" {
		return "a section symbol"
	}
	return fmt.Sprintf("%q", name)
}
