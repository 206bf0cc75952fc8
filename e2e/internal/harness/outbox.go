package harness

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
)

// The outbox is how the guest sends files to the host: a raw disk image
// that QEMU gives the guest as an NVMe drive (both kernels' NVMe driver is
// built in), on which the guest writes a tar archive, one entry per file,
// flushed as each is written. The host reads it once QEMU has exited. The
// console would carry a megabyte in about 40 seconds under TCG; the disk
// carries it at once.
const (
	// OutboxSize is the size of the image: room for every file a run
	// sends.
	OutboxSize = 64 << 20
	// OutboxSerial is the drive's serial number, which the guest checks
	// (/sys/block/<dev>/device/serial) before it writes.
	OutboxSerial = "klp-outbox"
)

// NewOutbox creates an empty outbox image at path.
func NewOutbox(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create outbox: %w", err)
	}
	if err := f.Truncate(OutboxSize); err != nil {
		f.Close()
		return fmt.Errorf("create outbox: %w", err)
	}
	return f.Close()
}

// ReadOutbox returns the files the guest wrote to the outbox image at path,
// by name. The archive ends where the guest stopped writing: the image's
// zeros read as tar's end-of-archive.
func ReadOutbox(path string) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return files, fmt.Errorf("read outbox: %w", err)
		}
		data, err := io.ReadAll(io.LimitReader(tr, OutboxSize))
		if err != nil {
			return files, fmt.Errorf("read outbox: %s: %w", hdr.Name, err)
		}
		files[hdr.Name] = data
	}
}

// Command is one command the guest ran, as it sends it to the host (the
// klp-snapshot scenario): the host runs the same against the snapshot.
type Command struct {
	Prog   string   `json:"prog"` // klp or kgr
	Args   []string `json:"args"`
	Code   int      `json:"code"`
	Stdout string   `json:"stdout"`
	Stderr string   `json:"stderr"`
}

// notCaptured is what klp reads at its own moment or only on the running
// kernel, left out of the comparison: what a stall report reads from the
// kernel log and debugfs (the kernel's signal every 15 s can land between
// a live run and a capture; a snapshot has no dynamic debug control), and
// the BPF programs, which bpf(2) lists on the running kernel only.
var notCaptured = []*regexp.Regexp{
	regexp.MustCompile(`(?m)^(The kernel has signalled the blocking tasks|The kernel does not log why|The kernel log could not be read|\s*"kernel_(signalled|reasons|log_error|reason)":).*\n`),
	regexp.MustCompile(` \(BPF programs not listed: [^)]*\)`),
}

// scannedCount is the task count of klp's blocking documents.
var scannedCount = regexp.MustCompile(`"tasks_scanned": ([0-9]+)`)

// maxKlpThreads bounds the threads of one klp process.
const maxKlpThreads = 16

// SameOutput reports whether klp printed the same live (want) and from a
// snapshot (got). One number may differ: tasks_scanned counts every task,
// the klp process reading them included: live, the klp that answers; in a
// snapshot, the klp that took it, whose threads the Go runtime may have
// made more or fewer. It may differ by a klp process's threads at most.
func SameOutput(want, got string) bool {
	for _, re := range notCaptured {
		want, got = re.ReplaceAllString(want, ""), re.ReplaceAllString(got, "")
	}
	if want == got {
		return true
	}
	wn, gn := scannedCount.FindAllStringSubmatch(want, -1), scannedCount.FindAllStringSubmatch(got, -1)
	if len(wn) != len(gn) || len(wn) == 0 {
		return false
	}
	for i := range wn {
		a, _ := strconv.Atoi(wn[i][1])
		b, _ := strconv.Atoi(gn[i][1])
		if a-b > maxKlpThreads || b-a > maxKlpThreads {
			return false
		}
	}
	return scannedCount.ReplaceAllString(want, `"tasks_scanned": N`) == scannedCount.ReplaceAllString(got, `"tasks_scanned": N`)
}
