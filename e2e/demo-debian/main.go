// Command demo-debian is the narrated demo behind `make demo-debian`: klp
// as a Debian system runs it. It boots the suite's Debian guest (Debian 12
// with Debian's 6.1 kernel, systemd and sshd, in QEMU), installs klp's
// .deb, installs a live patch for boot, reboots, and shows the patch
// loaded by klp.service before the network came up, with its audit record
// in the journal. Run it as root from the repository:
//
//	go run ./e2e/demo-debian
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klp-project/klp/e2e/internal/harness"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo-debian:", err)
		os.Exit(1)
	}
}

// demo narrates commands and runs them in the guest, showing their output.
type demo struct {
	ctx context.Context
	vm  *harness.VM
}

func (d *demo) say(format string, args ...any) {
	fmt.Printf("\n# "+format+"\n", args...)
}

func (d *demo) run(command string) error {
	fmt.Printf("root@klp-e2e:~# %s\n", command)
	r, err := d.vm.Run(d.ctx, command+" 2>&1")
	if err != nil {
		return err
	}
	fmt.Print(r.Stdout)
	if !r.OK() {
		return fmt.Errorf("%s: exit status %d", command, r.Code)
	}
	return nil
}

func run() error {
	ctx := context.Background()
	repo, err := harness.RepoRoot(".")
	if err != nil {
		return err
	}
	fmt.Println("Preparing the host (packages, kernels, the Debian guest image, klp's .deb); the first run builds the image with mmdebstrap, later runs reuse the cache...")
	env, err := harness.Setup(ctx, repo, os.Stderr)
	if err != nil {
		return err
	}
	kver := env.Kernels[0]
	for _, k := range env.Kernels {
		if strings.HasPrefix(k, "6.1.0-") {
			kver = k
		}
	}
	img, err := env.DebianImage(ctx, os.Stderr)
	if err != nil {
		return err
	}
	modDir, err := env.Modules(ctx, kver, os.Stderr)
	if err != nil {
		return err
	}
	work := filepath.Join(repo, "e2e", ".work", "demo-debian")
	pkgs, err := harness.BuildPackages(ctx, repo, filepath.Join(work, "dist"))
	if err != nil {
		return err
	}
	vm, err := harness.NewVM(ctx, harness.VMConfig{Image: img, Kernel: kver, Dir: filepath.Join(work, "vm")})
	if err != nil {
		return err
	}
	defer vm.Close()
	d := &demo{ctx: ctx, vm: vm}

	fmt.Printf("\nBooting Debian 12 with Linux %s in QEMU (systemd, sshd; a fresh copy-on-write disk)...\n", kver)
	took, err := vm.Boot(ctx, "", 5*time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("SSH answered after %v.\n", took.Round(100*time.Millisecond))
	if err := vm.CopyIn(ctx, "/root/", pkgs.Deb, filepath.Join(modDir, "klp_e2e_cmdline.ko")); err != nil {
		return err
	}
	deb := filepath.Base(pkgs.Deb)

	d.say("klp comes as a Debian package: the binary, kgr, man pages, completions, klp.service.")
	if err := d.run("dpkg -i " + deb); err != nil {
		return err
	}
	d.say("A live patch module (ours replaces cmdline_proc_show, so /proc/cmdline shows it).")
	if err := d.run("cat /proc/cmdline"); err != nil {
		return err
	}
	d.say("Install it for boot, and let systemd load installed patches at boot.")
	for _, c := range []string{"klp install klp_e2e_cmdline.ko", "systemctl enable klp.service"} {
		if err := d.run(c); err != nil {
			return err
		}
	}
	d.say("Reboot.")
	fmt.Println("root@klp-e2e:~# systemctl reboot")
	took, err = vm.Reboot(ctx, "", 5*time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("(the guest was back after %v)\n", took.Round(100*time.Millisecond))
	d.say("klp.service loaded the patch at boot, before the network came up.")
	for _, c := range []string{
		"cat /proc/cmdline",
		"klp list",
		"systemctl status klp.service --no-pager",
		"systemd-analyze critical-chain network-pre.target --no-pager",
	} {
		if err := d.run(c); err != nil {
			return err
		}
	}
	d.say("Each load left an audit record in the journal, with fields to select on.")
	if err := d.run("journalctl -b KLP_ACTION=load -o verbose --output-fields=MESSAGE,PRIORITY,KLP_ACTION,KLP_PATCH,KLP_FILE,KLP_RELEASE,KLP_RESULT,KLP_DURATION_MS,KLP_USER,KLP_UID --no-pager"); err != nil {
		return err
	}
	fmt.Println("\nPowering off.")
	return vm.Shutdown(ctx, "poweroff", 2*time.Minute)
}
