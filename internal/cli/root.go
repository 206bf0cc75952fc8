package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/snapshot"
	"github.com/klp-project/klp/kernel"
	"github.com/klp-project/klp/livepatch"
)

// version is set at build time with -ldflags "-X ...cli.version=...".
var version = "0.1.0-dev"

// rootOptions are the options every command shares. They come before or
// after the command name: "klp -v patches" and "klp patches -v" are the same.
type rootOptions struct {
	prog           string // "klp" or "kgr"
	verbose        int
	nonInteractive bool
	json           bool
	sysRoot        string
	procRoot       string
	snapshotFile   string
	env            *Env
	// args is the command line after the program's name, for
	// klp-exporter (rootOptions.execExporter).
	args []string

	// snap is the --snapshot archive, read once.
	snap    *snapshot.Archive
	snapErr error
}

// installed is the store the options name: this machine's, or the
// listing the snapshot holds.
func (o *rootOptions) installed() admin.Installed {
	if o.snapshotFile != "" {
		if a, err := o.archive(); err == nil {
			return a.Store()
		}
	}
	return o.env.Store
}

// roots are the kernel roots the options name.
func (o *rootOptions) roots() kernel.Roots {
	return kernel.Roots{Sys: o.sysRoot, Proc: o.procRoot, Boot: o.env.BootDir}
}

// archive reads the --snapshot file, once.
func (o *rootOptions) archive() (*snapshot.Archive, error) {
	if o.snap == nil && o.snapErr == nil {
		o.snap, o.snapErr = snapshot.Open(o.snapshotFile)
	}
	return o.snap, o.snapErr
}

// system opens the read side on the configured roots: the running kernel,
// a copied tree, or the snapshot --snapshot names.
func (o *rootOptions) system() (*admin.System, error) {
	if o.snapshotFile != "" {
		a, err := o.archive()
		if err != nil {
			return nil, err
		}
		h, err := a.Handle()
		if err != nil {
			return nil, fmt.Errorf("read snapshot %s: %w", o.snapshotFile, err)
		}
		return admin.NewSystem(h), nil
	}
	open := o.env.Open
	if open == nil {
		open = kernel.Open
	}
	h, err := open(o.roots())
	if err != nil {
		return nil, fmt.Errorf("%w (check --sysfs and --procfs)", err)
	}
	return admin.NewSystem(h), nil
}

// changer opens the write side: the running kernel only. With roots that
// are not its own sysfs and procfs (a copied tree), the command refuses in
// one line, before it does anything.
func (o *rootOptions) changer(verb string) (*admin.Changer, error) {
	if o.snapshotFile != "" {
		return nil, &exitError{code: ExitError, msg: fmt.Sprintf("%s changes the running kernel, and --snapshot names a snapshot, which klp only reads; nothing was changed", verb)}
	}
	live, err := o.env.OpenLive(o.roots())
	if errors.Is(err, kernel.ErrNotLive) {
		return nil, &exitError{code: ExitError, msg: fmt.Sprintf("%s changes the running kernel, which --sysfs and --procfs do not name (a copied tree is only read, like a snapshot): %v; nothing was changed", verb, err)}
	}
	if err != nil {
		return nil, &exitError{code: ExitCode(admin.ExitCode(err)), msg: fmt.Sprintf("%s: %v (check --sysfs and --procfs)", verb, err)}
	}
	cfg := admin.Config{
		Store: o.env.Store, LockPath: o.env.LockPath, LockWait: o.env.LockWait, Audit: o.env.Audit,
		Inspect: o.env.Inspect, Kmod: o.env.Kmod,
		Getpid: o.env.Getpid, Getppid: o.env.Getppid, Getpgrp: o.env.Getpgrp, Sleep: o.env.Sleep,
	}
	if o.env.Geteuid != nil {
		cfg.Euid = o.env.Geteuid()
	}
	if !o.json {
		cfg.Events = func(msg string) { fmt.Fprintf(o.env.IO.ErrOut, "%s: %s\n", o.prog, msg) }
	}
	if o.verbose > 0 && !o.json {
		cfg.Details = func(msg string) { fmt.Fprintf(o.env.IO.ErrOut, "%s: %s\n", o.prog, msg) }
	}
	if o.env.ErrTTY && !o.json {
		cfg.Progress = func(p admin.Progress) {
			left := "counting tasks"
			if p.TasksLeft >= 0 {
				left = fmt.Sprintf("%d task(s) left", p.TasksLeft)
			}
			fmt.Fprintf(o.env.IO.ErrOut, "\r\033[K%s %s: %s, %.0fs", p.Direction, p.Patch, left, p.Elapsed.Seconds())
		}
	}
	return admin.NewChanger(live, cfg), nil
}

// newRootCmd is the command tree of klp or kgr, given its command line
// after the program's name.
func newRootCmd(prog string, env *Env, args []string) *cobra.Command {
	root, opts := newRoot(prog, env, args)
	root.AddCommand(newStatusCmd(opts), newCheckCmd(opts), newPatchesCmd(opts))
	if prog == "kgr" {
		root.AddCommand(newBlockingCmd(opts, "blocking", admin.KGraftProcesses), newBlockingCmd(opts, "blocking_threads", admin.KGraftThreads), newPokeCmd(opts))
	} else {
		root.AddCommand(newBlockingCmd(opts, "blocking", admin.Threads), newDowngradeCmd(opts),
			newLoadCmd(opts), newUnloadCmd(opts), newDisableCmd(opts), newEnableCmd(opts), newWaitCmd(opts),
			newSignalCmd(opts), newForceCmd(opts), newInstallCmd(opts), newUninstallCmd(opts), newListCmd(opts),
			newInfoCmd(opts), newPreflightCmd(opts), newSnapshotCmd(opts), newMetricsCmd(opts), newExporterCmd(opts))
	}
	return finishRoot(root)
}

