package metrics

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
)

// NewHandler serves one scrape of c at telemetryPath and, at "/" when that
// is another path, a landing page linking to it. Errors are logged to
// logger.
func NewHandler(c *Collector, telemetryPath, version string, logger *slog.Logger) (http.Handler, error) {
	mux := http.NewServeMux()
	mux.Handle(telemetryPath, promhttp.HandlerFor(Registry(c), promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	if telemetryPath != "/" && telemetryPath != "" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "klp exporter",
			Description: "Kernel live patching state: patches, transitions and the tasks that block them",
			Version:     version,
			Links:       []web.LandingLinks{{Address: telemetryPath, Text: "Metrics"}},
		})
		if err != nil {
			return nil, fmt.Errorf("make landing page: %w", err)
		}
		mux.Handle("/", landing)
	}
	return mux, nil
}
