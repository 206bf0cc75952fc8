// Package harness prepares and boots the QEMU guests of klp's real-kernel
// end-to-end suite: it runs e2e/setup.sh (packages, kernel images, headers),
// builds the test modules against each kernel, builds the static klp and guest
// binaries, packs them with busybox into an initramfs and boots it.
//
// It is shared by the test driver (e2e/e2e_test.go) and the demo
// (e2e/demo). Everything here needs root and a Debian 12 host.
package harness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultCache is where setup.sh keeps kernels and where module builds are
// cached; KLP_E2E_CACHE overrides it.
const DefaultCache = "/var/cache/klp-e2e"

// Env is a prepared host: the repository, the cache and the kernels to test.
type Env struct {
	Repo    string   // root of the klp module
	Cache   string   // cache directory shared with setup.sh
	Kernels []string // kernel release strings, e.g. "6.1.0-56-cloud-amd64"
}

// CacheDir returns the cache directory chosen by KLP_E2E_CACHE.
func CacheDir() string {
	if c := os.Getenv("KLP_E2E_CACHE"); c != "" {
		return c
	}
	return DefaultCache
}

// RepoRoot finds the module root by walking up from dir to the go.mod file.
func RepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Setup runs e2e/setup.sh, which installs what is missing and prints the
// kernels to test. Its progress goes to log.
func Setup(ctx context.Context, repo string, log io.Writer) (*Env, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the e2e suite must run as root (it installs packages, and setup.sh writes the cache)")
	}
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(repo, "e2e", "setup.sh"))
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = log
	cmd.Env = append(os.Environ(), "KLP_E2E_CACHE="+CacheDir())
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("e2e/setup.sh: %w", err)
	}
	kernels := strings.Fields(out.String())
	if len(kernels) == 0 {
		return nil, errors.New("e2e/setup.sh printed no kernels")
	}
	return &Env{Repo: repo, Cache: CacheDir(), Kernels: kernels}, nil
}

// KernelImage is the extracted vmlinuz of kver.
func (e *Env) KernelImage(kver string) string {
	return filepath.Join(e.Cache, "kernels", kver, "vmlinuz")
}

// KernelConfig is the extracted /boot/config-<kver> of kver.
func (e *Env) KernelConfig(kver string) string {
	return filepath.Join(e.Cache, "kernels", kver, "config")
}

// Modules builds e2e/modules against the headers of kver and returns the
// directory holding the .ko files. Builds are cached under the cache
// directory, keyed by kernel and by a hash of the sources, so an unchanged
// tree is built once per kernel.
func (e *Env) Modules(ctx context.Context, kver string, log io.Writer) (string, error) {
	src := filepath.Join(e.Repo, "e2e", "modules")
	hash, files, err := hashSources(src)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(e.Cache, "modules", kver+"-"+hash)
	if kos, _ := filepath.Glob(filepath.Join(dir, "*.ko")); len(kos) > 0 {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(tmp, f), data, 0o644); err != nil {
			return "", err
		}
	}
	// M= must be an absolute, writable directory: build a copy so the source
	// tree stays clean.
	cmd := exec.CommandContext(ctx, "make", "-s", "-C", "/usr/src/linux-headers-"+kver, "M="+tmp, "modules")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build modules for %s: %w\n%s", kver, err, out.String())
	}
	fmt.Fprintf(log, "built e2e modules for %s\n", kver)
	if err := os.MkdirAll(dir+".new", 0o755); err != nil {
		return "", err
	}
	kos, _ := filepath.Glob(filepath.Join(tmp, "*.ko"))
	if len(kos) == 0 {
		return "", fmt.Errorf("build modules for %s: no .ko produced\n%s", kver, out.String())
	}
	for _, ko := range kos {
		if err := os.Rename(ko, filepath.Join(dir+".new", filepath.Base(ko))); err != nil {
			return "", err
		}
	}
	os.RemoveAll(dir)
	if err := os.Rename(dir+".new", dir); err != nil {
		return "", err
	}
	return dir, nil
}

// hashSources hashes the module sources (Kbuild and *.c, *.h, and the
// *.lds linker scripts) so that any edit invalidates the cached build.
func hashSources(dir string) (string, []string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", nil, err
	}
	var files []string
	for _, e := range entries {
		n := e.Name()
		if n == "Kbuild" || n == "Makefile" || strings.HasSuffix(n, ".c") || strings.HasSuffix(n, ".h") || strings.HasSuffix(n, ".lds") {
			files = append(files, n)
		}
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", nil, err
		}
		fmt.Fprintf(h, "%s %d\n", f, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], files, nil
}

// Binaries are the static programs that go into the initramfs.
type Binaries struct {
	Klp      string // the klp CLI (./cmd/klp)
	Exporter string // klp-exporter, which klp runs for metrics and exporter (./cmd/klp-exporter)
	Guest    string // the scenario runner (./e2e/guest)
}

// BuildBinaries builds klp, klp-exporter and the guest runner as static
// binaries in dir.
func BuildBinaries(ctx context.Context, repo, dir string) (Binaries, error) {
	b := Binaries{Klp: filepath.Join(dir, "klp"), Exporter: filepath.Join(dir, "klp-exporter"), Guest: filepath.Join(dir, "klp-guest")}
	for _, t := range []struct{ out, pkg string }{{b.Klp, "./cmd/klp"}, {b.Exporter, "./cmd/klp-exporter"}, {b.Guest, "./e2e/guest"}} {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", t.out, t.pkg)
		cmd.Dir = repo
		// Static, so that it runs in a busybox initramfs with no libc.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %w\n%s", t.pkg, err, out)
		}
	}
	return b, nil
}
