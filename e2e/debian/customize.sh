#!/bin/bash
# Turns the tree mmdebstrap built into the klp e2e Debian guest. Run by
# image.sh as mmdebstrap's --customize-hook, with the tree as $1; it runs on
# the host, as root, and changes files in the tree only.
set -euo pipefail
root=$1

# The disk is /dev/vda, one ext4 file system, no swap.
printf '/dev/vda / ext4 defaults,errors=remount-ro 0 1\n' >"$root/etc/fstab"
echo klp-e2e >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tklp-e2e\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"

# The guest has no network but QEMU's user-mode one (restrict=on: nothing
# beyond the forwarded ports); systemd-networkd takes its DHCP lease.
mkdir -p "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/80-e2e.network" <<'EOT'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
EOT
chroot "$root" systemctl enable systemd-networkd.service
# Nothing waits for the network to be online: ssh only needs the address.
chroot "$root" systemctl disable systemd-networkd-wait-online.service 2>/dev/null || true

# No package sources: the guest never reaches a mirror. Tests add their own
# local repository.
: >"$root/etc/apt/sources.list"

# Timers that would take dpkg's lock or disturb timings during a test.
for t in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
	chroot "$root" systemctl mask "$t"
done

# Units of a boot that nothing here uses: modules loaded ahead for
# configfs, device mapper, DRM, EFI pstore, FUSE and loop devices, the
# mounts of hugepages, POSIX message queues, FUSE, configfs and binfmt_misc,
# and binfmt_misc's rules. Under TCG each costs one to two seconds of the
# guest's one CPU, at every one of the suite's eight boots (userspace took
# 25 s to reach SSH before, 12 s after). debugfs and tracefs stay: klp
# reads them.
for u in modprobe@configfs.service modprobe@dm_mod.service modprobe@drm.service \
	modprobe@efi_pstore.service modprobe@fuse.service modprobe@loop.service \
	dev-hugepages.mount dev-mqueue.mount sys-fs-fuse-connections.mount sys-kernel-config.mount \
	systemd-binfmt.service proc-sys-fs-binfmt_misc.automount; do
	chroot "$root" systemctl mask "$u"
done

# Generators with nothing to generate here (no encrypted, verity or
# integrity volumes, no GPT, no hibernation, no SysV script without a native
# unit, no rc.local, no systemd.* kernel arguments; no getty: the serial
# console is the harness's log, and root logs in over SSH). systemd runs
# each generator at boot and again at every daemon-reload, one after the
# other: under TCG they took 2 s of a reload's 4, and a .deb's maintainer
# scripts reload up to four times. A link to /dev/null in /etc disables a
# generator (systemd.generator(7)); the fstab generator stays.
mkdir -p "$root/etc/systemd/system-generators"
for g in cryptsetup debug getty gpt-auto hibernate-resume integritysetup rc-local run system-update sysv veritysetup; do
	ln -sf /dev/null "$root/etc/systemd/system-generators/systemd-$g-generator"
done

# root logs in with the key of the run, given on the kernel command line
# (klp_e2e.ssh_key=BASE64, the key's second field; ed25519 keys are short).
install -m 0755 /dev/stdin "$root/usr/local/sbin/klp-e2e-ssh-key" <<'EOT'
#!/bin/sh
# Installs root's authorized key from klp_e2e.ssh_key= on the kernel command line.
set -e
for arg in $(cat /proc/cmdline); do
	case $arg in
	klp_e2e.ssh_key=*) key=${arg#klp_e2e.ssh_key=} ;;
	esac
done
[ -n "$key" ] || exit 0
mkdir -p /root/.ssh
chmod 0700 /root/.ssh
echo "ssh-ed25519 $key klp-e2e" >/root/.ssh/authorized_keys
chmod 0600 /root/.ssh/authorized_keys
EOT
cat >"$root/etc/systemd/system/klp-e2e-ssh-key.service" <<'EOT'
[Unit]
Description=klp e2e: root's SSH key from the kernel command line
DefaultDependencies=no
After=local-fs.target
Before=ssh.service
ConditionKernelCommandLine=klp_e2e.ssh_key

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/klp-e2e-ssh-key

[Install]
WantedBy=multi-user.target
EOT
chroot "$root" systemctl enable klp-e2e-ssh-key.service

# An unprivileged user with password-less sudo, for the audit records of
# "who" (KLP_SUDO_USER).
chroot "$root" useradd --create-home --uid 1000 --shell /bin/bash klpuser
echo 'klpuser ALL=(ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/klpuser"
chmod 0440 "$root/etc/sudoers.d/klpuser"

# The journal is kept on disk, so that a boot can read the previous one's.
mkdir -p "$root/var/log/journal"
