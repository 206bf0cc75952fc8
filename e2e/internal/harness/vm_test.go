package harness

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func testVM() *VM {
	return &VM{cfg: VMConfig{Kernel: "6.1.0-56-cloud-amd64"}, Host: "127.0.0.1", User: "root", SSHPort: 40022,
		Key: "/w/id_ed25519", KnownHosts: "/w/known_hosts", pubKey: "AAAAC3NzaC1lZDI1NTE5AAAAIExample", control: "/tmp/klp-vm-1/ssh"}
}

func TestCmdline(t *testing.T) {
	v := testVM()
	if got, want := v.cmdline(""), "console=ttyS0 root=/dev/vda rw quiet panic=-1 mitigations=off klp_e2e.ssh_key=AAAAC3NzaC1lZDI1NTE5AAAAIExample"; got != want {
		t.Errorf("cmdline() = %q, want %q", got, want)
	}
	if got := v.cmdline("klp.enable=0"); !strings.HasSuffix(got, "klp_e2e.ssh_key=AAAAC3NzaC1lZDI1NTE5AAAAIExample klp.enable=0") {
		t.Errorf("cmdline(extra) = %q", got)
	}
}

func TestAnsibleInventory(t *testing.T) {
	got := testVM().AnsibleInventory("debian61")
	want := "debian61 ansible_host=127.0.0.1 ansible_port=40022 ansible_user=root ansible_ssh_private_key_file=/w/id_ed25519 " +
		"ansible_ssh_common_args='-o UserKnownHostsFile=/w/known_hosts -o HostKeyAlias=klp-e2e-debian -o StrictHostKeyChecking=yes' " +
		"ansible_python_interpreter=/usr/bin/python3\n"
	if got != want {
		t.Errorf("AnsibleInventory() =\n%q\nwant\n%q", got, want)
	}
}

func TestSSHArgs(t *testing.T) {
	got := strings.Join(testVM().SSHArgs(), " ")
	for _, want := range []string{"ssh -i /w/id_ed25519 -p 40022 ", "-o UserKnownHostsFile=/w/known_hosts", "-o HostKeyAlias=klp-e2e-debian",
		"-o StrictHostKeyChecking=yes", "-o BatchMode=yes", "-o ControlMaster=no -o ControlPath=/tmp/klp-vm-1/ssh"} {
		if !strings.Contains(got, want) {
			t.Errorf("SSHArgs() = %q, lacks %q", got, want)
		}
	}
	if !strings.HasSuffix(got, " root@127.0.0.1") {
		t.Errorf("SSHArgs() = %q, want the target last", got)
	}
}

func TestFreePortIsLoopbackAndFree(t *testing.T) {
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("port %d from freePort cannot be bound: %v", p, err)
	}
	l.Close()
}

func TestResult(t *testing.T) {
	if !(Result{}).OK() || (Result{Code: 1}).OK() {
		t.Error("OK() is exit status 0")
	}
}

func TestVMNotRunning(t *testing.T) {
	v := testVM()
	if v.Running() {
		t.Error("a VM never started is not running")
	}
	if err := v.Kill(); err != nil {
		t.Errorf("Kill of a VM never started: %v", err)
	}
	if err := v.WaitExit(0); err != nil {
		t.Errorf("WaitExit of a VM never started: %v", err)
	}
}

func TestBuildDeb(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("no dpkg-deb")
	}
	dir := t.TempDir()
	ko := filepath.Join(dir, "fix.ko")
	if err := os.WriteFile(ko, []byte("module"), 0o644); err != nil {
		t.Fatal(err)
	}
	deb, err := BuildDeb(context.Background(), DebSpec{
		Package: "lp-test", Version: "1.0-1", Architecture: "amd64", Depends: "klp", Description: "a test",
		Files:     map[string]string{"lib/modules/6.1/livepatch/fix.ko": ko},
		Changelog: "lp-test (1.0-1) unstable; urgency=low\n\n  * CVE-2026-1.\n\n -- x <x@localhost>  Mon, 02 Nov 2026 10:00:00 +0000\n",
		Postinst:  "#!/bin/sh\nexit 0\n",
	}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(deb) != "lp-test_1.0-1_amd64.deb" {
		t.Errorf("BuildDeb() = %s", deb)
	}
	out, err := exec.Command("dpkg-deb", "-f", deb, "Package", "Version", "Depends").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out); got != "Package: lp-test\nVersion: 1.0-1\nDepends: klp\n" {
		t.Errorf("control fields %q", got)
	}
	out, err = exec.Command("dpkg-deb", "-c", deb).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"root/root", "./lib/modules/6.1/livepatch/fix.ko", "./usr/share/doc/lp-test/changelog.Debian.gz"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("dpkg-deb -c lacks %q:\n%s", want, out)
		}
	}
	out, err = exec.Command("dpkg-deb", "-I", deb, "postinst").Output()
	if err != nil || string(out) != "#!/bin/sh\nexit 0\n" {
		t.Errorf("postinst %q, %v", out, err)
	}
}
