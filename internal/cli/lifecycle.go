package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/klp-project/klp/internal/audit"
	"github.com/klp-project/klp/internal/lifecycle"
	"github.com/klp-project/klp/kmod"
	"github.com/klp-project/klp/livepatch"
	"github.com/spf13/cobra"
)

// Exit codes of the life-cycle commands (load, unload, disable, enable,
// wait, signal, force, install, uninstall). The SUSE-compatible commands
// use only 0 and 1, and so does a usage error everywhere, because scripts
// written for SUSE's klp test for 1.
const (
	ExitStalled     ExitCode = 3 // the transition did not complete in time
	ExitUnsupported ExitCode = 4 // the kernel has no live patching
	ExitPermission  ExitCode = 5 // not root, lockdown, signature enforcement
)

// classify maps an error of a life-cycle command to its exit code.
func classify(err error) ExitCode {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, livepatch.ErrStalled):
		return ExitStalled
	case errors.Is(err, livepatch.ErrNotSupported):
		return ExitUnsupported
	case errors.Is(err, livepatch.ErrPermission), errors.Is(err, kmod.ErrPermission),
		errors.Is(err, kmod.ErrSignature), errors.Is(err, os.ErrPermission):
		return ExitPermission
	}
	return ExitError
}

// waitFlags are the options of every command that waits for a transition.
type waitFlags struct {
	timeout     time.Duration
	onStall     string
	signalAfter time.Duration
}

func (w *waitFlags) register(cmd *cobra.Command, defaultPolicy lifecycle.StallPolicy) {
	w.onStall = string(defaultPolicy)
	f := cmd.Flags()
	f.DurationVar(&w.timeout, "timeout", 60*time.Second, "how long to wait for the transition (0: no limit)")
	f.StringVar(&w.onStall, "on-stall", w.onStall, "when the transition times out: `wait|rollback|leave`")
	f.DurationVar(&w.signalAfter, "signal-after", 15*time.Second, "on kernels with a signal attribute (4.15-5.0), signal blocking tasks after this long (0: never)")
	_ = cmd.RegisterFlagCompletionFunc("on-stall", cobra.FixedCompletions([]string{"wait", "rollback", "leave"}, cobra.ShellCompDirectiveNoFileComp))
}

func (w *waitFlags) options() (lifecycle.WaitOptions, error) {
	policy, err := lifecycle.ParseStallPolicy(w.onStall)
	if err != nil {
		return lifecycle.WaitOptions{}, &usageError{err}
	}
	if w.timeout < 0 {
		return lifecycle.WaitOptions{}, &usageError{fmt.Errorf("invalid --timeout %s: must not be negative", w.timeout)}
	}
	return lifecycle.WaitOptions{Timeout: w.timeout, OnStall: policy, SignalAfter: w.signalAfter}, nil
}

// manager builds the life-cycle manager on the configured roots.
func (o *rootOptions) manager() (*lifecycle.Manager, error) {
	fs, err := o.fs()
	if err != nil {
		return nil, err
	}
	if fs.Interface() == livepatch.InterfaceNone {
		return nil, fmt.Errorf("%w: %s does not exist", livepatch.ErrNotSupported, fs.LivepatchPath())
	}
	if o.env.Attr != nil {
		fs = fs.WithWriter(o.env.Attr)
	}
	kopts := o.env.Kmod
	kopts.ProcRoot, kopts.SysRoot = o.procRoot, o.sysRoot
	mod, err := kmod.NewFS(kopts)
	if err != nil {
		return nil, err
	}
	m := &lifecycle.Manager{LP: fs, Mod: mod, Inspect: o.env.Inspect}
	if !o.json {
		m.Events = func(msg string) { fmt.Fprintf(o.env.IO.ErrOut, "%s: %s\n", o.prog, msg) }
	}
	if o.env.ErrTTY && !o.json {
		m.Progress = func(p lifecycle.Progress) {
			left := "counting tasks"
			if p.TasksLeft >= 0 {
				left = fmt.Sprintf("%d task(s) left", p.TasksLeft)
			}
			fmt.Fprintf(o.env.IO.ErrOut, "\r\033[K%s %s: %s, %.0fs", p.Direction, p.Patch, left, p.Elapsed.Seconds())
		}
	}
	return m, nil
}

