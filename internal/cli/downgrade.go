package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// TODO(pkgmeta): replaced by the real implementation before commit.
func newDowngradeCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "downgrade",
		Short: "Replace the current kernel live patch with its previous version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("downgrade: not yet implemented")
		},
	}
}
