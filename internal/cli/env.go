package cli

import (
	"io"
	"os"
	"syscall"
	"time"

	"github.com/klp-project/klp/internal/audit"
	"github.com/klp-project/klp/internal/lifecycle"
	"github.com/klp-project/klp/kmod"
	"github.com/klp-project/klp/livepatch"
	"github.com/klp-project/klp/modinfo"
)

// IOStreams are the standard streams of a command, injected so tests can
// capture them and choose whether stdout is a terminal.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// OutTTY is true when Out is a terminal: progress and colour are shown
	// only then, so pipes get stable output.
	OutTTY bool
	// InTTY is true when In is a terminal, where a confirmation can be asked.
	InTTY bool
}

// Env holds everything a command takes from the outside world. Tests build
// one with fakes; DefaultEnv gives the real ones.
type Env struct {
	IO *IOStreams
	// Getpid, Getppid and Getpgrp identify klp itself, so that kgr poke
	// never stops its own process, parent shell or process group.
	Getpid, Getppid, Getpgrp func() int
	// Kill sends a signal to a process.
	Kill func(pid int, sig syscall.Signal) error
	// Sleep waits; tests make it return at once.
	Sleep func(time.Duration)
	// Packages answers package questions for patches -v and downgrade.
	Packages PackageSource
	// Geteuid tells whether klp runs as root.
	Geteuid func() int
	// ErrTTY is true when ErrOut is a terminal: transition progress is
	// drawn there, and only then.
	ErrTTY bool

	// Kmod configures module loading; its ProcRoot and SysRoot are set
	// from --procfs and --sysfs. Tests put a fake kernel's syscalls here.
	Kmod kmod.Options
	// Attr, when set, receives the livepatch attribute writes (tests: the
	// fake kernel).
	Attr livepatch.AttrWriter
	// Audit records mutating actions (the journal, or syslog, by default).
	Audit audit.Auditor
	// LockPath is the lock that serialises mutating commands.
	LockPath string
	// LockWait is how long a second klp waits for the lock.
	LockWait time.Duration
	// Inspect reads module files (nil: modinfo.Open); tests describe the
	// fake kernel's module files here.
	Inspect func(path string) (*modinfo.Module, error)
	// Store is where installed patches live (/var/lib/klp, and kpatch's
	// /var/lib/kpatch read too).
	Store lifecycle.Store
	// BootDir holds the kernel configs (config-<release>) that preflight
	// reads; it is under neither --sysfs nor --procfs. Default "/boot".
	BootDir string
}

// DefaultEnv returns the environment of the running process.
func DefaultEnv(stdin io.Reader, stdout, stderr io.Writer) *Env {
	return &Env{
		IO: &IOStreams{
			In: stdin, Out: stdout, ErrOut: stderr,
			OutTTY: isTerminal(stdout), InTTY: isTerminal(stdin),
		},
		Getpid:   os.Getpid,
		Getppid:  os.Getppid,
		Getpgrp:  syscall.Getpgrp,
		Kill:     syscall.Kill,
		Sleep:    time.Sleep,
		Packages: defaultPackageSource(),
		Geteuid:  os.Geteuid,
		ErrTTY:   isTerminal(stderr),
		Audit:    audit.Default(),
		LockPath: lifecycle.DefaultLockPath,
		LockWait: 5 * time.Second,
		Store:    lifecycle.Store{Dir: lifecycle.DefaultStore, Kpatch: lifecycle.DefaultKpatchStore},
		BootDir:  "/boot",
	}
}
