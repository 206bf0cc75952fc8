package metrics_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/klp-project/klp/internal/metrics"
)

const contribDir = "../../contrib"

// TestAlertRules checks contrib/prometheus/klp-alerts.yml with promtool and
// runs its unit tests (klp-alerts.test.yml).
func TestAlertRules(t *testing.T) {
	promtool := lookPromtool(t)
	dir := filepath.Join(contribDir, "prometheus")
	for _, args := range [][]string{{"check", "rules", "klp-alerts.yml"}, {"test", "rules", "klp-alerts.test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// dashboardQueries returns every PromQL expression of the dashboard, with
// Grafana's variables replaced by what they stand for, and the variable
// queries' metric selectors (label_values(SELECTOR, label)).
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(contribDir, "grafana", "klp-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Type  string `json:"type"`
				Query string `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("klp-dashboard.json: %v", err)
	}
	vars := strings.NewReplacer(`"$instance"`, `".+"`, "$__rate_interval", "5m")
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q has a target without a query", p.Title)
				continue
			}
			exprs = append(exprs, vars.Replace(tg.Expr))
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.+), *[a-z_]+\)$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Query)
		if m == nil {
			t.Errorf("variable query %q is not label_values(SELECTOR, LABEL)", v.Query)
			continue
		}
		exprs = append(exprs, m[1])
	}
	if len(exprs) < 10 {
		t.Fatalf("the dashboard has %d queries", len(exprs))
	}
	return exprs
}

// TestDashboardQueries parses every query of contrib/grafana/
// klp-dashboard.json with Prometheus's parser (promtool check rules on a
// rule file holding each as a recording rule).
func TestDashboardQueries(t *testing.T) {
	promtool := lookPromtool(t)
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range dashboardQueries(t) {
		q, _ := json.Marshal(e) // a JSON string is a YAML string
		fmt.Fprintf(&b, "      - record: klp_dashboard_query_%d\n        expr: %s\n", i, q)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s\n%s", err, out, b.String())
	}
}

// TestQueriesNameKnownMetrics fails on a misspelt metric name in the rules
// or the dashboard: every klp_ name they use is one the collector
// describes. It needs no promtool.
func TestQueriesNameKnownMetrics(t *testing.T) {
	known := map[string]bool{}
	ch := make(chan *prometheus.Desc, 100)
	metrics.New(nil, metrics.Options{}).Describe(ch)
	close(ch)
	fq := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range ch {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			known[m[1]] = true
		}
	}
	if len(known) < 15 {
		t.Fatalf("the collector describes %d metrics", len(known))
	}
	rules, err := os.ReadFile(filepath.Join(contribDir, "prometheus", "klp-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(rules) + "\n" + strings.Join(dashboardQueries(t), "\n")
	used := map[string]bool{}
	for _, name := range regexp.MustCompile(`\bklp_[a-z_]+\b`).FindAllString(text, -1) {
		used[name] = true
	}
	var unknown []string
	for name := range used {
		if !known[name] {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		t.Errorf("queries name metrics klp does not export: %v", unknown)
	}
	if len(used) < 12 {
		t.Errorf("rules and dashboard use %d of klp's metrics", len(used))
	}
}
