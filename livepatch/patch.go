package livepatch

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Patch is one live patch as /sys/kernel/livepatch/<Name> shows it.
// See Documentation/ABI/testing/sysfs-kernel-livepatch.
type Patch struct {
	// Name is the patch module's name (KBUILD_MODNAME, with "_" where the
	// .ko file name may have "-").
	Name string
	// Enabled is the target state: when a disable starts, the kernel clears
	// it before the transition completes. /sys/kernel/livepatch/<Name>/enabled
	Enabled bool
	// Transition is true while this patch is the one in transition; nil on
	// kernels before 4.12. /sys/kernel/livepatch/<Name>/transition
	Transition *bool
	// Replace is true for an atomic-replace (cumulative) patch; nil before
	// 6.11, and on a kernel with replace sets (see ReplaceSet). The kernel
	// prints 0 or 1; any non-zero value counts as replace.
	// /sys/kernel/livepatch/<Name>/replace
	Replace *bool
	// ReplaceSet is the patch's replace set, nil where the attribute does
	// not exist (every released kernel). It is a proposal for the kernel
	// (docs/kernel-notes.md): replace_set takes the place of replace and
	// holds an unsigned integer; a patch replaces the loaded patches of
	// its own set atomically, and patches of different sets may not
	// change the same function or use the same klp_state id (the kernel
	// refuses the load).
	// /sys/kernel/livepatch/<Name>/replace_set
	ReplaceSet *uint32
	// StackOrder is the 1-based position in the kernel's patch list; the
	// highest wins for a function patched twice. nil before 6.14, and on
	// a kernel with replace sets, which drops the attribute.
	// /sys/kernel/livepatch/<Name>/stack_order
	StackOrder *int
	// HasForce reports whether the write-only force attribute exists (4.15+).
	HasForce bool
	// HasSignal reports whether the write-only signal attribute exists (4.15
	// to 5.0). Newer kernels signal blocking tasks by themselves.
	HasSignal bool
	// Objects are the patched objects: "vmlinux" or a module name.
	Objects []Object
}

// InTransition reports whether this patch is in transition.
func (p Patch) InTransition() bool { return p.Transition != nil && *p.Transition }

// Object is one patched object: /sys/kernel/livepatch/<patch>/<object>.
type Object struct {
	// Name is "vmlinux" or the target module's name.
	Name string
	// Patched is true when the object's functions are redirected; it is
	// false while a target module is not loaded. nil before 6.1.
	// /sys/kernel/livepatch/<patch>/<object>/patched
	Patched *bool
	// Functions are the functions this patch replaces in the object.
	Functions []Function
}

// Function is one replaced function:
// /sys/kernel/livepatch/<patch>/<object>/<function,sympos>.
type Function struct {
	// Name is the original function's name.
	Name string
	// Sympos is the position of the symbol among same-named symbols of the
	// object (1-based; the kernel shows 1 for "unique"). 0 means the
	// directory had no ",sympos" suffix (kernels before about 4.5).
	Sympos int
}

// DirName returns the name of the function's sysfs directory.
func (f Function) DirName() string {
	if f.Sympos == 0 {
		return f.Name
	}
	return f.Name + "," + strconv.Itoa(f.Sympos)
}

// Patches returns the loaded patches in name order. On a kernel without
// live patching it returns [ErrNotSupported]. An empty list is not an error.
func (fs FS) Patches() ([]Patch, error) {
	dir, names, err := fs.patchDirs()
	if err != nil {
		return nil, err
	}
	patches := make([]Patch, 0, len(names))
	for _, name := range names {
		p, err := fs.readPatch(filepath.Join(dir, name), name)
		if err != nil {
			// A patch removed while we read it (its directory goes away
			// asynchronously after a disable) is simply gone.
			if errors.Is(err, ErrNotFound) {
				continue
			}
			return nil, err
		}
		patches = append(patches, p)
	}
	return patches, nil
}

// Patch returns the named patch, or [ErrNotFound]. The name may be spelt
// with '-' or '_' (the kernel's name rule); the patch returned carries the
// kernel's spelling.
func (fs FS) Patch(name string) (Patch, error) {
	dir, err := fs.PatchPath(name)
	if err != nil {
		return Patch{}, err
	}
	if !fs.k.Exists(fs.LivepatchPath()) {
		return Patch{}, fs.errNotSupported()
	}
	return fs.readPatch(dir, filepath.Base(dir))
}

// TransitionPatch returns the patch in transition, or nil when none is.
// There is at most one: the kernel refuses to start a second transition.
func (fs FS) TransitionPatch(patches []Patch) *Patch {
	for i := range patches {
		if patches[i].InTransition() {
			return &patches[i]
		}
	}
	return nil
}

// readPatch reads a patch directory. A patch the kernel is freeing (after
// a disable or a replace) loses its object directories first, and reads of
// its attributes then fail with ENODEV before the files go; both mean the
// patch is gone, [ErrNotFound], not that the tree is broken.
func (fs FS) readPatch(dir, name string) (Patch, error) {
	p, err := fs.readPatchFiles(dir, name)
	if err != nil && !errors.Is(err, ErrNotFound) && (errors.Is(err, unix.ENODEV) || errors.Is(err, errVanished)) {
		return Patch{}, fmt.Errorf("%w: %s (being removed)", ErrNotFound, name)
	}
	return p, err
}

