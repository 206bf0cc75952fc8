// Package e2e is klp's real-kernel end-to-end suite: it boots Debian's 6.1
// and 6.12 cloud kernels in QEMU with an initramfs holding klp, busybox, the
// test modules of e2e/modules and the scenario runner of e2e/guest, and
// checks klp's output against what the kernel shows in /sys and /proc.
//
// The tests carry the build tag e2e and need root on a Debian 12 host:
//
//	go test -tags e2e -count=1 -v ./e2e/
//
// Plain `go test ./...` compiles nothing here. See e2e/README.md for the
// environment variables and docs/kernel-notes.md for what the suite found.
package e2e
