package cli

import (
	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/admin"
)

func newEnableCmd(opts *rootOptions) *cobra.Command {
	return newSwitchCmd(opts, &cobra.Command{
		Use:   "enable NAME",
		Short: "Re-enable a disabled patch, or reverse an unpatching transition",
		Long: `Write 1 to the patch's enabled attribute and wait. Only kernels before 5.1
keep a disabled patch registered, so only they can re-enable it; on any
kernel, enable reverses a patch that is still unpatching. NAME may be spelt
with '-' or '_'.`,
	}, (*admin.Changer).Enable, nil)
}
