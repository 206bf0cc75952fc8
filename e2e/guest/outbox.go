package main

import (
	"archive/tar"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/klp-project/klp/e2e/internal/harness"
)

// The outbox: an NVMe drive the host reads once the guest has powered off
// (harness.ReadOutbox). sendFile writes each file as one tar entry and
// flushes it to the drive, so that what was sent survives a later crash.
var outbox struct {
	sync.Mutex
	f   *os.File
	tw  *tar.Writer
	err error
}

// outboxDevice finds the outbox drive by its serial number.
func outboxDevice() (string, error) {
	blocks, _ := filepath.Glob("/sys/block/nvme*")
	for _, b := range blocks {
		serial, err := os.ReadFile(filepath.Join(b, "device", "serial"))
		if err == nil && strings.TrimSpace(string(serial)) == harness.OutboxSerial {
			return "/dev/" + filepath.Base(b), nil
		}
	}
	return "", errors.New("no outbox drive (an NVMe drive with serial " + harness.OutboxSerial + ")")
}

// sendFile sends a file to the host.
func sendFile(name string, data []byte) error {
	outbox.Lock()
	defer outbox.Unlock()
	if outbox.f == nil && outbox.err == nil {
		dev, err := outboxDevice()
		if err == nil {
			outbox.f, err = os.OpenFile(dev, os.O_WRONLY, 0)
		}
		outbox.err = err
		if err == nil {
			outbox.tw = tar.NewWriter(outbox.f)
		}
	}
	if outbox.err != nil {
		return outbox.err
	}
	err := outbox.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
	if err == nil {
		_, err = outbox.tw.Write(data)
	}
	if err == nil {
		err = outbox.tw.Flush()
	}
	if err == nil {
		err = outbox.f.Sync()
	}
	return err
}
