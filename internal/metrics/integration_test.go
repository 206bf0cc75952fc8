//go:build integration

package metrics_test

// The integration test of docs/metrics.md: Debian's Prometheus (2.42)
// scrapes klp exporter, and Debian's node_exporter (1.5) serving the file
// of klp metrics --textfile, both over TLS with basic authentication, all on
// loopback, over the fixture tree with a blocked transition. Run by make
// integration (make test).

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/klp-project/klp/internal/fakefs"
)

// need returns the path of a Debian binary; without it the test is skipped,
// saying so (make deps installs them).
func need(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (make deps installs Debian's prometheus and prometheus-node-exporter): integration test skipped", name)
	}
	return p
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeTLS writes a self-signed certificate for 127.0.0.1 and its key.
func writeTLS(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "klp integration test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// start runs a server until the test ends, its output in the test log on
// failure.
func start(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", name, b)
		}
	})
}

// sample is one series of a Prometheus instant query.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s sample) value() float64 {
	v, _ := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64)
	return v
}

// query asks Prometheus's HTTP API.
func query(t *testing.T, base, q string) []sample {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []sample `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
		t.Fatalf("query %s: %v %s %s", q, err, r.Status, r.Error)
	}
	return r.Data.Result
}

func TestPrometheusIntegration(t *testing.T) {
	prom := need(t, "prometheus")
	nodeExporter := need(t, "prometheus-node-exporter")
	dir := t.TempDir()

	// klp runs klp-exporter, found beside it, for both commands.
	klp := filepath.Join(dir, "klp")
	if out, err := exec.Command("go", "build", "-o", dir+"/", "../../cmd/klp", "../../cmd/klp-exporter").CombinedOutput(); err != nil {
		t.Fatalf("build klp and klp-exporter: %v\n%s", err, out)
	}
	root := fakefs.Load(t, filepath.Join(fixtureDir, "transition-blocking.txtar"))
	kdir := filepath.Join(root, "proc", "sys", "kernel")
	if err := os.MkdirAll(kdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(kdir, "osrelease"), []byte("6.1.0-integration\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	roots := []string{klp, "--sysfs", filepath.Join(root, "sys"), "--procfs", filepath.Join(root, "proc")}

	// TLS and basic auth for both exporters, in exporter-toolkit's format.
	cert, key := writeTLS(t, dir)
	const user, password = "prometheus", "s3cret klp"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(webConfig, fmt.Appendf(nil, "tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  %s: %s\n",
		cert, key, user, hash), 0o600); err != nil {
		t.Fatal(err)
	}

	// The textfile, as a run of klp-metrics.service makes it, after an
	// earlier run saw the transition start an hour ago.
	textDir := filepath.Join(dir, "textfile")
	if err := os.Mkdir(textDir, 0o755); err != nil {
		t.Fatal(err)
	}
	earlier := time.Now().Add(-time.Hour).Unix()
	if err := os.WriteFile(filepath.Join(textDir, "klp.prom"), fmt.Appendf(nil,
		"# TYPE klp_transition_start_time_seconds gauge\nklp_transition_start_time_seconds{patch=\"livepatch_2_160000_1_1\"} %d\n", earlier), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(roots[0], append(roots[1:], "metrics", "--textfile", textDir)...).CombinedOutput(); err != nil {
		t.Fatalf("klp metrics --textfile: %v\n%s", err, out)
	}

	klpPort, nodePort, promPort := freePort(t), freePort(t), freePort(t)
	start(t, dir, "klp-exporter", append(roots, "exporter",
		"--web.listen-address", fmt.Sprintf("127.0.0.1:%d", klpPort), "--web.config.file", webConfig)...)
	start(t, dir, "node-exporter", nodeExporter,
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", nodePort), "--web.config.file="+webConfig,
		"--collector.disable-defaults", "--collector.textfile", "--collector.textfile.directory="+textDir)

	rules, err := filepath.Abs(filepath.Join(contribDir, "prometheus", "klp-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	promConfig := filepath.Join(dir, "prometheus.yml")
	job := func(name string, port int) string {
		return fmt.Sprintf(`  - job_name: %s
    scheme: https
    tls_config: {ca_file: %q}
    basic_auth: {username: %q, password: %q}
    static_configs: [{targets: ["127.0.0.1:%d"]}]
`, name, cert, user, password, port)
	}
	if err := os.WriteFile(promConfig, []byte("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"+
		fmt.Sprintf("rule_files: [%q]\n", rules)+"scrape_configs:\n"+job("klp", klpPort)+job("node", nodePort)), 0o644); err != nil {
		t.Fatal(err)
	}
	start(t, dir, "prometheus", prom, "--config.file="+promConfig, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", promPort))
	base := fmt.Sprintf("http://127.0.0.1:%d", promPort)

	// Wait until Prometheus has scraped both (a deadline, not a timing
	// assertion: a busy machine only makes it slower).
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if resp, err := http.Get(base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				// Three scrapes of each: rate() has samples to work on.
				up := query(t, base, `up == 1 and on (job) (count_over_time(klp_build_info[1m]) >= 3)`)
				if len(up) == 2 {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus did not scrape both exporters three times in 5 minutes (its log follows)")
		}
		time.Sleep(time.Second)
	}

	for _, job := range []string{"klp", "node"} {
		for q, want := range map[string]float64{
			`klp_livepatch_supported`:                                            1,
			`klp_transition_in_progress`:                                         1,
			`klp_blocking_tasks{kind="user"}`:                                    3,
			`klp_blocking_tasks{kind="kernel"}`:                                  2,
			`klp_patch_transition{patch="livepatch_2_160000_1_1"}`:               1,
			`klp_patch_enabled{patch="livepatch_1_160000_1_1"}`:                  1,
			`klp_kernel_tainted_livepatch`:                                       1,
			`klp_installed_patches{release="6.1.0-integration"}`:                 0,
			`klp_object_patched{patch="livepatch_2_160000_1_1",object="sunrpc"}`: 1,
		} {
			sel := strings.Replace(q, "{", fmt.Sprintf(`{job=%q,`, job), 1)
			if !strings.Contains(sel, "{") {
				sel = fmt.Sprintf("%s{job=%q}", q, job)
			}
			got := query(t, base, sel)
			if len(got) != 1 || got[0].value() != want {
				t.Errorf("%s: %v, want one series of %v", sel, got, want)
			}
		}
	}
	// The textfile kept the earlier start: an hour-long transition.
	if got := query(t, base, `klp_transition_duration_seconds{job="node"}`); len(got) != 1 || got[0].value() < 3500 {
		t.Errorf("textfile duration: %v, want about an hour", got)
	}
	// The stall alert of contrib/prometheus/klp-alerts.yml fires in
	// Prometheus for the hour-long transition, and not for the exporter's
	// new one.
	for {
		got := query(t, base, `ALERTS{alertname="KlpTransitionStalled",alertstate="firing"}`)
		if len(got) == 1 && got[0].Metric["job"] == "node" && got[0].Metric["patch"] == "livepatch_2_160000_1_1" {
			break
		}
		if time.Now().After(deadline) || len(got) > 1 {
			t.Fatalf("KlpTransitionStalled: %v, want it firing for the textfile's transition alone", got)
		}
		time.Sleep(time.Second)
	}
	// Basic auth is on: without the password the exporter refuses.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: trusting(t, cert)}}
	if resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/metrics", klpPort)); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unauthenticated scrape: %v %v, want 401", resp, err)
	} else {
		resp.Body.Close()
	}

	// Every panel of the dashboard shows data.
	checkDashboardData(t, base)
}

// trusting returns a TLS configuration that trusts the certificate at path.
func trusting(t *testing.T, path string) *tls.Config {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("no certificate in " + path)
	}
	return &tls.Config{RootCAs: pool}
}

func checkDashboardData(t *testing.T, base string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(contribDir, "grafana", "klp-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$instance", "127.0.0.1:.*", "$__rate_interval", "1m")
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		n := 0
		for _, tg := range p.Targets {
			got := query(t, base, vars.Replace(tg.Expr))
			if len(got) == 0 {
				t.Logf("panel %q: %s returns nothing on this fixture", p.Title, tg.Expr)
			}
			n += len(got)
		}
		if n == 0 {
			t.Errorf("panel %q shows no data", p.Title)
		}
	}
}
