package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// HostKeyAlias is the name under which the guests' SSH host key is
// recorded in a VM's known_hosts file, whatever port it is reached on.
const HostKeyAlias = "klp-e2e-debian"

// VMConfig describes a Debian guest.
type VMConfig struct {
	Image  *DebianImage
	Kernel string // release to boot; one of Image.Kernels
	// Dir is the guest's work directory: its disk overlay, its SSH key,
	// the console log of each boot. Created if missing; an existing
	// overlay is replaced, so every VM starts from the built image.
	Dir string
	// Memory is QEMU's -m (default 2G).
	Memory string
	// Forward lists guest TCP ports to forward to 127.0.0.1, besides
	// 22 (an exporter's port, say); [VM.Ports] says where each went.
	Forward []int
	// Log, if set, receives a line per boot, reboot and stop.
	Log io.Writer
}

// Result is what a command run in the guest gave.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// OK is true when the command exited 0.
func (r Result) OK() bool { return r.Code == 0 }

func (r Result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
}

// VM is a Debian guest in QEMU with a persistent disk (a qcow2 overlay of
// the image, kept across its boots), reached over SSH as root on a port
// forwarded to 127.0.0.1. Its methods are safe for one test goroutine;
// the console is read in the background.
type VM struct {
	cfg VMConfig
	// Host and User are where and as whom SSH logs in; Key is the private
	// key made for this VM, KnownHosts the file that pins the guest's
	// host key (under [HostKeyAlias]).
	Host, User, Key, KnownHosts string
	// SSHPort is the host port forwarded to the guest's port 22.
	SSHPort int
	// Ports maps each forwarded guest port (22 included) to its host port.
	Ports map[int]int
	// Disk is the guest's overlay disk.
	Disk string
	// Boots is how many times QEMU was started; BootTimes how long each
	// boot took until SSH answered (0 for a boot that was not waited for).
	Boots     int
	BootTimes []time.Duration

	pubKey string // the base64 field of the public key
	// control is the socket of the SSH connection that the commands of a
	// boot share (OpenSSH connection multiplexing), and master the ssh
	// process that holds it; see startMaster.
	control    string
	master     *exec.Cmd
	masterDone chan struct{}
	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{} // closed when QEMU exits
	exitErr    error
	lines      []string // console lines of the current boot
	notify     chan struct{}
	stderr     bytes.Buffer
}

// NewVM prepares a guest: an overlay disk on the image and an SSH key of
// its own. It does not start QEMU (see [VM.Boot]).
func NewVM(ctx context.Context, cfg VMConfig) (*VM, error) {
	if cfg.Memory == "" {
		cfg.Memory = "2G"
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	v := &VM{cfg: cfg, Host: "127.0.0.1", User: "root", Disk: filepath.Join(cfg.Dir, "disk.qcow2"),
		Key: filepath.Join(cfg.Dir, "id_ed25519"), KnownHosts: filepath.Join(cfg.Dir, "known_hosts")}
	for _, f := range []string{v.Disk, v.Key, v.Key + ".pub"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	if out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-b", cfg.Image.Disk, "-F", "raw", v.Disk).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("vm: qemu-img create: %w: %s", err, out)
	}
	if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "klp-e2e", "-f", v.Key).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("vm: ssh-keygen: %w: %s", err, out)
	}
	pub, err := os.ReadFile(v.Key + ".pub")
	if err != nil {
		return nil, err
	}
	if f := strings.Fields(string(pub)); len(f) >= 2 && f[0] == "ssh-ed25519" {
		v.pubKey = f[1]
	} else {
		return nil, fmt.Errorf("vm: unexpected public key %q", pub)
	}
	if err := os.WriteFile(v.KnownHosts, []byte(HostKeyAlias+" "+cfg.Image.HostKey+"\n"), 0o644); err != nil {
		return nil, err
	}
	// A socket path must be short (108 bytes): not under Dir.
	ctl, err := os.MkdirTemp("", "klp-vm-")
	if err != nil {
		return nil, err
	}
	v.control = filepath.Join(ctl, "ssh")
	return v, nil
}

// Kernel is the release the guest boots.
func (v *VM) Kernel() string { return v.cfg.Kernel }

// cmdline is the kernel command line: what the guest needs, then extra.
// quiet keeps the serial console (slow under TCG) to errors: the kernel's
// KERN_ERR and worse, systemd's failures.
func (v *VM) cmdline(extra string) string {
	s := "console=ttyS0 root=/dev/vda rw quiet panic=-1 " + Mitigations() + "klp_e2e.ssh_key=" + v.pubKey
	if extra != "" {
		s += " " + extra
	}
	return s
}

