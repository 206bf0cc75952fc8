#!/bin/busybox sh
# PID 1 of the klp e2e guest (packed as /init by e2e/internal/harness).
# It mounts the pseudo file systems, runs the scenarios (or the demo when the
# kernel command line says klp_e2e_mode=demo, the benchmark of e2e/bench
# with klp_e2e_mode=bench) and powers off; the host reads
# the results from the serial console.
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
# /run as on any systemd-era system: klp keeps its lock file there.
mount -t tmpfs -o mode=0755 tmpfs /run
# debugfs and tracefs: klp preflight reads the ftrace and kprobe state there
# (and they are handy when debugging a scenario by hand).
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
# As systemd mounts it: klp preflight reads the lockdown state there.
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
exec </dev/console >/dev/console 2>&1
hostname klp-e2e
echo "KLPTEST-BOOT $(uname -r)"
case "$klp_e2e_mode" in
demo) sh /e2e/demo.sh ;;
bench) /bin/klp-bench ;;
*) /bin/klp-guest ;;
esac
echo "KLPTEST-EXIT $?"
poweroff -f