// errVanished marks a file that existed a moment ago in a patch directory.
var errVanished = errors.New("vanished")

func (fs FS) readPatchFiles(dir, name string) (Patch, error) {
	p := Patch{Name: name}
	enabled, err := fs.k.ReadBool(filepath.Join(dir, "enabled"))
	if errors.Is(err, os.ErrNotExist) && fs.k.Exists(dir) {
		// kobject_add creates the directory before its attributes: a
		// patch being loaded right now can show without enabled for an
		// instant. Look once more before calling the tree broken.
		time.Sleep(10 * time.Millisecond)
		enabled, err = fs.k.ReadBool(filepath.Join(dir, "enabled"))
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !fs.k.Exists(dir) {
			return Patch{}, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		return Patch{}, fmt.Errorf("read patch %s: %w", name, err)
	}
	p.Enabled = enabled
	if p.Transition, err = fs.optionalBool(filepath.Join(dir, "transition")); err != nil {
		return Patch{}, fmt.Errorf("read patch %s: %w", name, err)
	}
	replace, err := fs.optionalInt(filepath.Join(dir, "replace"))
	if err != nil {
		return Patch{}, fmt.Errorf("read patch %s: %w", name, err)
	}
	if replace != nil {
		r := *replace != 0
		p.Replace = &r
	}
	if p.ReplaceSet, err = fs.optionalUint32(filepath.Join(dir, "replace_set")); err != nil {
		return Patch{}, fmt.Errorf("read patch %s: %w", name, err)
	}
	if p.StackOrder, err = fs.optionalInt(filepath.Join(dir, "stack_order")); err != nil {
		return Patch{}, fmt.Errorf("read patch %s: %w", name, err)
	}
	p.HasForce = fs.k.Exists(filepath.Join(dir, "force"))
	p.HasSignal = fs.k.Exists(filepath.Join(dir, "signal"))

	entries, err := fs.k.ReadDir(dir)
	if err != nil {
		return Patch{}, fmt.Errorf("read patch %s: %w", name, vanished(err))
	}
	for _, e := range entries {
		if !fs.k.IsDirEntry(dir, e) {
			continue
		}
		obj, err := fs.readObject(filepath.Join(dir, e.Name()), e.Name())
		if err != nil {
			return Patch{}, fmt.Errorf("read patch %s: %w", name, vanished(err))
		}
		p.Objects = append(p.Objects, obj)
	}
	return p, nil
}

func (fs FS) readObject(dir, name string) (Object, error) {
	obj := Object{Name: name}
	var err error
	if obj.Patched, err = fs.optionalBool(filepath.Join(dir, "patched")); err != nil {
		return Object{}, err
	}
	entries, err := fs.k.ReadDir(dir)
	if err != nil {
		return Object{}, fmt.Errorf("read object %s: %w", name, err)
	}
	for _, e := range entries {
		if !fs.k.IsDirEntry(dir, e) {
			continue
		}
		f, err := parseFunctionDir(e.Name())
		if err != nil {
			return Object{}, fmt.Errorf("read object %s: %s: %w", name, filepath.Join(dir, e.Name()), err)
		}
		obj.Functions = append(obj.Functions, f)
	}
	return obj, nil
}

// parseFunctionDir splits "name,sympos". The kernel names the directory with
// "%s,%lu", so the part after the last comma is always a number.
func parseFunctionDir(s string) (Function, error) {
	name, pos, found := strings.Cut(s, ",")
	if !found {
		return Function{Name: s}, nil
	}
	n, err := strconv.Atoi(pos)
	// "%lu" of a sympos the kernel has already turned from 0 into 1: plain
	// digits, no sign, no leading zero, at least 1.
	if err != nil || n < 1 || name == "" || pos[0] < '1' || pos[0] > '9' {
		return Function{}, fmt.Errorf("%w: function directory %q is not <name,sympos>", ErrParse, s)
	}
	return Function{Name: name, Sympos: n}, nil
}

// vanished marks a "does not exist" for a file that was listed a moment
// ago: in a live tree that only happens while the kernel removes it.
func vanished(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %w", errVanished, err)
	}
	return err
}

func (fs FS) optionalBool(path string) (*bool, error) {
	v, err := fs.k.ReadBool(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// optionalUint32 reads an attribute that holds an unsigned int ("%u").
func (fs FS) optionalUint32(path string) (*uint32, error) {
	v, err := fs.optionalInt(path)
	if err != nil || v == nil {
		return nil, err
	}
	if *v < 0 || *v > math.MaxUint32 {
		return nil, &os.PathError{Op: "parse", Path: path, Err: fmt.Errorf("%w %d: want an unsigned int", ErrParse, *v)}
	}
	u := uint32(*v)
	return &u, nil
}

func (fs FS) optionalInt(path string) (*int, error) {
	v, err := fs.k.ReadInt(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &v, nil
}
