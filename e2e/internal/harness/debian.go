package harness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// DebianImage is a built Debian guest: one disk image holding a Debian 12
// system with the kernels of the suite, and those kernels' images and
// initrds to boot it with. It is shared, read-only: each [VM] boots a
// copy-on-write overlay of the disk.
type DebianImage struct {
	Dir     string   // the cache directory of this build
	Disk    string   // raw ext4 image (root=/dev/vda)
	Kernels []string // the releases it can boot
	// HostKey is the guest's SSH host key, "ssh-ed25519 AAAA...".
	HostKey string
	// BuildTime is how long the build took; 0 when it came from the cache.
	BuildTime time.Duration
}

// KernelImage is the vmlinuz of release k.
func (i *DebianImage) KernelImage(k string) string { return filepath.Join(i.Dir, "vmlinuz-"+k) }

// Initrd is the initrd that k's package made in the guest.
func (i *DebianImage) Initrd(k string) string { return filepath.Join(i.Dir, "initrd.img-"+k) }

// debianRecipe lists the files whose content decides the image: any edit
// makes a new image.
var debianRecipe = []string{"e2e/debian/image.sh", "e2e/debian/customize.sh"}

// DebianImage returns the Debian guest image for the suite's kernels,
// building it with e2e/debian/image.sh when the cache has none for this
// recipe (about 30 s to 5 minutes, depending on the mirror and the load).
// Builds are kept in <cache>/debian/<hash>, where the hash covers the
// recipe and the kernel list; a lock serialises concurrent builders.
func (e *Env) DebianImage(ctx context.Context, log io.Writer) (*DebianImage, error) {
	h := sha256.New()
	for _, f := range debianRecipe {
		data, err := os.ReadFile(filepath.Join(e.Repo, f))
		if err != nil {
			return nil, fmt.Errorf("debian image: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", f, len(data))
		h.Write(data)
	}
	fmt.Fprintf(h, "kernels %s\n", strings.Join(e.Kernels, " "))
	key := hex.EncodeToString(h.Sum(nil))[:12]
	base := filepath.Join(e.Cache, "debian")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, err
	}
	img := &DebianImage{Dir: filepath.Join(base, key), Kernels: e.Kernels}
	img.Disk = filepath.Join(img.Dir, "disk.img")

	lock, err := os.OpenFile(filepath.Join(base, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("debian image: lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	if _, err := os.Stat(filepath.Join(img.Dir, ".complete")); err != nil {
		fmt.Fprintf(log, "building the Debian guest image %s for %s (mmdebstrap; first run only)\n", key, strings.Join(e.Kernels, ", "))
		start := time.Now()
		tmp := img.Dir + ".build"
		os.RemoveAll(tmp)
		args := append([]string{filepath.Join(e.Repo, "e2e", "debian", "image.sh"), tmp}, e.Kernels...)
		cmd := exec.CommandContext(ctx, "bash", args...)
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = &out
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("debian image: e2e/debian/image.sh: %w\n%s", err, out.String())
		}
		if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
			return nil, err
		}
		os.RemoveAll(img.Dir)
		if err := os.Rename(tmp, img.Dir); err != nil {
			return nil, err
		}
		img.BuildTime = time.Since(start)
		fmt.Fprintf(log, "built the Debian guest image in %v: %s", img.BuildTime.Round(time.Second), out.String())
	}
	hk, err := os.ReadFile(filepath.Join(img.Dir, "ssh_host_ed25519_key.pub"))
	if err != nil {
		return nil, fmt.Errorf("debian image: %w", err)
	}
	f := strings.Fields(string(hk))
	if len(f) < 2 {
		return nil, fmt.Errorf("debian image: bad host key %q", hk)
	}
	img.HostKey = f[0] + " " + f[1]
	return img, nil
}
