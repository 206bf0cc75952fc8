// Command demo is the narrated klp demo behind `make demo`: it prepares the
// host like the e2e suite (e2e/setup.sh, module build, initramfs), boots the
// 6.1 kernel in QEMU and streams the guest's demo script (e2e/guest/demo.sh)
// with kernel noise filtered out. Run it as root from the repository:
//
//	go run ./e2e/demo
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/klp-project/klp/e2e/internal/harness"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// kernelLine matches printk output on the console ("[    1.234567] ...").
var kernelLine = regexp.MustCompile(`^\[\s*\d+\.\d+\]`)

// ansi matches the escape sequences of colours and line erasing.
var ansi = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")

// screen returns what a terminal shows of a console line: klp redraws its
// progress line with "\r" and an erase, which arrive here glued to the next
// line of output. Without a terminal the colours go too.
func screen(l string, color bool) string {
	if i := strings.LastIndexByte(l, '\r'); i >= 0 {
		l = l[i+1:]
	}
	l = strings.ReplaceAll(l, "\x1b[K", "")
	if !color {
		l = ansi.ReplaceAllString(l, "")
	}
	return l
}

func run() error {
	ctx := context.Background()
	repo, err := harness.RepoRoot(".")
	if err != nil {
		return err
	}
	fmt.Println("Preparing the host (packages, kernels, modules); the first run downloads and installs, later runs reuse the cache...")
	env, err := harness.Setup(ctx, repo, os.Stderr)
	if err != nil {
		return err
	}
	kver := ""
	for _, k := range env.Kernels {
		if strings.HasPrefix(k, "6.1.0-") {
			kver = k
		}
	}
	if kver == "" {
		kver = env.Kernels[0]
	}
	modDir, err := env.Modules(ctx, kver, os.Stderr)
	if err != nil {
		return err
	}
	work := filepath.Join(repo, "e2e", ".work", "demo")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	bins, err := harness.BuildBinaries(ctx, repo, work)
	if err != nil {
		return err
	}
	initrd, err := env.Initramfs(ctx, work, harness.Guest{Kernel: kver, ModDir: modDir}, bins)
	if err != nil {
		return err
	}
	appendLine := "console=ttyS0 panic=-1 quiet loglevel=1 klp_e2e_mode=demo"
	color := false
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		appendLine += " klp_e2e_color=1"
		color = true
	}
	fmt.Printf("Booting Debian's %s kernel in QEMU (TCG, one vCPU)...\n", kver)
	start := time.Now()
	booted := false
	_, err = harness.Boot(ctx, harness.BootConfig{
		Kernel: env.KernelImage(kver),
		Initrd: initrd,
		// loglevel=1 keeps the kernel's own messages off the console; the
		// demo prints the relevant kernel log lines itself at the end.
		Append:  appendLine,
		Timeout: 3 * time.Minute,
		Log:     os.Stderr,
		OnLine: func(l string) {
			switch {
			case strings.Contains(l, harness.BootMarker):
				booted = true
				fmt.Printf("(guest booted in %.1fs)\n", time.Since(start).Seconds())
			case !booted, kernelLine.MatchString(l), strings.HasPrefix(l, "KLPTEST-EXIT"):
			default:
				fmt.Println(screen(l, color))
			}
		},
	})
	if err != nil {
		return err
	}
	fmt.Printf("(guest powered off after %.1fs)\n", time.Since(start).Seconds())
	return nil
}
