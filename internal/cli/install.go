package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/klp-project/klp/internal/audit"
	"github.com/klp-project/klp/internal/lifecycle"
	"github.com/klp-project/klp/modinfo"
	"github.com/spf13/cobra"
)

// resolveModule turns a FILE.ko|NAME argument of verb into a module file:
// a path as given, or the name of a patch installed for the running kernel.
func resolveModule(opts *rootOptions, verb, arg string) (string, error) {
	if strings.Contains(arg, "/") || strings.Contains(arg, ".ko") {
		if _, err := os.Stat(arg); err != nil {
			return "", fmt.Errorf("%s %s: %w", verb, arg, errors.Unwrap(err))
		}
		return arg, nil
	}
	rel, err := opts.release()
	if err != nil {
		return "", err
	}
	in, err := opts.env.Store.Find(arg, rel)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w; give the path of a .ko file", verb, arg, err)
	}
	return in.Path, nil
}

// release is the running kernel's release, as the procfs root tells it.
func (o *rootOptions) release() (string, error) {
	fs, err := o.fs()
	if err != nil {
		return "", err
	}
	return (&lifecycle.Manager{LP: fs}).Release()
}

func loadAllRun(opts *rootOptions, wopts lifecycle.WaitOptions) error {
	m, err := opts.manager()
	if err != nil {
		return &exitError{code: classify(err), msg: err.Error()}
	}
	var r *lifecycle.BootReport
	err = opts.mutate("load", "--all", func(ctx context.Context) (*lifecycle.Outcome, error) {
		var err error
		r, err = m.LoadAll(ctx, opts.env.Store, lifecycle.BootOptions{Wait: wopts, Total: opts.totalTimeout, RetryCrashed: opts.retryCrashed})
		return nil, err
	})
	if r == nil {
		return err
	}
	recordBoot(opts, r)
	w := opts.env.IO.Out
	if opts.json {
		_ = writeJSON(w, struct {
			SchemaVersion int `json:"schema_version"`
			*lifecycle.BootReport
		}{SchemaVersion, r})
		return err
	}
	if r.Disabled != "" {
		fmt.Fprintf(w, "not loading patches: %s\n", r.Disabled)
	}
	for _, o := range r.Outcomes {
		fmt.Fprintf(w, "%s: %s (%s)\n", o.Patch, o.Result, o.Elapsed.Round(time.Millisecond))
	}
	for _, f := range r.Failed {
		fmt.Fprintf(w, "%s: FAILED: %s\n", f.Name, f.Error)
	}
	for _, f := range r.Skipped {
		fmt.Fprintf(w, "%s: skipped: %s\n", f.Name, f.Error)
	}
	if r.Disabled == "" && len(r.Outcomes)+len(r.Failed)+len(r.Skipped) == 0 {
		fmt.Fprintf(w, "no patches installed for %s\n", r.Release)
	}
	return err
}

// recordBoot records one audit record per patch that load --all loaded,
// failed to load or skipped.
func recordBoot(opts *rootOptions, r *lifecycle.BootReport) {
	failed := map[string]bool{}
	for _, f := range r.Failed {
		failed[f.Name] = true
	}
	// A load that failed after it began (a stall rolled back) has an
	// outcome too: its result goes with the failure.
	results := map[string]*lifecycle.Outcome{}
	for _, o := range r.Outcomes {
		if failed[o.Patch] {
			results[o.Patch] = o
			continue
		}
		opts.record(audit.Record{Action: "load", Patch: o.Patch, File: o.File, Release: r.Release, Result: o.Result, Elapsed: o.Elapsed})
	}
	for _, f := range r.Failed {
		rec := audit.Record{Action: "load", Patch: f.Name, File: f.Path, Release: r.Release, Elapsed: f.Elapsed, Err: errors.New(f.Error)}
		if o := results[f.Name]; o != nil {
			rec.Result = o.Result
		}
		opts.record(rec)
	}
	for _, f := range r.Skipped {
		opts.record(audit.Record{Action: "load", Patch: f.Name, File: f.Path, Release: r.Release, Result: "skipped", Err: errors.New(f.Error)})
	}
}

