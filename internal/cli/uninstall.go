package cli

import (
	"github.com/spf13/cobra"
)

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
			c, err := opts.changer("uninstall")
			if err != nil {
				return err
			}
			ctx, stop := opts.interruptible()
			defer stop()
			return opts.finishInstall(c.Uninstall(ctx, args[0], kver))
		},
	}
	cmd.Flags().StringVarP(&kver, "kernel", "k", "", "kernel `RELEASE` to uninstall for (default: the running one)")
	return cmd
}
