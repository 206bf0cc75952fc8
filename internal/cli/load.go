package cli

import (
	"errors"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/admin"
)

// loadOptions are the options of klp load.
type loadOptions struct {
	wait          waitFlags
	all           bool
	skipPreflight bool
	totalTimeout  time.Duration
	retryCrashed  bool
}

func newLoadCmd(opts *rootOptions) *cobra.Command {
	var lo loadOptions
	cmd := &cobra.Command{
		Use:   "load FILE.ko|NAME [PARAM=VALUE...]",
		Short: "Load a live patch module and wait for its transition",
		Long: `Load a live patch module with finit_module(2) and wait until every task runs
the patched code. NAME is looked up among the patches installed for the
running kernel (klp install), in either spelling ('-' or '_'). A patch that
is already loaded and enabled is reported, not an error; a module of the
same name that an atomic replace left loaded is removed first.

Before loading, under klp's lock, klp runs the cheap preflight checks (see
klp preflight) and refuses the module when one fails: no live patching,
module loading disabled, ftrace disabled, another transition in progress,
signature enforcement or lockdown against an unsigned module, a vermagic
for another kernel, another build of the patch already loaded.
--skip-preflight loads anyway. When the kernel refuses the module, klp says
why, with the kernel log lines that the load produced. When the transition
does not complete within --timeout, klp shows which tasks block it and the
patched functions on their stacks, then by default rolls the patch back
(--on-stall), waiting as long again, and at least 30s, for the reversed
transition.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if lo.all && len(args) > 0 {
				return &usageError{errors.New("load --all takes no arguments")}
			}
			if !lo.all && len(args) == 0 {
				return &usageError{errors.New("load needs a module file or name (or --all)")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return loadRun(opts, &lo, args)
		},
	}
	lo.wait.register(cmd, admin.StallRollback)
	f := cmd.Flags()
	f.BoolVar(&lo.all, "all", false, "load every patch installed for the running kernel, going on past failures (boot)")
	f.DurationVar(&lo.totalTimeout, "total-timeout", 5*time.Minute, "with --all, the deadline for the whole run (0: none)")
	f.BoolVar(&lo.retryCrashed, "retry-crashed", false, "with --all, also load patches that were loading when the machine went down")
	f.BoolVar(&lo.skipPreflight, "skip-preflight", false, "load even when a preflight check fails (not with --all, which runs none)")
	return cmd
}

func loadRun(opts *rootOptions, lo *loadOptions, args []string) error {
	wopts, err := lo.wait.options()
	if err != nil {
		return err
	}
	c, err := opts.changer("load")
	if err != nil {
		return err
	}
	ctx, stop := opts.interruptible()
	defer stop()
	if lo.all {
		return opts.finishChange(c.LoadAll(ctx, admin.BootOptions{Wait: wopts, Total: lo.totalTimeout, RetryCrashed: lo.retryCrashed}))
	}
	path, err := c.ResolveModule(opts.env.Store, "load", args[0])
	if err != nil {
		return &exitError{code: ExitError, msg: err.Error()}
	}
	return opts.finishChange(c.Load(ctx, admin.LoadRequest{
		Path: path, Params: strings.Join(args[1:], " "), Wait: wopts, SkipPreflight: lo.skipPreflight,
	}))
}
