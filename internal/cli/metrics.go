package cli

import (
	"github.com/spf13/cobra"
)

func newMetricsCmd(opts *rootOptions) *cobra.Command {
	var textfile string
	cmd := &cobra.Command{
		Use:   "metrics [--textfile DIR]",
		Short: "Print the live patching state as Prometheus metrics",
		Long: `Print the live patching state in Prometheus's text exposition format (the
series of docs/metrics.md): the loaded patches, the transition in progress
and the tasks that block it, the kernel's taint, and the installed patches.

With --textfile DIR, write DIR/klp.prom for node_exporter's textfile
collector instead: into a temporary file of DIR, renamed over the old one.
The start of a transition still in progress is kept from the previous file,
so klp_transition_duration_seconds grows from one run to the next.

A file that cannot be read is counted in klp_scrape_errors_total and its
series are left out; the rest is still reported. klp runs this command by
executing ` + ExporterProgram + ` (see exporter).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.env.Exporter == nil {
				return opts.execExporter()
			}
			req, err := opts.metricsRequest()
			if err != nil {
				return err
			}
			req.Textfile = textfile
			return opts.env.Exporter.Metrics(req)
		},
	}
	cmd.Flags().StringVar(&textfile, "textfile", "", "write `DIR`/klp.prom for node_exporter's textfile collector")
	_ = cmd.RegisterFlagCompletionFunc("textfile", dirCompletion)
	return cmd
}