// Mitigations returns the kernel parameter, with a trailing space, that
// turns off the mitigations of speculative execution in the suite's guests
// ("" when KLP_E2E_MITIGATIONS=1 asks for the kernel's defaults). The CPU
// QEMU emulates is "vulnerable", so the kernel fills return stack buffers
// and calls through retpolines, which TCG runs slowly: dpkg and Python
// took a quarter to a third less time without them. Live patching does
// not depend on them (the patched functions' entries, the stacks the
// transition checks and the consistency model are the same).
func Mitigations() string {
	if os.Getenv("KLP_E2E_MITIGATIONS") == "1" {
		return ""
	}
	return "mitigations=off "
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
// QEMU binds it a moment later; a lost race is retried by [VM.Start].
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (v *VM) pickPorts() error {
	v.Ports = map[int]int{}
	for _, g := range append([]int{22}, v.cfg.Forward...) {
		p, err := freePort()
		if err != nil {
			return fmt.Errorf("vm: pick a port: %w", err)
		}
		v.Ports[g] = p
	}
	v.SSHPort = v.Ports[22]
	return nil
}

// Start starts QEMU with the extra kernel command line and returns once
// it runs; it does not wait for the guest (see [VM.WaitSSH]). The ports
// stay the same from boot to boot unless one was taken meanwhile.
func (v *VM) Start(extra string) error {
	if v.Running() {
		return errors.New("vm: already running")
	}
	if v.Ports == nil {
		if err := v.pickPorts(); err != nil {
			return err
		}
	}
	var err error
	for range 3 {
		if err = v.start(extra); err == nil || !strings.Contains(err.Error(), "hostfwd") && !strings.Contains(err.Error(), "host forwarding") {
			return err
		}
		if perr := v.pickPorts(); perr != nil {
			return perr
		}
	}
	return err
}

func (v *VM) start(extra string) error {
	accel := accels()[0]
	net := "user,id=n0,restrict=on"
	guestPorts := make([]int, 0, len(v.Ports))
	for g := range v.Ports {
		guestPorts = append(guestPorts, g)
	}
	sort.Ints(guestPorts)
	for _, g := range guestPorts {
		net += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", v.Ports[g], g)
	}
	args := []string{
		"-accel", accel, "-smp", "1", "-m", v.cfg.Memory,
		"-nographic", "-no-reboot",
		"-kernel", v.cfg.Image.KernelImage(v.cfg.Kernel),
		"-initrd", v.cfg.Image.Initrd(v.cfg.Kernel),
		"-append", v.cmdline(extra),
		"-drive", "file=" + v.Disk + ",format=qcow2,if=virtio",
		"-netdev", net,
		// romfile= skips the iPXE option ROM, which costs seconds.
		"-device", "virtio-net-pci,netdev=n0,romfile=",
		"-device", "virtio-rng-pci",
	}
	if accel == "kvm" {
		args = append(args, "-cpu", "host")
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.stderr.Reset()
	v.lines = nil
	v.mu.Unlock()
	cmd.Stderr = &lockedWriter{mu: &v.mu, w: &v.stderr}
	v.Boots++
	logf, err := os.Create(filepath.Join(v.cfg.Dir, fmt.Sprintf("console-%d.log", v.Boots)))
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("vm: start qemu: %w", err)
	}
	v.logf("boot %d of %s: ssh on 127.0.0.1:%d, console in %s", v.Boots, v.cfg.Kernel, v.SSHPort, logf.Name())
	done := make(chan struct{})
	v.mu.Lock()
	v.cmd, v.done, v.exitErr = cmd, done, nil
	v.notify = make(chan struct{})
	v.mu.Unlock()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer logf.Close()
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				line = strings.TrimRight(line, "\r\n")
				fmt.Fprintln(logf, line)
				v.mu.Lock()
				v.lines = append(v.lines, line)
				close(v.notify)
				v.notify = make(chan struct{})
				v.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		<-readDone
		err := cmd.Wait()
		v.mu.Lock()
		v.exitErr = err
		close(v.notify)
		v.notify = make(chan struct{})
		v.mu.Unlock()
		close(done)
	}()
	// QEMU fails at once on a port it cannot bind.
	select {
	case <-done:
		return fmt.Errorf("vm: qemu exited at start: %s", strings.TrimSpace(v.stderrText()))
	case <-time.After(time.Second):
	}
	return nil
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (v *VM) stderrText() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.stderr.String()
}

func (v *VM) logf(format string, args ...any) {
	if v.cfg.Log != nil {
		fmt.Fprintf(v.cfg.Log, "vm %s: %s\n", v.cfg.Kernel, fmt.Sprintf(format, args...))
	}
}

// Running reports whether QEMU runs.
func (v *VM) Running() bool {
	v.mu.Lock()
	done := v.done
	v.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Console returns the console lines of the current (or last) boot.
func (v *VM) Console() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.lines...)
}

