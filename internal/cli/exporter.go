package cli

import (
	"github.com/spf13/cobra"
)

// DefaultListenAddress is klp exporter's default: loopback only, on a port
// that none of the well-known exporters uses by default (node_exporter
// 9100, Prometheus 9090, Pushgateway 9091, Alertmanager 9093, Blackbox
// 9115, process-exporter 9256).
const DefaultListenAddress = "127.0.0.1:9877"

func newExporterCmd(opts *rootOptions) *cobra.Command {
	var req ServeRequest
	cmd := &cobra.Command{
		Use:   "exporter [--web.listen-address ADDR] [--web.telemetry-path PATH] [--web.config.file FILE]",
		Short: "Serve the live patching state to Prometheus",
		Long: `Serve the metrics of klp metrics over HTTP for Prometheus, read afresh on
every scrape, with a landing page at /. The flags are node_exporter's: TLS and
basic authentication are configured by --web.config.file, a file of
Prometheus's exporter-toolkit (the format node_exporter reads). The default
address is ` + DefaultListenAddress + `: loopback only.

The exporter remembers when it first saw a transition, for
klp_transition_duration_seconds. It never changes the kernel; reading every
task's patch_state needs root (see contrib/klp-exporter.service).

klp metrics and klp exporter are served by a program of their own,
` + ExporterProgram + `, installed beside klp or in ../libexec/klp from klp's
directory, so that Prometheus's libraries stay out of every other
command. klp executes it in its own process, with the same command line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.env.Exporter == nil {
				return opts.execExporter()
			}
			m, err := opts.metricsRequest()
			if err != nil {
				return err
			}
			req.MetricsRequest = m
			req.Log = opts.env.IO.ErrOut
			return opts.env.Exporter.Serve(req)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&req.Listen, "web.listen-address", []string{DefaultListenAddress}, "serve on `ADDR` (repeat for several)")
	f.StringVar(&req.TelemetryPath, "web.telemetry-path", "/metrics", "serve the metrics at `PATH`")
	f.StringVar(&req.ConfigFile, "web.config.file", "", "TLS and basic authentication configuration `FILE` (exporter-toolkit's web configuration)")
	f.BoolVar(&req.SystemdSocket, "web.systemd-socket", false, "serve on the listeners systemd passes (socket activation) instead")
	return cmd
}
