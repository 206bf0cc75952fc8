package cli

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"github.com/spf13/cobra"

	"github.com/klp-project/klp/internal/metrics"
)

func newExporterCmd(opts *rootOptions) *cobra.Command {
	var (
		listen        []string
		systemdSocket bool
		configFile    string
		telemetryPath string
	)
	cmd := &cobra.Command{
		Use:   "exporter [--web.listen-address ADDR] [--web.telemetry-path PATH] [--web.config.file FILE]",
		Short: "Serve the live patching state to Prometheus",
		Long: `Serve the metrics of klp metrics over HTTP for Prometheus, read afresh on
every scrape, with a landing page at /. The flags are node_exporter's: TLS and
basic authentication are configured by --web.config.file, a file of
Prometheus's exporter-toolkit (the format node_exporter reads). The default
address is ` + metrics.DefaultListenAddress + `: loopback only.

The exporter remembers when it first saw a transition, for
klp_transition_duration_seconds. It never changes the kernel; reading every
task's patch_state needs root (see contrib/klp-exporter.service).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := opts.collector()
			if err != nil {
				return err
			}
			logger := slog.New(slog.NewTextHandler(opts.env.IO.ErrOut, nil))
			h, err := metrics.NewHandler(c, telemetryPath, version, logger)
			if err != nil {
				return err
			}
			server := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
			return web.ListenAndServe(server, &web.FlagConfig{
				WebListenAddresses: &listen,
				WebSystemdSocket:   &systemdSocket,
				WebConfigFile:      &configFile,
			}, logger)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&listen, "web.listen-address", []string{metrics.DefaultListenAddress}, "serve on `ADDR` (repeat for several)")
	f.StringVar(&telemetryPath, "web.telemetry-path", "/metrics", "serve the metrics at `PATH`")
	f.StringVar(&configFile, "web.config.file", "", "TLS and basic authentication configuration `FILE` (exporter-toolkit's web configuration)")
	f.BoolVar(&systemdSocket, "web.systemd-socket", false, "serve on the listeners systemd passes (socket activation) instead")
	return cmd
}
