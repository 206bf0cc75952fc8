package kernel

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// runningKernelFS says whether this machine has the kernel's sysfs at /sys
// and procfs at /proc, read from /proc/self/mounts rather than through the
// code under test: where they are, the tests of the running kernel must
// pass instead of skipping, so that a bug in telling a mount apart cannot
// hide as a skip.
func runningKernelFS(t *testing.T) bool {
	t.Helper()
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return false
	}
	defer f.Close()
	var sys, proc bool
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		switch {
		case fields[1] == "/sys" && fields[2] == "sysfs":
			sys = true
		case fields[1] == "/proc" && fields[2] == "proc":
			proc = true
		}
	}
	return sys && proc
}

// openRunning opens the running kernel's handle, skipping where this
// machine has no sysfs and procfs mounted (runningKernelFS) and failing
// where it has them but Open does not recognise them.
func openRunning(t *testing.T) *Handle {
	t.Helper()
	if !runningKernelFS(t) {
		t.Skip("no sysfs at /sys and procfs at /proc here")
	}
	h, err := Open(Roots{})
	if err != nil || !h.KernelFS() {
		t.Fatalf("Open of the running kernel: %v", err)
	}
	return h
}

// readableKmsg says whether this process can open /dev/kmsg for reading
// (root, or CAP_SYSLOG), checked without the code under test.
func readableKmsg() bool {
	f, err := os.Open("/dev/kmsg")
	if err != nil {
		return false
	}
	f.Close()
	return true
}