// newExporterRootCmd is klp-exporter's tree: klp's root with the two
// commands it serves, and none of the others, so that the linker leaves
// their code out of it.
func newExporterRootCmd(env *Env, args []string) *cobra.Command {
	root, opts := newRoot("klp", env, args)
	root.Short = "serve klp metrics and klp exporter (klp runs this program for them)"
	root.AddCommand(newMetricsCmd(opts), newExporterCmd(opts))
	return finishRoot(root)
}

// newRoot is the root command with the options every command shares.
func newRoot(prog string, env *Env, args []string) (*cobra.Command, *rootOptions) {
	opts := &rootOptions{prog: prog, env: env, args: args}
	root := &cobra.Command{
		Use:           prog + " [-hv] [--version] COMMAND",
		Short:         shortDescription(prog),
		Long:          longDescription(prog),
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Without a command, SUSE's klp prints its usage and fails.
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SetOut(env.IO.ErrOut)
			_ = cmd.Usage()
			return &exitError{code: ExitError, msg: "no command given"}
		},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return &usageError{fmt.Errorf("unknown command %q", args[0])}
			}
			return nil
		},
	}
	root.SetVersionTemplate(prog + " {{.Version}}\n")
	root.CompletionOptions.HiddenDefaultCmd = prog == "kgr"
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{err}
	})

	pf := root.PersistentFlags()
	pf.CountVarP(&opts.verbose, "verbose", "v", "more output; repeat (-vv) for even more")
	pf.BoolVar(&opts.json, "json", false, "print one JSON document (see docs/json.md)")
	pf.StringVar(&opts.sysRoot, "sysfs", livepatch.DefaultSysMountPoint, "read sysfs from `DIR`, for example a copy of another machine's")
	pf.StringVar(&opts.procRoot, "procfs", livepatch.DefaultProcMountPoint, "read procfs from `DIR`")
	if prog == "klp" {
		pf.BoolVarP(&opts.nonInteractive, "non-interactive", "n", false, "do not ask for confirmation (downgrade)")
	}
	pf.StringVar(&opts.snapshotFile, "snapshot", "", "read the kernel's state from the snapshot `FILE` (klp snapshot) instead of this machine's")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if opts.snapshotFile != "" && (pf.Changed("sysfs") || pf.Changed("procfs")) {
			return &usageError{errors.New("--snapshot cannot be combined with --sysfs or --procfs")}
		}
		return nil
	}
	_ = root.RegisterFlagCompletionFunc("snapshot", snapshotCompletion)
	_ = root.RegisterFlagCompletionFunc("sysfs", dirCompletion)
	_ = root.RegisterFlagCompletionFunc("procfs", dirCompletion)

	return root, opts
}

// finishRoot adds help and completion to a root that has its commands.
func finishRoot(root *cobra.Command) *cobra.Command {
	root.SetHelpCommand(newHelpCmd(root))
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		c.Flags().SortFlags = false
		c.SilenceErrors, c.SilenceUsage = true, true
		if c.Name() == "completion" {
			// An unknown shell is a usage error, not the command's help
			// with exit status 0.
			c.Args = func(cmd *cobra.Command, args []string) error {
				if len(args) > 0 {
					return &usageError{fmt.Errorf("completion: unknown shell %q: want bash, zsh, fish or powershell", args[0])}
				}
				return nil
			}
			c.RunE = func(cmd *cobra.Command, args []string) error { return cmd.Help() }
		}
	}
	return root
}

// newHelpCmd is help [COMMAND]: an unknown command is a usage error.
func newHelpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "Help about any command",
		Args:  cobra.MaximumNArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			var names []string
			for _, c := range root.Commands() {
				if !c.Hidden {
					names = append(names, c.Name())
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			target := root
			if len(args) == 1 {
				c, rest, err := root.Find(args)
				if err != nil || c == root || len(rest) > 0 {
					return &usageError{fmt.Errorf("unknown help topic %q", args[0])}
				}
				target = c
			}
			target.SetOut(cmd.OutOrStdout())
			return target.Help()
		},
	}
}

func snapshotCompletion(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	return []string{"tar.zst"}, cobra.ShellCompDirectiveFilterFileExt
}

func dirCompletion(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveFilterDirs
}

// patchNameCompletion completes the names of loaded patches from sysfs.
func patchNameCompletion(opts *rootOptions) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		sys, err := opts.system()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		patches, err := sys.LP.Patches()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []string
		for _, p := range patches {
			names = append(names, p.Name)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

func shortDescription(prog string) string {
	if prog == "kgr" {
		return "kGraft compatibility wrapper for klp"
	}
	return "administer kernel live patches"
}

func longDescription(prog string) string {
	if prog == "kgr" {
		return `kgr is the compatibility interface for scripts written for SLE 12's kGraft
tools. It serves the same commands as klp, plus blocking_threads and poke.
On kernels with the kGraft interface (/sys/kernel/kgraft) it reads that;
elsewhere it reads the upstream /sys/kernel/livepatch.

Exit status: 0 on success, 1 on error; check exits 0 when the system is
ready and 1 when patching is in progress.`
	}
	return `klp reports the state of kernel live patching: whether a transition is in
progress, which patches are loaded, and which tasks hold up a transition.
It is a drop-in replacement for SUSE's klp, and reads the upstream
/sys/kernel/livepatch interface of any distribution.

Exit status: 0 on success, 1 on error; check exits 0 when the system is
ready and 1 when patching is in progress.`
}