// mutate runs a life-cycle action under the lock, with Ctrl-C turned into
// a cancelled context (so the action can state where it left things), and
// records it in the audit log.
func (o *rootOptions) mutate(action, target string, fn func(ctx context.Context) (*lifecycle.Outcome, error)) error {
	if err := o.requireRoot(action); err != nil {
		return err
	}
	lock, err := lifecycle.Acquire(o.env.LockPath, o.env.LockWait)
	if err != nil {
		return &exitError{code: classify(err), msg: err.Error()}
	}
	defer lock.Release()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	out, err := fn(ctx)
	if o.env.ErrTTY && !o.json {
		fmt.Fprint(o.env.IO.ErrOut, "\r\033[K")
	}
	if out != nil {
		o.printOutcome(out, err)
	}
	// --all runs record one record per patch themselves.
	if target != allTarget {
		rec := auditRecord(action, target, out, time.Since(start), err)
		rec.Release, _ = o.release()
		o.record(rec)
	}
	if err != nil {
		return &exitError{code: classify(err), msg: err.Error()}
	}
	return nil
}

// allTarget is the target of load --all and unload --all.
const allTarget = "--all"

func (o *rootOptions) record(r audit.Record) {
	if o.env.Audit != nil {
		o.env.Audit.Record(r)
	}
}

// auditRecord describes a life-cycle action for the audit log. target is
// what the command was given (a module file or a patch name); the outcome,
// when there is one, says more.
func auditRecord(action, target string, out *lifecycle.Outcome, elapsed time.Duration, err error) audit.Record {
	r := audit.Record{Action: action, Elapsed: elapsed, Err: err}
	if out != nil {
		r.Patch, r.File, r.Result = out.Patch, out.File, out.Result
	}
	if r.Patch == "" && r.File == "" {
		if strings.Contains(target, "/") {
			r.File = target
		} else {
			r.Patch = target
		}
	}
	return r
}

type jsonOutcome struct {
	SchemaVersion int           `json:"schema_version"`
	Action        string        `json:"action"`
	Patch         string        `json:"patch"`
	File          string        `json:"file,omitempty"`
	Result        string        `json:"result"`
	ElapsedMS     int64         `json:"elapsed_ms"`
	Error         *string       `json:"error"`
	ExitCode      int           `json:"exit_code"`
	Stall         *jsonStall    `json:"stall"`
	KernelLog     []string      `json:"kernel_log"`
	Notes         []string      `json:"notes"`
	Outcomes      []jsonOutcome `json:"outcomes,omitempty"`
}