// WaitConsole waits until a console line of the current boot contains
// substr and returns it. It fails when QEMU exits first or ctx ends.
func (v *VM) WaitConsole(ctx context.Context, substr string) (string, error) {
	seen := 0
	for {
		v.mu.Lock()
		lines, notify, done := v.lines, v.notify, v.done
		v.mu.Unlock()
		for ; seen < len(lines); seen++ {
			if strings.Contains(lines[seen], substr) {
				return lines[seen], nil
			}
		}
		select {
		case <-notify:
		case <-done:
			// Read what came before the exit, then give up.
			v.mu.Lock()
			lines = v.lines
			v.mu.Unlock()
			for ; seen < len(lines); seen++ {
				if strings.Contains(lines[seen], substr) {
					return lines[seen], nil
				}
			}
			return "", fmt.Errorf("vm: qemu exited before the console showed %q", substr)
		case <-ctx.Done():
			return "", fmt.Errorf("vm: waiting for %q on the console: %w", substr, ctx.Err())
		}
	}
}

// WaitExit waits until QEMU exits (the guest powered off, or rebooted:
// QEMU runs with -no-reboot) or the timeout passes.
func (v *VM) WaitExit(timeout time.Duration) error {
	v.mu.Lock()
	done := v.done
	v.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("vm: qemu still runs after %v", timeout)
	}
}

