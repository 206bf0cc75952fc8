package fakekernel

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Module describes a module file: what the kernel would find in its ELF
// sections and what its init does. No real ELF is involved; the fake file
// only carries an identifier.
type Module struct {
	// Name is the module name (kbuild's, with '_'). Required.
	Name string
	// File is the file's base name ("" = Name + ".ko", plus ".xz" etc.
	// when Compression is set).
	File string
	// Size is the module's memory size in /proc/modules (0 = 16384).
	Size uint64
	// Livepatch makes this a livepatch module (modinfo livepatch=Y whose
	// init calls klp_enable_patch).
	Livepatch *Patch
	// Params are the module's parameters, with their defaults.
	Params []Param
	// Uses lists modules this one needs symbols from. They must be loaded
	// (else ENOENT, logged as "Unknown symbol <dep>_symbol (err -2)");
	// loading takes a reference on each and lists this module among their
	// holders.
	Uses []string
	// InTree: modinfo intree=Y, so no O taint.
	InTree bool
	// Signed: a valid signature, so no E taint and accepted under
	// SigEnforce or Lockdown.
	Signed bool
	// BadSignature: a signature that fails to verify (EKEYREJECTED even
	// without enforcement).
	BadSignature bool
	// Vermagic: "" matches the kernel; anything else is a mismatch
	// (ENOEXEC) unless MODULE_INIT_IGNORE_VERMAGIC is passed.
	Vermagic string
	// UnknownSymbols are exported symbols the module needs that nothing
	// provides (ENOENT, "Unknown symbol x (err -2)").
	UnknownSymbols []string
	// BadCRCSymbols are symbols whose modversions CRC disagrees (EINVAL,
	// "disagrees about version of symbol x") unless
	// MODULE_INIT_IGNORE_MODVERSIONS is passed.
	BadCRCSymbols []string
	// InitErr, if non-nil (a unix.Errno), is returned by the module's
	// init before anything else runs; InitLog lines are logged first.
	InitErr error
	InitLog []string
	// Permanent: init without exit; delete_module gives EBUSY.
	Permanent bool
	// Compression ("xz", "zstd", "gzip") writes the file with that
	// format's magic, as a .ko.xz etc. would start.
	Compression string
}

// Param is a module parameter.
type Param struct {
	Name     string
	Value    string // default value, as /sys/module/<m>/parameters/<p> prints it
	Writable bool   // mode 0644: writable at run time through sysfs
}

// Patch is the struct klp_patch of a livepatch module.
type Patch struct {
	Objects []Object
	// Replace: atomic replace (klp_patch.replace = true).
	Replace bool
	// ReplaceParam, if set, names a bool module parameter that decides
	// Replace at load time (test_klp_atomic_replace's "replace=").
	ReplaceParam string
	// States are klp_state entries (5.5+ compatibility check).
	States []State
	// ReplaceSet is klp_patch.replace_set on a kernel with
	// Features.ReplaceSet (the proposed replace sets); ignored otherwise.
	ReplaceSet uint32
}

// Object is a struct klp_object: vmlinux ("" or "vmlinux") or a target
// module, and its patched functions.
type Object struct {
	Name  string
	Funcs []Func
	// PrePatchErr, if non-nil (a unix.Errno), is returned by the object's
	// pre-patch callback (the selftests use -ENODEV).
	PrePatchErr error
}

// Func is a struct klp_func: old_name and old_sympos.
type Func struct {
	Name   string
	Sympos int
}

// State is a struct klp_state.
type State struct {
	ID      uint64
	Version int
}

// moduleFile is a registered module file.
type moduleFile struct {
	spec   Module
	path   string
	dev    uint64
	ino    uint64
	token  []byte   // generated files carry this identifier
	sum    [32]byte // external files are recognised by content
	extern bool
}

// module is a loaded module.
type module struct {
	spec    *Module
	name    string
	size    uint64
	addr    uint64
	refcnt  int
	holders []string // modules using this one
	taints  string
	params  []Param
	patch   *patch
}

func (m *module) procLine() string {
	holders := "-"
	if len(m.holders) > 0 || m.spec.Permanent {
		holders = ""
		for _, h := range m.holders {
			holders += h + ","
		}
		if m.spec.Permanent {
			holders += "[permanent],"
		}
	}
	line := fmt.Sprintf("%s %d %d %s Live 0x%016x", m.name, m.size, m.refcnt, holders, m.addr)
	if m.taints != "" {
		line += " (" + m.taints + ")"
	}
	return line + "\n"
}

