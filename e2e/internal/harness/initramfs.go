package harness

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Guest paths, shared with e2e/guest.
const (
	GuestModuleDir = "/e2e/modules" // the .ko files
	// GuestForeignDir holds, per other kernel release, that kernel's build
	// of klp_e2e_cmdline.ko (/e2e/foreign/<release>/klp_e2e_cmdline.ko): a
	// module with a vermagic that this guest's kernel refuses.
	GuestForeignDir = "/e2e/foreign"
	// GuestCompressedDir holds klp_e2e_cmdline.ko compressed the way kbuild
	// compresses modules (.ko.xz, .ko.gz, .ko.zst), to load through klp's
	// finit_module(MODULE_INIT_COMPRESSED_FILE) or init_module paths.
	GuestCompressedDir = "/e2e/compressed"
	GuestUser          = "klpuser" // unprivileged account in /etc/passwd
	GuestUID           = 1000
)

// Guest describes one guest's initramfs besides the binaries.
type Guest struct {
	// Kernel is the release the guest boots. Its config goes to
	// /boot/config-<release>, where klp preflight looks for it as on an
	// installed system (Debian has no /proc/config.gz).
	Kernel string
	// ModDir holds the test modules built for Kernel.
	ModDir string
	// Foreign maps other releases to their module builds; their
	// klp_e2e_cmdline.ko goes under GuestForeignDir.
	Foreign map[string]string
	// Files are more files to pack (the benchmark's programs), copied
	// after everything else.
	Files []File
}

// File is a host file packed into the initramfs at Path (relative to the
// guest's root, e.g. "bin/cscan"), with Mode.
type File struct {
	From string
	Path string
	Mode os.FileMode
}

// Initramfs assembles the guest's initramfs in workDir and returns the path
// of the gzip-compressed newc archive. It holds busybox (the whole userland;
// the init script installs its applet links), klp with kgr as a symlink to it
// (kgr is chosen by argv[0]), the guest runner, the init and demo scripts,
// the test modules, the kernel's config and the other kernels' build of one
// module.
func (e *Env) Initramfs(ctx context.Context, workDir string, g Guest, bins Binaries) (string, error) {
	root := filepath.Join(workDir, "root")
	if err := os.RemoveAll(root); err != nil {
		return "", err
	}
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "run", "var/lib", "root", "etc", "boot", "e2e/modules", "home/" + GuestUser} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return "", err
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		return "", err
	}
	if err := os.Chown(filepath.Join(root, "home", GuestUser), GuestUID, GuestUID); err != nil {
		return "", err
	}
	guestSrc := filepath.Join(e.Repo, "e2e", "guest")
	copies := []struct {
		from, to string
		mode     os.FileMode
	}{
		{"/bin/busybox", "bin/busybox", 0o755},
		{bins.Klp, "bin/klp", 0o755},
		{bins.Exporter, "bin/klp-exporter", 0o755},
		{bins.Guest, "bin/klp-guest", 0o755},
		{filepath.Join(guestSrc, "init.sh"), "init", 0o755},
		{filepath.Join(guestSrc, "demo.sh"), "e2e/demo.sh", 0o755},
		{e.KernelConfig(g.Kernel), "boot/config-" + g.Kernel, 0o644},
	}
	for rel, dir := range g.Foreign {
		to := filepath.Join(strings.TrimPrefix(GuestForeignDir, "/"), rel)
		if err := os.MkdirAll(filepath.Join(root, to), 0o755); err != nil {
			return "", err
		}
		copies = append(copies, struct {
			from, to string
			mode     os.FileMode
		}{filepath.Join(dir, "klp_e2e_cmdline.ko"), filepath.Join(to, "klp_e2e_cmdline.ko"), 0o644})
	}
	kos, err := filepath.Glob(filepath.Join(g.ModDir, "*.ko"))
	if err != nil {
		return "", err
	}
	for _, ko := range kos {
		copies = append(copies, struct {
			from, to string
			mode     os.FileMode
		}{ko, filepath.Join("e2e/modules", filepath.Base(ko)), 0o644})
	}
	for _, f := range g.Files {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(f.Path)), 0o755); err != nil {
			return "", err
		}
		copies = append(copies, struct {
			from, to string
			mode     os.FileMode
		}{f.From, f.Path, f.Mode})
	}
	for _, c := range copies {
		data, err := os.ReadFile(c.from)
		if err != nil {
			return "", fmt.Errorf("initramfs: %w", err)
		}
		if err := os.WriteFile(filepath.Join(root, c.to), data, c.mode); err != nil {
			return "", err
		}
	}
	if err := compressModule(ctx, filepath.Join(g.ModDir, "klp_e2e_cmdline.ko"), filepath.Join(root, strings.TrimPrefix(GuestCompressedDir, "/"))); err != nil {
		return "", err
	}
	if err := os.Symlink("klp", filepath.Join(root, "bin", "kgr")); err != nil {
		return "", err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\n%s:x:%d:%d:klp e2e user:/home/%s:/bin/sh\n",
		GuestUser, GuestUID, GuestUID, GuestUser)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", GuestUser, GuestUID)
	for name, data := range map[string]string{"etc/passwd": passwd, "etc/group": group} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			return "", err
		}
	}
	out := filepath.Join(workDir, "initramfs.cpio.gz")
	return out, packCpio(ctx, root, out)
}

// compressModule writes ko compressed with xz, gzip and zstd into dir, with
// the options kbuild uses (scripts/Makefile.modinst): xz with CRC32 checks
// and a 1 MiB dictionary, which the kernel's own decompressor requires.
func compressModule(ctx context.Context, ko, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	base := filepath.Join(dir, filepath.Base(ko))
	for _, c := range []struct {
		ext  string
		args []string
	}{
		{".xz", []string{"xz", "--check=crc32", "--lzma2=dict=1MiB", "-c"}},
		{".gz", []string{"gzip", "-9", "-n", "-c"}},
		{".zst", []string{"zstd", "-T0", "-q", "-c"}},
	} {
		out, err := os.Create(base + c.ext)
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, c.args[0], append(c.args[1:], ko)...)
		cmd.Stdout = out
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err = cmd.Run()
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("initramfs: compress %s with %s: %w: %s", ko, c.args[0], err, stderr.String())
		}
	}
	return nil
}

// packCpio writes the tree at root as a gzip-compressed newc archive.
func packCpio(ctx context.Context, root, out string) error {
	var list bytes.Buffer
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		list.WriteString(rel + "\x00")
		return nil
	})
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, "cpio", "--null", "-o", "-H", "newc", "--quiet")
	cmd.Dir = root
	cmd.Stdin = &list
	cmd.Stdout = zw
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cpio: %w: %s", err, stderr.String())
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}
