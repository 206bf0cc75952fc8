package pkgmeta

import (
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/klp-project/klp/internal/sysfile"
)

// Default host paths. They are only defaults: every one can be replaced in
// [Config], which is how the tests point pkgmeta at temporary trees.
var (
	// DefaultModulesDirs hold /lib/modules/<krel>. Both spellings are
	// listed because usr-merged systems (openSUSE Tumbleweed, SLE 16)
	// install modules under /usr/lib/modules and may or may not keep a
	// /lib symlink; the same directory reached twice is walked once.
	DefaultModulesDirs = []string{"/lib/modules", "/usr/lib/modules"}
	// DefaultStoreDirs are klp's and kpatch's module stores; a patch
	// module loaded from there lives in <store>/<krel>/.
	DefaultStoreDirs = []string{"/var/lib/klp", "/var/lib/kpatch"}
	// DefaultLifecycleDirs hold the *.lifecycle files of zypper
	// lifecycle, in the order zypper-lifecycle reads them: a later file
	// overrides an earlier one.
	DefaultLifecycleDirs = []string{"/var/lib/lifecycle/data", "/usr/lib/lifecycle/data", "/usr/share/lifecycle/data"}
)

const (
	// DefaultProcRoot is where procfs is mounted.
	DefaultProcRoot = "/proc"
	// DefaultDocDir holds Debian packages' changelogs.
	DefaultDocDir = "/usr/share/doc"
	// DefaultMaxEntries bounds the module search: a /lib/modules/<krel>
	// tree holds about 6,000 entries, so this is far above any real one
	// but stops a walk into a huge or looping tree.
	DefaultMaxEntries = 200_000
	// DefaultMaxDepth bounds how deep below each search root the module
	// search goes (kernel/drivers/net/ethernet/intel/ice is 5 levels).
	DefaultMaxDepth = 10
	// DefaultTimeout bounds each query command. zypper may refresh
	// repository metadata over the network before it answers.
	DefaultTimeout = 5 * time.Minute
)

// Config says where pkgmeta finds things. The zero value of each field
// means its default.
type Config struct {
	// Runner runs rpm, dpkg, zypper and apt; default [ExecRunner].
	Runner Runner
	// ProcRoot is the procfs root (klp's --procfs), used to read the
	// kernel release from <ProcRoot>/sys/kernel/osrelease. A snapshot of
	// another machine's procfs thus searches that kernel's modules.
	ProcRoot string
	// KernelRelease, when set, is used instead of reading it.
	KernelRelease string
	// ModulesDirs, StoreDirs and LifecycleDirs default to
	// [DefaultModulesDirs], [DefaultStoreDirs] and [DefaultLifecycleDirs].
	ModulesDirs   []string
	StoreDirs     []string
	LifecycleDirs []string
	// DocDir is /usr/share/doc, where Debian changelogs are.
	DocDir string
	// MaxEntries and MaxDepth bound the module search.
	MaxEntries int
	MaxDepth   int
	// Timeout bounds each query command (not the command downgrade runs,
	// which the user watches and can interrupt).
	Timeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Runner == nil {
		c.Runner = ExecRunner{}
	}
	if c.ProcRoot == "" {
		c.ProcRoot = DefaultProcRoot
	}
	if c.ModulesDirs == nil {
		c.ModulesDirs = DefaultModulesDirs
	}
	if c.StoreDirs == nil {
		c.StoreDirs = DefaultStoreDirs
	}
	if c.LifecycleDirs == nil {
		c.LifecycleDirs = DefaultLifecycleDirs
	}
	if c.DocDir == "" {
		c.DocDir = DefaultDocDir
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	if c.MaxDepth <= 0 {
		c.MaxDepth = DefaultMaxDepth
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// Source answers package questions about patch modules. Build one with
// [New]; it is safe for concurrent use.
type Source struct {
	cfg     Config
	release func() (string, error)
}

// New returns a Source for cfg, with defaults filled in. It does no I/O:
// building one costs nothing when no package question is asked.
func New(cfg Config) *Source {
	s := &Source{cfg: cfg.withDefaults()}
	s.release = sync.OnceValues(s.readRelease)
	return s
}

// Config returns the configuration in use, defaults filled in.
func (s *Source) Config() Config { return s.cfg }

// KernelRelease returns the release of the kernel whose modules are
// searched: [Config.KernelRelease], or <ProcRoot>/sys/kernel/osrelease.
func (s *Source) KernelRelease() (string, error) { return s.release() }

func (s *Source) readRelease() (string, error) {
	if s.cfg.KernelRelease != "" {
		return s.cfg.KernelRelease, nil
	}
	path := filepath.Join(s.cfg.ProcRoot, "sys", "kernel", "osrelease")
	krel, err := sysfile.ReadString(path)
	if err != nil {
		return "", fmt.Errorf("read kernel release: %w", err)
	}
	// The release becomes a path element; a hostile snapshot must not
	// make it climb out of /lib/modules.
	if krel == "" || krel == "." || krel == ".." || filepath.Base(krel) != krel {
		return "", fmt.Errorf("read kernel release: %s: unusable value %q", path, krel)
	}
	return krel, nil
}