// Kill stops QEMU at once, as pulling the plug would: the guest gets no
// chance to sync or shut down.
func (v *VM) Kill() error {
	v.mu.Lock()
	cmd, done := v.cmd, v.done
	v.mu.Unlock()
	if cmd == nil || !v.Running() {
		return nil
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	v.stopMaster()
	v.logf("killed QEMU (boot %d)", v.Boots)
	return nil
}

// startMaster opens the SSH connection that the boot's commands share:
// without it every command pays for a key exchange and a login, which on a
// guest under TCG takes seconds, and many when the host's cores are busy.
// Commands go through it while it runs (ControlMaster=no: they connect on
// their own when it is not there). It ends with the guest, or stopMaster.
func (v *VM) startMaster(ctx context.Context) error {
	v.stopMaster()
	args := append(v.connOptions("-p"), "-M", "-N", "-o", "ControlPath="+v.control, "-o", "ControlPersist=no", v.target())
	cmd := exec.Command("ssh", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &lockedWriter{mu: &v.mu, w: &stderr}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("vm: ssh master: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	v.master, v.masterDone = cmd, done
	for range 300 {
		if _, err := os.Stat(v.control); err == nil {
			return nil
		}
		select {
		case <-done:
			v.master = nil
			return fmt.Errorf("vm: ssh master exited: %s", strings.TrimSpace(stderr.String()))
		case <-ctx.Done():
			v.stopMaster()
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	v.stopMaster()
	return errors.New("vm: ssh master: no control socket after 30 s")
}

// stopMaster ends the shared SSH connection, if any.
func (v *VM) stopMaster() {
	if v.master == nil {
		return
	}
	_ = syscall.Kill(-v.master.Process.Pid, syscall.SIGTERM)
	select {
	case <-v.masterDone:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-v.master.Process.Pid, syscall.SIGKILL)
		<-v.masterDone
	}
	v.master = nil
	_ = os.Remove(v.control)
}

// SSHArgs is the ssh command line (program first) that logs into the
// guest; append the remote command.
func (v *VM) SSHArgs() []string {
	return append(append([]string{"ssh"}, v.sshOptions("-p")...), v.target())
}

// target is user@host.
func (v *VM) target() string { return v.User + "@" + v.Host }

func (v *VM) sshOptions(portFlag string) []string {
	if v.control == "" {
		return v.connOptions(portFlag)
	}
	return append(v.connOptions(portFlag), "-o", "ControlMaster=no", "-o", "ControlPath="+v.control)
}

// connOptions are the options of a connection of its own.
func (v *VM) connOptions(portFlag string) []string {
	return []string{
		"-i", v.Key, portFlag, strconv.Itoa(v.SSHPort),
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + v.KnownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "HostKeyAlias=" + HostKeyAlias, "-o", "StrictHostKeyChecking=yes",
		"-o", "ConnectTimeout=60", "-o", "ServerAliveInterval=15", "-o", "LogLevel=ERROR",
	}
}

// Run runs a shell command line in the guest as root and returns its
// output and exit code. The error is for SSH itself failing (exit status
// 255, no connection) or ctx ending, not for the command's own status.
func (v *VM) Run(ctx context.Context, command string) (Result, error) {
	return v.RunInput(ctx, command, nil)
}

// RunInput is [VM.Run] with stdin.
func (v *VM) RunInput(ctx context.Context, command string, stdin io.Reader) (Result, error) {
	args := append(v.sshOptions("-p"), v.target(), "--", command)
	cmd := exec.CommandContext(ctx, "ssh", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &stdout, &stderr, stdin
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		r.Code = -1
		return r, fmt.Errorf("vm: ssh %q: %w", command, ctx.Err())
	case errors.As(err, &ee) && ee.ExitCode() > 0 && ee.ExitCode() != 255:
		r.Code = ee.ExitCode()
	default:
		r.Code = -1
		return r, fmt.Errorf("vm: ssh %q: %w: %s", command, err, strings.TrimSpace(stderr.String()))
	}
	return r, nil
}

// WaitSSH waits until sshd in the guest runs a command, and records how
// long the boot took.
func (v *VM) WaitSSH(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if !v.Running() {
			return fmt.Errorf("vm: qemu exited before sshd answered: %s\n--- console tail:\n%s", strings.TrimSpace(v.stderrText()), Tail(v.Console(), 40))
		}
		cctx, ccancel := context.WithTimeout(ctx, 75*time.Second)
		r, err := v.Run(cctx, "true")
		ccancel()
		if err == nil && r.OK() {
			break
		}
		last = err
		if err == nil {
			last = fmt.Errorf("ssh true: %v", r)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("vm: no SSH after %v: %v\n--- console tail:\n%s", timeout, last, Tail(v.Console(), 40))
		case <-time.After(time.Second):
		}
	}
	return nil
}

// Boot starts QEMU with the extra kernel command line and waits for SSH.
// It returns how long that took.
func (v *VM) Boot(ctx context.Context, extra string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := v.Start(extra); err != nil {
		return 0, err
	}
	if err := v.WaitSSH(ctx, timeout); err != nil {
		return 0, err
	}
	d := time.Since(start)
	if err := v.startMaster(ctx); err != nil {
		v.logf("%v; each command connects on its own", err)
	}
	v.BootTimes = append(v.BootTimes, d)
	v.logf("boot %d: SSH answered after %v", v.Boots, d.Round(100*time.Millisecond))
	return d, nil
}

// Shutdown runs "systemctl poweroff" (or "reboot": QEMU exits either way,
// since it runs with -no-reboot) and waits for QEMU to exit.
func (v *VM) Shutdown(ctx context.Context, verb string, timeout time.Duration) error {
	// The connection may drop before ssh learns the exit status.
	_, _ = v.Run(ctx, "systemctl "+verb)
	if err := v.WaitExit(timeout); err != nil {
		return fmt.Errorf("vm: systemctl %s: %w\n--- console tail:\n%s", verb, err, Tail(v.Console(), 30))
	}
	v.stopMaster()
	return nil
}

// Reboot shuts the guest down cleanly and boots it again with the extra
// kernel command line (which may differ from the last boot's), waiting
// for SSH.
func (v *VM) Reboot(ctx context.Context, extra string, timeout time.Duration) (time.Duration, error) {
	if err := v.Shutdown(ctx, "reboot", 2*time.Minute); err != nil {
		return 0, err
	}
	return v.Boot(ctx, extra, timeout)
}

// Close stops QEMU if it still runs, and the shared SSH connection.
func (v *VM) Close() error {
	err := v.Kill()
	v.stopMaster()
	_ = os.RemoveAll(filepath.Dir(v.control))
	return err
}

// CopyIn copies local files or directories into the guest (scp -r).
func (v *VM) CopyIn(ctx context.Context, remoteDir string, local ...string) error {
	args := append(v.sshOptions("-P"), "-r", "-q")
	args = append(args, local...)
	args = append(args, v.target()+":"+remoteDir)
	return v.scp(ctx, args)
}

// CopyOut copies a file or directory of the guest to a local path.
func (v *VM) CopyOut(ctx context.Context, remote, local string) error {
	args := append(v.sshOptions("-P"), "-r", "-q", v.target()+":"+remote, local)
	return v.scp(ctx, args)
}

func (v *VM) scp(ctx context.Context, args []string) error {
	out, err := exec.CommandContext(ctx, "scp", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("vm: scp: %w: %s", err, out)
	}
	return nil
}

// AnsibleInventory returns an INI inventory with this guest as host name,
// for ansible and ansible-playbook -i.
func (v *VM) AnsibleInventory(name string) string {
	return fmt.Sprintf("%s ansible_host=%s ansible_port=%d ansible_user=%s ansible_ssh_private_key_file=%s "+
		"ansible_ssh_common_args='-o UserKnownHostsFile=%s -o HostKeyAlias=%s -o StrictHostKeyChecking=yes' "+
		"ansible_python_interpreter=/usr/bin/python3\n",
		name, v.Host, v.SSHPort, v.User, v.Key, v.KnownHosts, HostKeyAlias)
}
