#!/bin/bash
# Prepares a Debian 12 host for the real-kernel end-to-end suite (e2e/).
#
# - installs qemu-system-x86, busybox-static, cpio, make, gcc, and xz-utils
#   and zstd (to compress a test module as kbuild does); for the Debian
#   guests (e2e/debian), mmdebstrap, qemu-utils (qemu-img), e2fsprogs
#   (mkfs.ext4 -d) and openssh-client;
# - resolves the two kernels under test (6.1 and 6.12 cloud flavours);
# - installs their linux-headers packages, because an out-of-tree module build
#   needs the installed -common and kbuild packages, not just the extracted tree;
# - downloads the kernel images with `apt-get download` and extracts them with
#   `dpkg-deb -x` into the cache, so the host kernel is never touched.
#
# Idempotent: when everything is cached and installed it does no network work.
# It prints the resolved kernel release strings on stdout, one per line;
# everything else goes to stderr.
#
# Environment:
#   KLP_E2E_CACHE    cache directory (default /var/cache/klp-e2e)
#   KLP_E2E_KERNELS  space-separated kernel releases to use, e.g.
#                    "6.1.0-56-cloud-amd64 6.12.117+deb12-cloud-amd64";
#                    overrides e2e/kernels.pin and the cached resolution
#   KLP_E2E_REFRESH  if set to 1, re-resolve the newest kernels from the
#                    package lists instead of reusing the cached choice
set -euo pipefail