func outcomeJSON(out *lifecycle.Outcome, err error) jsonOutcome {
	j := jsonOutcome{
		SchemaVersion: SchemaVersion, Action: out.Action, Patch: out.Patch, File: out.File,
		Result: out.Result, ElapsedMS: out.Elapsed.Milliseconds(), ExitCode: int(classify(err)),
		KernelLog: nonNil(out.KernelLog), Notes: nonNil(out.Notes),
	}
	if err != nil {
		s := err.Error()
		j.Error = &s
	}
	if out.Stall != nil {
		s := stallJSON(out.Stall)
		j.Stall = &s
	}
	return j
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (o *rootOptions) printOutcome(out *lifecycle.Outcome, err error) {
	w := o.env.IO.Out
	if o.json {
		_ = writeJSON(w, outcomeJSON(out, err))
		return
	}
	if out.Stall != nil {
		printStall(w, out.Stall, o.prog)
	}
	if err != nil {
		// The error itself goes to stderr; the kernel's explanation
		// helps most with a refused load.
		for _, l := range out.KernelLog {
			fmt.Fprintf(o.env.IO.ErrOut, "%s: kernel: %s\n", o.prog, l)
		}
		return
	}
	switch out.Result {
	case "already loaded", "ready":
		return // said already, or nothing to say
	}
	what := out.Patch
	if what == "" {
		what = out.File
	}
	fmt.Fprintf(w, "%s: %s (%s)\n", what, out.Result, out.Elapsed.Round(time.Millisecond))
}

func newLoadCmd(opts *rootOptions) *cobra.Command {
	var wf waitFlags
	var all, skipPreflight bool
	cmd := &cobra.Command{
		Use:   "load FILE.ko|NAME [PARAM=VALUE...]",
		Short: "Load a live patch module and wait for its transition",
		Long: `Load a live patch module with finit_module(2) and wait until every task runs
the patched code. NAME is looked up among the patches installed for the
running kernel (klp install). A patch that is already loaded and enabled is
reported, not an error; a module of the same name that an atomic replace
left loaded is removed first.

Before loading, klp runs the cheap preflight checks (see klp preflight) and
refuses the module when one fails: no live patching, module loading
disabled, ftrace disabled, another transition in progress, signature
enforcement or lockdown against an unsigned module, a vermagic for another
kernel, another build of the patch already loaded. --skip-preflight loads
anyway. When the kernel refuses the module, klp says why, with the kernel
log lines that the load produced. When the transition does not complete within
--timeout, klp shows which tasks block it and the patched functions on
their stacks, then by default rolls the patch back (--on-stall).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if all && len(args) > 0 {
				return &usageError{errors.New("load --all takes no arguments")}
			}
			if !all && len(args) == 0 {
				return &usageError{errors.New("load needs a module file or name (or --all)")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			wopts, err := wf.options()
			if err != nil {
				return err
			}
			if all {
				return loadAllRun(opts, wopts)
			}
			m, err := opts.manager()
			if err != nil {
				return &exitError{code: classify(err), msg: err.Error()}
			}
			path, err := resolveModule(opts, "load", args[0])
			if err != nil {
				return &exitError{code: ExitError, msg: err.Error()}
			}
			if !skipPreflight {
				if err := loadPreflight(opts, path); err != nil {
					return err
				}
			}
			params := strings.Join(args[1:], " ")
			return opts.mutate("load", path, func(ctx context.Context) (*lifecycle.Outcome, error) {
				return m.Load(ctx, path, params, wopts)
			})
		},
	}
	wf.register(cmd, lifecycle.StallRollback)
	f := cmd.Flags()
	f.BoolVar(&all, "all", false, "load every patch installed for the running kernel, going on past failures (boot)")
	f.DurationVar(&opts.totalTimeout, "total-timeout", 5*time.Minute, "with --all, the deadline for the whole run (0: none)")
	f.BoolVar(&opts.retryCrashed, "retry-crashed", false, "with --all, also load patches that were loading when the machine went down")
	f.BoolVar(&skipPreflight, "skip-preflight", false, "load even when a preflight check fails (not with --all, which runs none)")
	return cmd
}

func newPatchVerb(opts *rootOptions, use, short, long string, policy lifecycle.StallPolicy,
	run func(m *lifecycle.Manager, ctx context.Context, name string, w lifecycle.WaitOptions) (*lifecycle.Outcome, error)) *cobra.Command {
	var wf waitFlags
	cmd := &cobra.Command{
		Use: use, Short: short, Long: long,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: patchNameCompletion(opts),
		RunE: func(cmd *cobra.Command, args []string) error {
			wopts, err := wf.options()
			if err != nil {
				return err
			}
			if err := livepatch.ValidateName(args[0]); err != nil {
				return &exitError{code: ExitError, msg: err.Error()}
			}
			m, err := opts.manager()
			if err != nil {
				return &exitError{code: classify(err), msg: err.Error()}
			}
			return opts.mutate(cmd.Name(), args[0], func(ctx context.Context) (*lifecycle.Outcome, error) {
				return run(m, ctx, args[0], wopts)
			})
		},
	}
	wf.register(cmd, policy)
	return cmd
}

func newDisableCmd(opts *rootOptions) *cobra.Command {
	return newPatchVerb(opts, "disable NAME", "Disable a patch (start unpatching) and wait",
		`Write 0 to the patch's enabled attribute and wait until every task runs the
original code again. While the patch is still patching, this reverses the
transition. Since Linux 5.1 the kernel frees a disabled patch: its sysfs
directory disappears and the module can then be removed (klp unload).`,
		lifecycle.StallLeave, (*lifecycle.Manager).Disable)
}

func newEnableCmd(opts *rootOptions) *cobra.Command {
	return newPatchVerb(opts, "enable NAME", "Re-enable a disabled patch, or reverse an unpatching transition",
		`Write 1 to the patch's enabled attribute and wait. Only kernels before 5.1
keep a disabled patch registered, so only they can re-enable it; on any
kernel, enable reverses a patch that is still unpatching.`,
		lifecycle.StallLeave, (*lifecycle.Manager).Enable)
}

func newUnloadCmd(opts *rootOptions) *cobra.Command {
	var wf waitFlags
	var all bool
	cmd := &cobra.Command{
		Use:   "unload NAME|--all",
		Short: "Disable a patch, wait, and remove its module",
		Long: `Disable the patch, wait for the transition, wait for the module's reference
count to drop, and remove the module with delete_module(2). A module that an
atomic replace left loaded is simply removed. --all unloads every live patch
module, newest first, in passes (kernels before 5.1 let only the most
recently enabled patch be disabled). A patch whose transition was forced is
explained rather than retried: the kernel never releases its module.`,
		ValidArgsFunction: patchNameCompletion(opts),
		Args: func(cmd *cobra.Command, args []string) error {
			if all != (len(args) == 0) || len(args) > 1 {
				return &usageError{errors.New("unload needs exactly one patch name, or --all")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			wopts, err := wf.options()
			if err != nil {
				return err
			}
			m, err := opts.manager()
			if err != nil {
				return &exitError{code: classify(err), msg: err.Error()}
			}
			if all {
				return unloadAllRun(opts, m, wopts)
			}
			if err := livepatch.ValidateName(args[0]); err != nil {
				return &exitError{code: ExitError, msg: err.Error()}
			}
			return opts.mutate("unload", args[0], func(ctx context.Context) (*lifecycle.Outcome, error) {
				return m.Unload(ctx, args[0], wopts)
			})
		},
	}
	wf.register(cmd, lifecycle.StallLeave)
	cmd.Flags().BoolVar(&all, "all", false, "unload every live patch module")
	return cmd
}

func unloadAllRun(opts *rootOptions, m *lifecycle.Manager, wopts lifecycle.WaitOptions) error {
	start := time.Now()
	var outs []*lifecycle.Outcome
	err := opts.mutate("unload", allTarget, func(ctx context.Context) (*lifecycle.Outcome, error) {
		var err error
		outs, err = m.UnloadAll(ctx, wopts)
		if opts.json {
			return nil, err
		}
		for _, o := range outs {
			if o.Result != "" {
				fmt.Fprintf(opts.env.IO.Out, "%s: %s (%s)\n", o.Patch, o.Result, o.Elapsed.Round(time.Millisecond))
			}
		}
		return nil, err
	})
	rel, _ := opts.release()
	for _, o := range outs {
		if o.Result != "" {
			opts.record(audit.Record{Action: "unload", Patch: o.Patch, Release: rel, Result: o.Result, Elapsed: o.Elapsed})
		}
	}
	if err != nil {
		opts.record(audit.Record{Action: "unload", Patch: allTarget, Release: rel, Result: "incomplete", Elapsed: time.Since(start), Err: errorOf(err)})
	}
	if opts.json {
		doc := jsonOutcome{SchemaVersion: SchemaVersion, Action: "unload", Patch: "--all", Result: "removed", ElapsedMS: time.Since(start).Milliseconds(), KernelLog: []string{}, Notes: []string{}, ExitCode: int(classify(errorOf(err)))}
		if err != nil {
			doc.Result = "incomplete"
			s := errorOf(err).Error()
			doc.Error = &s
		}
		for _, o := range outs {
			doc.Outcomes = append(doc.Outcomes, outcomeJSON(o, nil))
		}
		_ = writeJSON(opts.env.IO.Out, doc)
	}
	return err
}

func errorOf(err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg == "" {
			return nil
		}
		return errors.New(ee.msg)
	}
	return err
}

func newWaitCmd(opts *rootOptions) *cobra.Command {
	var wf waitFlags
	cmd := &cobra.Command{
		Use:   "wait [NAME]",
		Short: "Wait for the transition in progress to complete",
		Long: `Wait until the patch in transition (or the named patch) completes its
transition, polling about every 10 ms. With --on-stall=leave (the default)
a timeout exits with status 3 and a report of the blocking tasks.`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: patchNameCompletion(opts),
		RunE: func(cmd *cobra.Command, args []string) error {
			wopts, err := wf.options()
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
				if err := livepatch.ValidateName(name); err != nil {
					return &exitError{code: ExitError, msg: err.Error()}
				}
			}
			m, err := opts.manager()
			if err != nil {
				return &exitError{code: classify(err), msg: err.Error()}
			}
			// Waiting changes nothing, so it takes no lock.
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			out, err := m.Wait(ctx, name, wopts)
			if opts.env.ErrTTY && !opts.json {
				fmt.Fprint(opts.env.IO.ErrOut, "\r\033[K")
			}
			opts.printOutcome(out, err)
			if err != nil {
				return &exitError{code: classify(err), msg: err.Error()}
			}
			return nil
		},
	}
	wf.register(cmd, lifecycle.StallLeave)
	return cmd
}

func newSignalCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "signal",
		Short: "Signal the tasks that block the transition (kernels 4.15 to 5.0)",
		Long: `Write 1 to the signal attribute of the patch in transition, which sends a
fake signal to every task that has not switched yet. Only kernels 4.15 to
5.0 have the attribute; later kernels do this by themselves every 15
seconds, which klp says instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := opts.manager()
			if err != nil {
				return &exitError{code: classify(err), msg: err.Error()}
			}
			patches, err := m.LP.Patches()
			if err != nil {
				return &exitError{code: classify(err), msg: err.Error()}
			}
			tr := livepatch.TransitionOf(patches)
			if tr == nil {
				return &exitError{code: ExitError, msg: "no transition in progress: nothing to signal"}
			}
			return opts.mutate("signal", tr.Patch, func(ctx context.Context) (*lifecycle.Outcome, error) {
				o := &lifecycle.Outcome{Action: "signal", Patch: tr.Patch, Result: "signalled"}
				err := m.LP.Signal(tr.Patch)
				if errors.Is(err, livepatch.ErrUnsupportedAttr) {
					o.Result = "not needed"
					o.Notes = append(o.Notes, "this kernel has no signal attribute: since Linux 5.1 it signals the blocking tasks every 15 seconds by itself")
					fmt.Fprintf(opts.env.IO.ErrOut, "%s: %s\n", opts.prog, o.Notes[0])
					return o, nil
				}
				return o, err
			})
		},
	}
}

