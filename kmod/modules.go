package kmod

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"strconv"
	"strings"
)

// State is a module's state as /proc/modules prints it.
type State string

// Module states (kernel/module/procfs.c m_show).
const (
	StateLive      State = "Live"      // MODULE_STATE_LIVE: init finished
	StateLoading   State = "Loading"   // MODULE_STATE_COMING: init running
	StateUnloading State = "Unloading" // MODULE_STATE_GOING: being removed
)

// Module is one line of /proc/modules, e.g.
//
//	test_klp_livepatch 16384 1 - Live 0xffffffffc0a00000 (OEK)
//	nf_conntrack 176128 3 nft_ct,nf_nat,xt_conntrack, Live 0x0000000000000000
type Module struct {
	Name string // column 1: the module name (kbuild name, '_' not '-')
	Size uint64 // column 2: memory size in bytes
	// Refcnt is column 3, module_refcount(); -1 when the kernel prints "-"
	// (CONFIG_MODULE_UNLOAD=n). An enabled livepatch holds 1 on itself.
	Refcnt int
	// Holders is column 4: the modules that use this one ("Used by" in
	// lsmod). The kernel prints "-" for none and a trailing comma
	// otherwise.
	Holders []string
	// Permanent: column 4 contains "[permanent]", the module has an init
	// but no exit function and can never be removed.
	Permanent bool
	State     State  // column 5
	Address   uint64 // column 6; 0 when hidden by kptr_restrict
	// Taints is the letters of column 7, e.g. "OEK" (O out-of-tree,
	// E unsigned, K livepatch); "" when the module is untainted. The
	// kernel's "+"/"-" loading/unloading markers are dropped (see State).
	Taints string
}

// Modules is the content of /proc/modules, in the kernel's order (most
// recently loaded first).
type Modules []Module

// Find returns the module called name, normalising '-' to '_'.
func (ms Modules) Find(name string) (Module, bool) {
	name = strings.ReplaceAll(name, "-", "_")
	for _, m := range ms {
		if m.Name == name {
			return m, true
		}
	}
	return Module{}, false
}

// maxProcModules caps how much of /proc/modules is read (a few thousand
// modules is ~200 KiB).
const maxProcModules = 8 << 20

// Modules reads /proc/modules.
func (fs *FS) Modules() (Modules, error) {
	path := fs.procPath("modules")
	data, err := fs.k.ReadBytes(path, maxProcModules)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	ms, err := parseModules(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ms, nil
}

// Module returns the /proc/modules entry of name. A module that is not
// loaded gives an error wrapping [ErrNotLoaded]. Built-in modules are not
// in /proc/modules and are reported as not loaded.
func (fs *FS) Module(name string) (Module, error) {
	name, err := cleanName(name)
	if err != nil {
		return Module{}, err
	}
	ms, err := fs.Modules()
	if err != nil {
		return Module{}, err
	}
	m, ok := ms.Find(name)
	if !ok {
		return Module{}, fmt.Errorf("%w: %s", ErrNotLoaded, name)
	}
	return m, nil
}

// parseModules parses /proc/modules.
func parseModules(r io.Reader) (Modules, error) {
	var ms Modules
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		m, err := parseModuleLine(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		ms = append(ms, m)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return ms, nil
}

// parseModuleLine parses one line of /proc/modules:
//
//	name size refcnt holders state address [(taints)]
//
// (kernel/module/procfs.c m_show and print_unload_info).
func parseModuleLine(line string) (Module, error) {
	f := strings.Fields(line)
	if len(f) < 6 {
		return Module{}, fmt.Errorf("%w: /proc/modules line %q: want at least 6 fields", ErrParse, line)
	}
	m := Module{Name: f[0], State: State(f[4])}
	var err error
	if m.Size, err = strconv.ParseUint(f[1], 10, 64); err != nil {
		return Module{}, fmt.Errorf("%w: /proc/modules size %q: %w", ErrParse, f[1], err)
	}
	if f[2] == "-" {
		m.Refcnt = -1
	} else if m.Refcnt, err = strconv.Atoi(f[2]); err != nil {
		return Module{}, fmt.Errorf("%w: /proc/modules refcnt %q: %w", ErrParse, f[2], err)
	}
	if f[3] != "-" {
		for _, h := range strings.Split(f[3], ",") {
			switch h {
			case "":
			case "[permanent]":
				m.Permanent = true
			case "[unsafe]":
				// Printed by old kernels for modules with unsafe unload; no
				// holder.
			default:
				m.Holders = append(m.Holders, h)
			}
		}
	}
	addr := strings.TrimPrefix(f[5], "0x")
	if m.Address, err = strconv.ParseUint(addr, 16, 64); err != nil {
		return Module{}, fmt.Errorf("%w: /proc/modules address %q: %w", ErrParse, f[5], err)
	}
	if len(f) > 6 {
		t := f[6]
		if !strings.HasPrefix(t, "(") || !strings.HasSuffix(t, ")") {
			return Module{}, fmt.Errorf("%w: /proc/modules taints %q", ErrParse, t)
		}
		t = strings.Trim(t, "()")
		t = strings.NewReplacer("+", "", "-", "").Replace(t)
		m.Taints = t
	}
	return m, nil
}

// isNotExist reports whether err means the file is absent.
func isNotExist(err error) bool {
	return errors.Is(err, iofs.ErrNotExist)
}