cache=${KLP_E2E_CACHE:-/var/cache/klp-e2e}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
apt_get=(apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
updated=0

log() { echo "e2e-setup: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and writes $cache)"
mkdir -p "$cache/kernels"

# apt_update runs `apt-get update` at most once per invocation. It is only
# called when the package lists are missing or a download from them failed
# (a stale list names files the mirror no longer has).
apt_update() {
	if [ "$updated" = 0 ]; then
		log "apt-get update"
		"${apt_get[@]}" -q update >&2
		updated=1
	fi
}

lists_present() {
	compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

# newest prints the newest kernel release whose unsigned cloud image matches
# the regular expression $1 (release part only) and whose headers package has
# an installation candidate.
newest() {
	local re=$1 k
	for k in $(apt-cache search --names-only "^linux-image-${re}-unsigned\$" |
		awk '{print $1}' | sed -e 's/^linux-image-//' -e 's/-unsigned$//' | sort -rV); do
		# Not `| grep -q`: with pipefail, grep exiting early fails the pipe.
		if [[ $(apt-cache policy "linux-headers-$k" 2>/dev/null) == *"Candidate: "[0-9]* ]]; then
			echo "$k"
			return 0
		fi
	done
	return 1
}

resolve_kernels() {
	if [ -n "${KLP_E2E_KERNELS:-}" ]; then
		echo "$KLP_E2E_KERNELS"
		return
	fi
	if [ -f "$here/kernels.pin" ]; then
		grep -v '^[[:space:]]*#' "$here/kernels.pin" | tr -s '[:space:]' ' '
		return
	fi
	if [ "${KLP_E2E_REFRESH:-0}" != 1 ] && [ -s "$cache/kernels.resolved" ]; then
		cat "$cache/kernels.resolved"
		return
	fi
	lists_present || apt_update
	local k61 k612
	if ! k61=$(newest '6\.1\.0-[0-9]+-cloud-amd64') || ! k612=$(newest '6\.12\.[0-9]+\+deb12-cloud-amd64'); then
		apt_update
		k61=$(newest '6\.1\.0-[0-9]+-cloud-amd64') || die "no linux-image-6.1.0-*-cloud-amd64-unsigned in the package lists"
		k612=$(newest '6\.12\.[0-9]+\+deb12-cloud-amd64') || die "no linux-image-6.12.*+deb12-cloud-amd64-unsigned in the package lists"
	fi
	echo "$k61 $k612" >"$cache/kernels.resolved"
	log "resolved kernels: $k61 $k612 (saved in $cache/kernels.resolved; KLP_E2E_REFRESH=1 re-resolves)"
	echo "$k61 $k612"
}

installed() {
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

# image_stub makes sure linux-headers-<k> can be installed without installing
# the kernel image on the host. The 6.12 backport's headers package depends on
# "linux-image-<k> (= V) | linux-image-<k>-unsigned (= V)", which would make
# apt install (and boot-configure) a host kernel. A local empty package with a
# versioned Provides satisfies that dependency instead. It prints the path of
# the stub .deb to install, or nothing when the headers need no image.
image_stub() {
	local k=$1 show ver name dir
	show=$(apt-cache show "linux-headers-$k" 2>/dev/null) || return 0
	[[ $show == *"Depends:"*"linux-image-$k"* ]] || return 0
	ver=$(apt-cache policy "linux-headers-$k" | sed -n 's/^ *Candidate: //p')
	name=klp-e2e-image-stub-$(echo "$k" | tr '+_' '--')
	if [ "$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$name" 2>/dev/null)" = "installed $ver" ]; then
		return 0
	fi
	dir=$cache/stub/$name
	rm -rf "$dir"
	mkdir -p "$dir/DEBIAN"
	cat >"$dir/DEBIAN/control" <<EOT
Package: $name
Version: $ver
Architecture: all
Maintainer: klp e2e suite <root@localhost>
Priority: optional
Section: kernel
Provides: linux-image-$k-unsigned (= $ver)
Description: stand-in for linux-image-$k-unsigned (klp e2e suite)
 Lets linux-headers-$k be installed for out-of-tree module builds
 without installing the kernel image on the host. The image itself is
 only extracted into the klp e2e cache and booted in QEMU.
EOT
	dpkg-deb --root-owner-group -b "$dir" "$cache/stub/$name.deb" >&2
	echo "$cache/stub/$name.deb"
}

install_packages() {
	local missing=() p
	for p in "$@"; do
		# Local .deb files (the stubs) are always passed on.
		if [[ $p == /* ]] || ! installed "$p"; then
			missing+=("$p")
		fi
	done
	[ ${#missing[@]} = 0 ] && return
	log "installing ${missing[*]}"
	lists_present || apt_update
	if ! DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" -q -y --no-install-recommends install "${missing[@]}" >&2; then
		apt_update
		DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" -q -y --no-install-recommends install "${missing[@]}" >&2
	fi
}

# fetch_kernel extracts /boot/vmlinuz-<k> and /boot/config-<k> of the image
# package into $cache/kernels/<k>/ without installing the package.
fetch_kernel() {
	local k=$1 dir=$cache/kernels/$1 tmp deb
	[ -s "$dir/vmlinuz" ] && [ -s "$dir/config" ] && return
	log "downloading linux-image-$k-unsigned"
	tmp=$(mktemp -d "$cache/tmp.XXXXXX")
	# apt-get download drops privileges to _apt and warns when that user
	# cannot write the target directory.
	chown _apt "$tmp" 2>/dev/null || true
	if ! (cd "$tmp" && "${apt_get[@]}" -q download "linux-image-$k-unsigned" >&2); then
		apt_update
		(cd "$tmp" && "${apt_get[@]}" -q download "linux-image-$k-unsigned" >&2)
	fi
	deb=$(ls "$tmp"/linux-image-*.deb)
	dpkg-deb -x "$deb" "$tmp/x"
	mkdir -p "$dir"
	cp "$tmp/x/boot/vmlinuz-$k" "$dir/vmlinuz.new"
	cp "$tmp/x/boot/config-$k" "$dir/config"
	mv "$dir/vmlinuz.new" "$dir/vmlinuz"
	rm -rf "$tmp"
}

read -r -a kernels <<<"$(resolve_kernels)"
[ ${#kernels[@]} -gt 0 ] || die "no kernels to test"

pkgs=(qemu-system-x86 busybox-static cpio make gcc xz-utils zstd mmdebstrap qemu-utils openssh-client e2fsprogs)
stubs=()
for k in "${kernels[@]}"; do
	installed "linux-headers-$k" && continue
	lists_present || apt_update
	apt-cache show "linux-headers-$k" >/dev/null 2>&1 || apt_update
	pkgs+=("linux-headers-$k")
	stub=$(image_stub "$k")
	[ -z "$stub" ] || stubs+=("$stub")
done
# The stubs go in the same apt transaction as the headers, so that apt never
# considers pulling in the real image.
install_packages "${stubs[@]}" "${pkgs[@]}"

for k in "${kernels[@]}"; do
	[ -d "/usr/src/linux-headers-$k" ] || die "/usr/src/linux-headers-$k missing after installing linux-headers-$k"
	fetch_kernel "$k"
done

printf '%s\n' "${kernels[@]}"
