package cli

import (
	"context"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/audit"
	"github.com/klp-project/klp/internal/lock"
	"github.com/klp-project/klp/internal/pkgmeta"
	"github.com/klp-project/klp/internal/store"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/kmod"
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
	// never stops its own process, its ancestors or its process group.
	Getpid, Getppid, Getpgrp func() int
	// Sleep waits; tests make it return at once.
	Sleep func(time.Duration)
	// Now is the clock of klp metrics and klp exporter (nil: time.Now);
	// golden runs fix it.
	Now func() time.Time
	// Packages answers package questions for patches -v and downgrade.
	Packages admin.PackageSource
	// Geteuid tells whether klp runs as root.
	Geteuid func() int
	// ErrTTY is true when ErrOut is a terminal: transition progress is
	// drawn there, and only then.
	ErrTTY bool

	// Open opens the kernel the read-only commands read: kernel.Open, the
	// running kernel or a copied tree (nil: kernel.Open). Tests return a
	// fake kernel's handle, whose BPF programs and log are the fake's.
	Open func(kernel.Roots) (*kernel.Handle, error)
	// OpenLive opens the running kernel for the commands that change it:
	// kernel.OpenLive, which refuses roots that are not the kernel's own
	// sysfs and procfs. Tests return a fake kernel's live handle, whose
	// every action goes to the fake.
	OpenLive func(kernel.Roots) (*kernel.Live, error)
	// Kmod configures module loading (tests: the fake kernel's
	// decompressor).
	Kmod kmod.Options
	// Audit opens the audit log, only for commands that change something
	// (nil: none).
	Audit func() audit.Auditor
	// LockPath is the lock that serialises mutating commands.
	LockPath string
	// LockWait is how long a second klp waits for the lock.
	LockWait time.Duration
	// Inspect reads module files (nil: modinfo.Open); tests describe the
	// fake kernel's module files here.
	Inspect func(path string) (*modinfo.Module, error)
	// Store is where installed patches live (/var/lib/klp, and kpatch's
	// /var/lib/kpatch read too).
	Store store.Store
	// Exporter runs klp metrics and klp exporter: set only in
	// klp-exporter (nil in klp; see ExporterProgram).
	Exporter Exporter
	// ExecExporter runs those two commands when Exporter is nil: it
	// replaces klp with klp-exporter, given klp's arguments, and returns
	// only on failure.
	ExecExporter func(args []string) error
	// Interruptible gives a command's context, cancelled by Ctrl-C and
	// SIGTERM, and the function that ends it (nil: signal.NotifyContext,
	// whose end gives the signals back, as tests need).
	Interruptible func() (context.Context, context.CancelFunc)
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
		Sleep:    time.Sleep,
		Now:      time.Now,
		Packages: admin.NewPackages(pkgmeta.Config{}),
		Geteuid:  os.Geteuid,
		ErrTTY:   isTerminal(stderr),
		Open:     kernel.Open,
		OpenLive: kernel.OpenLive,
		Audit:    audit.Default,
		LockPath: lock.DefaultPath,
		LockWait: 5 * time.Second,
		Store:    store.Store{Dir: store.DefaultStore, Kpatch: store.DefaultKpatchStore},
		BootDir:  "/boot",

		ExecExporter:  execExporterProgram,
		Interruptible: processInterruptible,
	}
}
