package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// BootMarker is the first line the guest's init prints; seeing it proves
// that the kernel booted far enough to run user space.
const BootMarker = "KLPTEST-BOOT"

// BootConfig describes one guest boot.
type BootConfig struct {
	Kernel  string        // vmlinuz
	Initrd  string        // initramfs
	Append  string        // kernel command line
	Timeout time.Duration // for the whole boot, power-off included
	// Console receives the raw serial console of the attempt that is kept
	// (a failed KVM attempt is not written).
	Console io.Writer
	// OnLine, if set, is called with every console line (without \r\n).
	OnLine func(line string)
	// Log, if set, receives a line about each failed accelerator attempt.
	Log io.Writer
	// Outbox, if set, is an image (NewOutbox) the guest gets as an NVMe
	// drive to send files on (ReadOutbox).
	Outbox string
	// Memory is the guest's RAM in QEMU's -m syntax (default "1G").
	Memory string
	// CPUs is the number of vCPUs (default 1).
	CPUs int
}

// resources returns the memory and vCPU options of cfg, defaults applied.
func (cfg BootConfig) resources() (memory string, cpus int) {
	memory, cpus = cfg.Memory, cfg.CPUs
	if memory == "" {
		memory = "1G"
	}
	if cpus < 1 {
		cpus = 1
	}
	return memory, cpus
}

// accels returns the accelerators to try in order. TCG is the default: on
// the project's build hosts /dev/kvm exists but is a PVM backend that cannot
// boot a stock kernel (see docs/kernel-notes.md). KLP_E2E_ACCEL=kvm tries KVM
// first and falls back to TCG when KVM does not reach user space in time.
func accels() []string {
	switch os.Getenv("KLP_E2E_ACCEL") {
	case "kvm":
		return []string{"kvm", "tcg"}
	default:
		return []string{"tcg"}
	}
}

// kvmBootTimeout bounds a KVM attempt until the boot marker: a working KVM
// reaches /init in about a second, a broken one hangs or aborts.
const kvmBootTimeout = 20 * time.Second

// Boot runs the guest until it powers off and returns the accelerator used.
// It fails if QEMU fails, or if the guest does not finish within the timeout.
func Boot(ctx context.Context, cfg BootConfig) (string, error) {
	list := accels()
	for i, accel := range list {
		last := i == len(list)-1
		err := boot(ctx, cfg, accel, !last)
		if err == nil || last || !errors.Is(err, errNoBoot) {
			return accel, err
		}
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "%v; falling back to -accel %s\n", err, list[i+1])
		}
	}
	panic("unreachable")
}

var errNoBoot = errors.New("guest did not reach user space")

func boot(ctx context.Context, cfg BootConfig, accel string, probe bool) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	memory, cpus := cfg.resources()
	args := []string{
		"-accel", accel,
		"-smp", strconv.Itoa(cpus),
		"-m", memory,
		"-nographic",
		"-no-reboot",
		// No NIC: the guest needs none, and the default one makes SeaBIOS run
		// the iPXE option ROM, which costs seconds.
		"-nic", "none",
		"-kernel", cfg.Kernel,
		"-initrd", cfg.Initrd,
		"-append", cfg.Append,
	}
	if accel == "kvm" {
		args = append(args, "-cpu", "host")
	}
	if cfg.Outbox != "" {
		args = append(args, "-drive", "file="+cfg.Outbox+",if=none,id=outbox,format=raw",
			"-device", "nvme,serial="+OutboxSerial+",drive=outbox")
	}
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	// QEMU gets its own process group so that a kill reaches nothing else.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start qemu: %w", err)
	}

	// In a probe (KVM) attempt, hold the console back until the guest has
	// proven it boots, so a failed attempt leaves no trace in the log.
	var held []string
	booted := make(chan struct{})
	var once sync.Once
	emit := func(line string) {
		if cfg.Console != nil {
			fmt.Fprintln(cfg.Console, line)
		}
		if cfg.OnLine != nil {
			cfg.OnLine(line)
		}
	}
	readDone := make(chan struct{})
	holding := probe
	go func() {
		defer close(readDone)
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				line = strings.TrimRight(line, "\r\n")
				seen := strings.Contains(line, BootMarker)
				if holding {
					if seen {
						once.Do(func() { close(booted) })
						for _, h := range held {
							emit(h)
						}
						held = nil
						holding = false
						emit(line)
					} else {
						held = append(held, line)
					}
				} else {
					emit(line)
				}
			}
			if err != nil {
				return
			}
		}
	}()

	if probe {
		select {
		case <-booted:
		case <-readDone:
		case <-time.After(kvmBootTimeout):
		}
		select {
		case <-booted:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-readDone
			_ = cmd.Wait()
			return fmt.Errorf("%w with -accel %s (%s)", errNoBoot, accel, strings.TrimSpace(stderr.String()))
		}
	}
	<-readDone
	err = cmd.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("guest timed out after %s", cfg.Timeout)
	}
	if err != nil {
		return fmt.Errorf("qemu: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