var magics = map[string][]byte{
	"xz":   {0xfd, '7', 'z', 'X', 'Z', 0x00},
	"zstd": {0x28, 0xb5, 0x2f, 0xfd},
	"gzip": {0x1f, 0x8b},
}

func compressionOf(b []byte) string {
	for name, m := range magics {
		if bytes.HasPrefix(b, m) {
			return name
		}
	}
	return ""
}

// AddModule writes a fake module file for m below Root()/lib/modules and
// returns its path. Loading that file (finit_module on it, or init_module
// on its content) loads m.
func (k *Kernel) AddModule(tb TB, m Module) string {
	tb.Helper()
	if m.Name == "" {
		tb.Fatalf("fakekernel: module without a name")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.nextFileID++
	token := []byte(fmt.Sprintf("\x7fELF fakekernel module %d %s\n", k.nextFileID, m.Name))
	name := m.File
	if name == "" {
		name = m.Name + ".ko"
		if m.Compression != "" {
			name += map[string]string{"xz": ".xz", "zstd": ".zst", "gzip": ".gz"}[m.Compression]
		}
	}
	content := token
	if m.Compression != "" {
		mg, ok := magics[m.Compression]
		if !ok {
			tb.Fatalf("fakekernel: unknown compression %q", m.Compression)
		}
		content = append(append([]byte{}, mg...), token...)
	}
	path := filepath.Join(k.lib, fmt.Sprintf("%d", k.nextFileID), name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatalf("fakekernel: %v", err)
	}
	if err := os.WriteFile(path, content, 0o644); err != nil {
		tb.Fatalf("fakekernel: %v", err)
	}
	mf := &moduleFile{spec: m, path: path, token: token}
	if err := mf.stat(); err != nil {
		tb.Fatalf("fakekernel: %v", err)
	}
	k.files = append(k.files, mf)
	return path
}

// AddModuleFile registers an existing file (for example a real .ko from
// testdata, so that modinfo can parse it too) as module m. The file is
// recognised by inode for finit_module and by content for init_module.
func (k *Kernel) AddModuleFile(tb TB, path string, m Module) {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("fakekernel: %v", err)
	}
	mf := &moduleFile{spec: m, path: path, sum: sha256.Sum256(data), extern: true}
	if err := mf.stat(); err != nil {
		tb.Fatalf("fakekernel: %v", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.files = append(k.files, mf)
}

func (mf *moduleFile) stat() error {
	var st unix.Stat_t
	if err := unix.Stat(mf.path, &st); err != nil {
		return fmt.Errorf("stat %s: %w", mf.path, err)
	}
	mf.dev, mf.ino = st.Dev, st.Ino
	return nil
}

// Decompress is the fake counterpart of modcompress.ReadFile: it returns
// the content of a fake module file without its compression magic.
func (k *Kernel) Decompress(path string, limit int64) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if c := compressionOf(data); c != "" {
		return data[len(magics[c]):], nil
	}
	return data, nil
}

// --- syscalls ---

// FinitModule implements finit_module(2) on a registered module file.
func (k *Kernel) FinitModule(fd int, params string, flags int) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	defer k.sync()
	if k.modulesDisabled {
		return unix.EPERM
	}
	if flags&^(unix.MODULE_INIT_IGNORE_MODVERSIONS|unix.MODULE_INIT_IGNORE_VERMAGIC|unix.MODULE_INIT_COMPRESSED_FILE) != 0 {
		return unix.EINVAL
	}
	if flags&unix.MODULE_INIT_COMPRESSED_FILE != 0 && !k.f.CompressedFileFlag {
		return unix.EINVAL // flag unknown before 5.17
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	head := make([]byte, 8)
	n, _ := unix.Pread(fd, head, 0)
	head = head[:max(n, 0)]
	var mf *moduleFile
	for _, f := range k.files {
		if f.dev == st.Dev && f.ino == st.Ino {
			mf = f
		}
	}
	comp := compressionOf(head)
	if flags&unix.MODULE_INIT_COMPRESSED_FILE != 0 {
		if k.f.Decompress == "" {
			return unix.EOPNOTSUPP // no CONFIG_MODULE_DECOMPRESS
		}
		if comp != k.f.Decompress {
			k.printk(lvlErr, "module: not %s compressed module", k.f.Decompress)
			return unix.EINVAL
		}
	} else if comp != "" {
		k.printk(lvlErr, "module: Invalid ELF header magic: != \x7fELF")
		return unix.ENOEXEC
	}
	if mf == nil {
		k.printk(lvlErr, "module: Invalid ELF header magic: != \x7fELF")
		return unix.ENOEXEC
	}
	return k.loadModule(&mf.spec, params, flags)
}

// InitModule implements init_module(2) on the content of a registered
// module file (decompressed).
func (k *Kernel) InitModule(image []byte, params string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	defer k.sync()
	if k.modulesDisabled {
		return unix.EPERM
	}
	if compressionOf(image) != "" {
		k.printk(lvlErr, "module: Invalid ELF header magic: != \x7fELF")
		return unix.ENOEXEC
	}
	sum := sha256.Sum256(image)
	for _, f := range k.files {
		if (!f.extern && bytes.Equal(image, f.token)) || (f.extern && f.sum == sum) {
			return k.loadModule(&f.spec, params, 0)
		}
	}
	k.printk(lvlErr, "module: Invalid ELF header magic: != \x7fELF")
	return unix.ENOEXEC
}

// loadModule follows load_module() (6.x order): signature, vermagic,
// livepatch support, duplicate check, taints, symbols, klp_module_coming,
// parameters, sysfs, init.
func (k *Kernel) loadModule(spec *Module, params string, flags int) error {
	name := spec.Name
	// module_sig_check
	if spec.BadSignature {
		return unix.EKEYREJECTED
	}
	if !spec.Signed {
		if k.opts.SigEnforce {
			k.printk(lvlNotice, "Loading of unsigned module is rejected")
			return unix.EKEYREJECTED
		}
		if k.opts.Lockdown {
			k.printk(lvlNotice, "Lockdown: insmod: unsigned module loading is restricted; see man kernel_lockdown.7")
			return unix.EPERM
		}
	}
	// check_modinfo
	if spec.Vermagic != "" && spec.Vermagic != k.opts.Vermagic && flags&unix.MODULE_INIT_IGNORE_VERMAGIC == 0 {
		k.printk(lvlErr, "%s: version magic '%s' should be '%s'", name, spec.Vermagic, k.opts.Vermagic)
		return unix.ENOEXEC
	}
	if spec.Livepatch != nil && k.opts.NoLivepatch {
		k.printk(lvlErr, "%s: module is marked as livepatch module, but livepatch support is disabled", name)
		return unix.ENOEXEC
	}
	// module_patient_check_exists
	if k.findMod(name) != nil {
		return unix.EEXIST
	}
	// module_augment_kernel_taints
	taints := ""
	if !spec.InTree {
		if k.tainted&TaintOOT == 0 {
			k.printk(lvlWarn, "%s: loading out-of-tree module taints kernel.", name)
		}
		k.tainted |= TaintOOT
		taints += "O"
	}
	if !spec.Signed {
		taints += "E"
	}
	if spec.Livepatch != nil {
		k.tainted |= TaintLivepatch
		k.printOnce("livepatch-taint", lvlNotice, "%s: tainting kernel with TAINT_LIVEPATCH", name)
		taints += "K"
	}
	if !spec.Signed {
		k.printOnce("sig-taint", lvlNotice, "%s: module verification failed: signature and/or required key missing - tainting kernel", name)
		k.tainted |= TaintUnsigned
	}
	// simplify_symbols
	for _, u := range spec.Uses {
		if k.findMod(u) == nil {
			k.printk(lvlWarn, "%s: Unknown symbol %s_symbol (err -2)", name, u)
			return unix.ENOENT
		}
	}
	for _, s := range spec.UnknownSymbols {
		k.printk(lvlWarn, "%s: Unknown symbol %s (err -2)", name, s)
		return unix.ENOENT
	}
	if flags&unix.MODULE_INIT_IGNORE_MODVERSIONS == 0 {
		for _, s := range spec.BadCRCSymbols {
			k.printk(lvlWarn, "%s: disagrees about version of symbol %s", name, s)
			return unix.EINVAL
		}
	}
	m := &module{spec: spec, name: name, size: spec.Size, addr: k.nextAddr, taints: taints}
	if m.size == 0 {
		m.size = 16384
	}
	k.nextAddr += 0x10000
	m.params = append([]Param(nil), spec.Params...)
	// klp_module_coming
	if !k.opts.NoLivepatch {
		if name == "vmlinux" {
			k.klp(lvlErr, "vmlinux.ko: invalid module name")
			return unix.EINVAL
		}
		if err := k.klpModuleComing(name); err != nil {
			return err
		}
	}
	// parse_args
	for _, kv := range strings.Fields(params) {
		key, val, _ := strings.Cut(kv, "=")
		found := false
		for i := range m.params {
			if m.params[i].Name == key {
				v, err := setParam(m.params[i].Value, val)
				if err != nil {
					k.printk(lvlErr, "%s: '%s' invalid for parameter '%s'", name, val, key)
					k.klpModuleGoing(name) // coming_cleanup
					return err
				}
				m.params[i].Value = v
				found = true
			}
		}
		if !found {
			k.printk(lvlWarn, "%s: unknown parameter '%s' ignored", name, key)
		}
	}
	// The module is now on the modules list (state COMING) with sysfs.
	k.mods = append(k.mods, m)
	for _, u := range spec.Uses {
		um := k.findMod(u)
		um.refcnt++
		um.holders = append(um.holders, name)
	}
	// do_init_module
	err := k.initModule(m)
	if err != nil {
		k.klpModuleGoing(name)
		k.removeMod(m)
		return err
	}
	return nil
}

// setParam is a parameter's set op: a bool parameter (one whose value
// prints as Y or N) goes through kstrtobool and prints as Y/N (EINVAL if
// unparsable); other values are taken as written.
func setParam(old, val string) (string, error) {
	if old == "Y" || old == "N" {
		b, err := kstrtobool(val)
		if err != nil {
			return "", unix.EINVAL
		}
		if b {
			return "Y", nil
		}
		return "N", nil
	}
	return val, nil
}

func (k *Kernel) initModule(m *module) error {
	for _, l := range m.spec.InitLog {
		k.printk(6, "%s", l)
	}
	if m.spec.InitErr != nil {
		return m.spec.InitErr
	}
	if m.spec.Livepatch == nil {
		return nil
	}
	if k.f.Pre51 {
		return k.klpRegisterAndEnable(m)
	}
	return k.klpEnablePatch(m)
}

func (k *Kernel) removeMod(m *module) {
	for i, x := range k.mods {
		if x == m {
			k.mods = append(k.mods[:i:i], k.mods[i+1:]...)
			break
		}
	}
	for _, u := range m.spec.Uses {
		if um := k.findMod(u); um != nil {
			um.refcnt--
			for i, h := range um.holders {
				if h == m.name {
					um.holders = append(um.holders[:i:i], um.holders[i+1:]...)
					break
				}
			}
		}
	}
}

func (k *Kernel) findMod(name string) *module {
	name = strings.ReplaceAll(name, "-", "_")
	for _, m := range k.mods {
		if m.name == name {
			return m
		}
	}
	return nil
}

// DeleteModule implements delete_module(2).
func (k *Kernel) DeleteModule(name string, flags int) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	defer k.sync()
	if k.modulesDisabled {
		return unix.EPERM
	}
	m := k.findModExact(name)
	if m == nil {
		return unix.ENOENT
	}
	if len(m.holders) > 0 {
		return unix.EAGAIN // EWOULDBLOCK: other modules depend on us
	}
	if m.spec.Permanent {
		return unix.EBUSY
	}
	if m.refcnt > 0 {
		return unix.EAGAIN // try_stop_module: -EWOULDBLOCK
	}
	// mod->exit(): a pre-5.1 patch module unregisters its patch.
	if p := m.patch; p != nil && k.f.Pre51 {
		k.removePatch(p)
	}
	k.klpModuleGoing(m.name)
	k.removeMod(m)
	return nil
}