type jsonInstall struct {
	SchemaVersion int                 `json:"schema_version"`
	Action        string              `json:"action"`
	Installed     lifecycle.Installed `json:"installed"`
}

func newInstallCmd(opts *rootOptions) *cobra.Command {
	var kver string
	cmd := &cobra.Command{
		Use:   "install [-k KVER] FILE.ko",
		Short: "Install a patch module to be loaded at boot",
		Long: `Copy a live patch module into /var/lib/klp/<kernel-release>/, from where
'klp load --all' (the klp.service unit) loads it at boot. The module must be
a livepatch module built for that release (its vermagic is checked). -k
installs for another kernel, for example the one the next boot will run.
This does not load the patch: use 'klp load'.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return installRun(opts, args[0], kver)
		},
	}
	cmd.Flags().StringVarP(&kver, "kernel", "k", "", "kernel release to install for (default: the running one)")
	return cmd
}

func installRun(opts *rootOptions, file, kver string) error {
	if err := opts.requireRoot("install"); err != nil {
		return err
	}
	fail := func(err error) error { return &exitError{code: classify(err), msg: err.Error()} }
	inspect := opts.env.Inspect
	if inspect == nil {
		inspect = modinfo.Open
	}
	mod, err := inspect(file)
	if err != nil {
		return fail(err)
	}
	if !mod.Livepatch {
		return fail(fmt.Errorf("install %s: %w (its .modinfo has no livepatch=Y)", file, lifecycle.ErrNotLivepatch))
	}
	if kver == "" {
		var err error
		if kver, err = opts.release(); err != nil {
			return fail(err)
		}
	}
	if built := strings.Fields(mod.Vermagic); len(built) == 0 || built[0] != kver {
		return fail(fmt.Errorf("install %s: %w: its vermagic is %q, not for %s", file, lifecycle.ErrWrongKernel, mod.Vermagic, kver))
	}
	start := time.Now()
	in, err := opts.env.Store.Install(file, mod.Name, kver)
	opts.record(audit.Record{Action: "install", Patch: mod.Name, File: in.Path, Release: kver, Result: "installed", Elapsed: time.Since(start), Err: err})
	if err != nil {
		return fail(err)
	}
	if opts.json {
		return writeJSON(opts.env.IO.Out, jsonInstall{SchemaVersion, "install", in})
	}
	fmt.Fprintf(opts.env.IO.Out, "installed %s for %s: %s\n", in.Name, in.Release, in.Path)
	return nil
}

func newUninstallCmd(opts *rootOptions) *cobra.Command {
	var kver string
	cmd := &cobra.Command{
		Use:   "uninstall [-k KVER] NAME",
		Short: "Remove an installed patch module",
		Long: `Remove a patch module from /var/lib/klp/<kernel-release>/, so that it is no
longer loaded at boot. This does not unload it: use 'klp unload'. Patches
installed by kpatch are listed by klp but removed with kpatch.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.requireRoot("uninstall"); err != nil {
				return err
			}
			fail := func(err error) error { return &exitError{code: classify(err), msg: err.Error()} }
			name := args[0]
			if strings.ContainsAny(name, "/") || strings.Contains(name, "..") {
				return fail(fmt.Errorf("uninstall %q: give the patch name, not a path", name))
			}
			name = strings.TrimSuffix(name, ".ko")
			if kver == "" {
				var err error
				if kver, err = opts.release(); err != nil {
					return fail(err)
				}
			}
			start := time.Now()
			in, err := opts.env.Store.Uninstall(name, kver)
			opts.record(audit.Record{Action: "uninstall", Patch: name, File: in.Path, Release: kver, Result: "uninstalled", Elapsed: time.Since(start), Err: err})
			if err != nil {
				return fail(err)
			}
			if opts.json {
				return writeJSON(opts.env.IO.Out, jsonInstall{SchemaVersion, "uninstall", in})
			}
			fmt.Fprintf(opts.env.IO.Out, "uninstalled %s for %s\n", in.Name, in.Release)
			return nil
		},
	}
	cmd.Flags().StringVarP(&kver, "kernel", "k", "", "kernel release to uninstall for (default: the running one)")
	return cmd
}
