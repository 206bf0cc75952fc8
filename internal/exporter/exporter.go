// Package exporter serves klp metrics and klp exporter with Prometheus's
// libraries. It is linked only into klp-exporter (cmd/klp-exporter), which
// klp executes for those two commands (cli.ExporterProgram says why).
package exporter

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/klp-project/klp/internal/cli"
	"github.com/klp-project/klp/internal/metrics"
)

// Commands is the cli.Exporter of klp-exporter.
type Commands struct{}

var _ cli.Exporter = Commands{}

// Metrics prints one scrape, or writes it for node_exporter's textfile
// collector.
func (Commands) Metrics(r cli.MetricsRequest) error {
	c := collector(r)
	if r.Textfile != "" {
		return metrics.WriteTextfile(r.Textfile, c)
	}
	return metrics.Write(r.Out, metrics.Registry(c))
}

// Serve serves the scrapes with node_exporter's web flags.
func (Commands) Serve(r cli.ServeRequest) error {
	logger := slog.New(slog.NewTextHandler(r.Log, nil))
	h, err := metrics.NewHandler(collector(r.MetricsRequest), r.TelemetryPath, r.Version, logger)
	if err != nil {
		return err
	}
	server := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return web.ListenAndServe(server, &web.FlagConfig{
		WebListenAddresses: &r.Listen,
		WebSystemdSocket:   &r.SystemdSocket,
		WebConfigFile:      &r.ConfigFile,
	}, logger)
}

func collector(r cli.MetricsRequest) *metrics.Collector {
	return metrics.New(r.System, metrics.Options{Version: r.Version, Store: r.Store, Now: r.Now})
}