// findModExact is find_module: delete_module does not map '-' to '_'.
func (k *Kernel) findModExact(name string) *module {
	for _, m := range k.mods {
		if m.name == name {
			return m
		}
	}
	return nil
}

// SetModulesDisabled sets /proc/sys/kernel/modules_disabled (every load
// and unload then fails with EPERM).
func (k *Kernel) SetModulesDisabled(v bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.modulesDisabled = v
	k.sync()
}

// kstrtobool parses like the kernel's kstrtobool.
func kstrtobool(s string) (bool, error) {
	if s == "" {
		return false, unix.EINVAL
	}
	switch s[0] {
	case 'y', 'Y', 't', 'T', '1':
		return true, nil
	case 'n', 'N', 'f', 'F', '0':
		return false, nil
	case 'o', 'O':
		if len(s) > 1 {
			switch s[1] {
			case 'n', 'N':
				return true, nil
			case 'f', 'F':
				return false, nil
			}
		}
	}
	return false, unix.EINVAL
}

// kstrtoint parses like kstrtoint (base 0, one trailing newline allowed).
func kstrtoint(s string) (int, error) {
	s = strings.TrimSuffix(s, "\n")
	n, err := strconv.ParseInt(s, 0, 32)
	if err != nil {
		return 0, unix.EINVAL
	}
	return int(n), nil
}
