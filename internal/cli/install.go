package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/admin"
	"github.com/klp-project/klp/internal/report"
)

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
			c, err := opts.changer("install")
			if err != nil {
				return err
			}
			ctx, stop := opts.interruptible()
			defer stop()
			return opts.finishInstall(c.Install(ctx, args[0], kver))
		},
	}
	cmd.Flags().StringVarP(&kver, "kernel", "k", "", "kernel `RELEASE` to install for (default: the running one)")
	return cmd
}

// finishInstall prints what install or uninstall did.
func (o *rootOptions) finishInstall(r *admin.InstallResult, err error) error {
	if err != nil {
		return &exitError{code: ExitCode(admin.ExitCode(err)), msg: err.Error()}
	}
	if o.json {
		return report.Write(o.env.IO.Out, report.NewInstall(r))
	}
	in := r.Installed
	if r.Action == "install" {
		fmt.Fprintf(o.env.IO.Out, "installed %s for %s: %s\n", in.Name, in.Release, in.Path)
	} else {
		fmt.Fprintf(o.env.IO.Out, "uninstalled %s for %s\n", in.Name, in.Release)
	}
	return nil
}
