#!/bin/bash
# Builds the Debian guest of the klp e2e suite: a Debian 12 system made
# from Debian's own packages with mmdebstrap, with the kernel images of the
# suite (from bookworm-security, where both unsigned images are), systemd,
# sshd, python3 (for Ansible) and apt, turned into an ext4 disk image.
#
#   image.sh OUTDIR KERNEL...
#
# OUTDIR receives
#   disk.img                 raw ext4 image of the whole system (root=/dev/vda)
#   vmlinuz-<k>, initrd.img-<k>  each kernel and the initrd its package's
#                            hooks made, to boot with QEMU -kernel/-initrd
#   ssh_host_ed25519_key.pub the guest's SSH host key (for known_hosts)
#   packages                 the installed packages and versions
#   build.log                mmdebstrap's output, and timings
# The harness (e2e/internal/harness/debian.go) caches OUTDIR under a hash of
# this script, customize.sh and the kernel list, so it is built once.
#
# Environment:
#   KLP_E2E_MIRROR           Debian mirror (default http://deb.debian.org/debian)
#   KLP_E2E_SECURITY_MIRROR  security mirror (default http://deb.debian.org/debian-security)
#   KLP_E2E_DISK_SIZE        disk image size (default 4G; sparse)
set -euo pipefail

[ $# -ge 2 ] || {
	echo "usage: $0 OUTDIR KERNEL..." >&2
	exit 2
}
out=$1
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mirror=${KLP_E2E_MIRROR:-http://deb.debian.org/debian}
security=${KLP_E2E_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
size=${KLP_E2E_DISK_SIZE:-4G}

# What a small real server has, and what the scenarios use: systemd as init
# with dbus, sshd, python3 (Ansible), sudo (the audit's "who"), apt-utils
# (apt-ftparchive builds a local repository), kmod and iproute2.
pkgs=systemd,systemd-sysv,dbus,udev,kmod,procps,iproute2,openssh-server,python3,sudo,apt-utils,initramfs-tools
for k in "$@"; do
	pkgs+=,linux-image-$k-unsigned
done

mkdir -p "$out"
tree=$out/tree
rm -rf "$tree"
log=$out/build.log
: >"$log"
t0=$(date +%s)
if ! mmdebstrap --variant=apt --include="$pkgs" \
	--customize-hook="\"$here/customize.sh\" \"\$1\"" \
	bookworm "$tree" \
	"deb $mirror bookworm main" \
	"deb $security bookworm-security main" >>"$log" 2>&1; then
	tail -30 "$log" >&2
	echo "image.sh: mmdebstrap failed (full log: $log); if a kernel package is missing, KLP_E2E_REFRESH=1 resolves the kernels again" >&2
	exit 1
fi
t1=$(date +%s)
for k in "$@"; do
	cp "$tree/boot/vmlinuz-$k" "$out/vmlinuz-$k"
	cp "$tree/boot/initrd.img-$k" "$out/initrd.img-$k"
done
cp "$tree/etc/ssh/ssh_host_ed25519_key.pub" "$out/ssh_host_ed25519_key.pub"
chroot "$tree" dpkg-query -W -f '${Package} ${Version}\n' >"$out/packages"
rm -f "$out/disk.img"
mkfs.ext4 -q -F -L klp-e2e -d "$tree" "$out/disk.img" "$size" >>"$log" 2>&1
t2=$(date +%s)
rm -rf "$tree"
echo "image.sh: mmdebstrap $((t1 - t0)) s, mkfs.ext4 $((t2 - t1)) s" | tee -a "$log" >&2
