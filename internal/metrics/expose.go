package metrics

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TextfileName is the file klp metrics --textfile writes in its directory.
const TextfileName = "klp.prom"

// Registry returns a registry holding c alone: klp's series, without the Go
// runtime's.
func Registry(c *Collector) *prometheus.Registry {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	return reg
}

// Write writes one scrape of g in the text exposition format.
func Write(w io.Writer, g prometheus.Gatherer) error {
	mfs, err := g.Gather()
	if err != nil {
		return fmt.Errorf("gather metrics: %w", err)
	}
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
			return fmt.Errorf("write metrics: %w", err)
		}
	}
	return nil
}

// WriteTextfile writes one scrape of c to dir/klp.prom for node_exporter's
// textfile collector: into a temporary file of dir, renamed over the old
// one, so the collector never reads half a file. The start of a transition
// still in progress is carried over from the previous file.
func WriteTextfile(dir string, c *Collector) error {
	path := filepath.Join(dir, TextfileName)
	f, err := os.Open(path)
	switch {
	case err == nil:
		starts, perr := StartTimes(f)
		f.Close()
		if perr == nil {
			for patch, t := range starts {
				c.Seen(patch, t)
			}
		}
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := prometheus.WriteToTextfile(path, Registry(c)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// StartTimes reads klp_transition_start_time_seconds from an exposition:
// when each transition in progress was first seen.
func StartTimes(r io.Reader) (map[string]time.Time, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	out := map[string]time.Time{}
	mf := mfs[ns+"_transition_start_time_seconds"]
	if mf == nil {
		return out, nil
	}
	for _, m := range mf.GetMetric() {
		patch := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == "patch" {
				patch = l.GetValue()
			}
		}
		v := m.GetGauge().GetValue()
		sec := int64(v)
		out[patch] = time.Unix(sec, int64((v-float64(sec))*1e9))
	}
	return out, nil
}
