package metrics_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/klp-project/klp/internal/metrics"
	"github.com/klp-project/klp/internal/store"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func TestHandler(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := collector(t, "transition-blocking", &now, store.Store{})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := metrics.NewHandler(c, "/metrics", "test", logger)
	if err != nil {
		t.Fatal(err)
	}
	code, body := get(t, h, "/metrics")
	if code != http.StatusOK || !strings.Contains(body, `klp_blocking_tasks{kind="user",patch="livepatch_2_160000_1_1"} 3`) {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	code, body = get(t, h, "/")
	if code != http.StatusOK || !strings.Contains(body, `href="metrics"`) && !strings.Contains(body, `href="/metrics"`) {
		t.Errorf("landing page: %d\n%s", code, body)
	}
	// The metrics at the root: no landing page.
	h, err = metrics.NewHandler(c, "/", "test", logger)
	if err != nil {
		t.Fatal(err)
	}
	if code, body = get(t, h, "/"); code != http.StatusOK || !strings.Contains(body, "klp_transition_in_progress 1") {
		t.Errorf("metrics at /: %d\n%s", code, body)
	}
}