func newForceCmd(opts *rootOptions) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "force NAME",
		Short: "Force the transition of a patch to complete (dangerous)",
		Long: `Write 1 to the patch's force attribute: every task that has not switched is
marked switched without the stack check. This breaks the consistency model
the kernel otherwise guarantees: a task may run old and new code together.
The kernel then never releases a forced module (it cannot prove that no
task still runs its code), so it cannot be removed until reboot: since
Linux 5.19 that is the module being disabled, or the patches a cumulative
patch replaces; before, every loaded patch module. Use it only with the
patch vendor's agreement. klp explains this and asks for confirmation,
unless --yes is given.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: patchNameCompletion(opts),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := livepatch.ValidateName(name); err != nil {
				return &exitError{code: ExitError, msg: err.Error()}
			}
			m, err := opts.manager()
			if err != nil {
				return &exitError{code: classify(err), msg: err.Error()}
			}
			p, err := m.LP.Patch(name)
			if err != nil {
				return &exitError{code: classify(err), msg: err.Error()}
			}
			if !p.InTransition() {
				return &exitError{code: ExitError, msg: fmt.Sprintf("patch %s is not in transition: there is nothing to force", name)}
			}
			dir := "patched"
			if !p.Enabled {
				dir = "unpatched"
			}
			w := opts.env.IO.ErrOut
			rel, _ := m.Release()
			fmt.Fprintf(w, "Forcing %s marks every task that still blocks it as %s without checking its stack.\n", name, dir)
			fmt.Fprintf(w, "A task sleeping in a changed function may then mix old and new code. %s\n", forceConsequence(p, rel))
			if !yes {
				if !opts.env.IO.InTTY {
					return &exitError{code: ExitError, msg: "refusing to force without confirmation: run on a terminal, or add --yes"}
				}
				if !confirm(opts.env.IO.In, w, "Force the transition? [y/N] ") {
					return &exitError{code: ExitError, msg: "not forced"}
				}
			}
			return opts.mutate("force", name, func(ctx context.Context) (*lifecycle.Outcome, error) {
				o := &lifecycle.Outcome{Action: "force", Patch: name}
				if err := m.LP.Force(name); err != nil {
					return o, err
				}
				res, err := m.LP.WaitTransition(ctx, name, livepatch.WaitOptions{Timeout: 10 * time.Second})
				if err != nil {
					return o, err
				}
				o.Result = "forced, " + map[bool]string{true: "patched", false: "unpatched"}[res.Enabled]
				o.Elapsed = res.Elapsed
				return o, nil
			})
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}

// forceConsequence says which modules a force pins. Since about 5.19 the
// kernel marks only the patches being removed as forced (the patch itself
// when unpatching, the patches a cumulative patch replaces when patching);
// before, every patch on the list. A forced patch's module is never
// released. The tree does not show this, so the release decides
// (kernel-abi.md 1.5; confirmed on 6.1 and 6.12 in docs/kernel-notes.md).
func forceConsequence(p livepatch.Patch, release string) string {
	switch {
	case !p.Enabled:
		return fmt.Sprintf("The kernel will then never release module %s: it cannot be unloaded until reboot.", p.Name)
	case versionAtLeast(release, 5, 19):
		return fmt.Sprintf("Module %s stays removable after a clean disable, but the patches it replaces (if it is cumulative) can never be unloaded until reboot.", p.Name)
	}
	return fmt.Sprintf("On this kernel every loaded patch module, %s included, can then never be unloaded until reboot.", p.Name)
}

// versionAtLeast compares a kernel release ("6.1.0-56-cloud-amd64") with
// major.minor; an unreadable release counts as old, the cautious answer.
func versionAtLeast(release string, major, minor int) bool {
	var ma, mi int
	if n, _ := fmt.Sscanf(release, "%d.%d", &ma, &mi); n != 2 {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// requireRoot refuses a command that changes live patches when klp does not
// run as root, before anything is touched: the kernel would refuse the
// module syscalls and attribute writes one by one.
func (o *rootOptions) requireRoot(action string) error {
	if o.env.Geteuid != nil && o.env.Geteuid() != 0 {
		return &exitError{code: ExitPermission, msg: fmt.Sprintf("%s changes live patches and needs root (CAP_SYS_MODULE); nothing was changed", action)}
	}
	return nil
}

// confirm asks a yes/no question; anything but y or yes is no.
func confirm(in io.Reader, w io.Writer, question string) bool {
	fmt.Fprint(w, question)
	var answer string
	if _, err := fmt.Fscanln(in, &answer); err != nil {
		return false
	}
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes"
}
