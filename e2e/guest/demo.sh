#!/bin/sh
# The narrated klp demo, run by /init in the guest when the kernel command
# line says klp_e2e_mode=demo (see e2e/demo). Every command is echoed with a
# "$ " prompt before its output so the console reads like a terminal session.
M=/e2e/modules
LP=/sys/kernel/livepatch

# The host passes klp_e2e_color=1 when its output is a terminal.
if [ "$klp_e2e_color" = 1 ]; then
	B='\033[1m' G='\033[32m' N='\033[0m'
else
	B= G= N=
fi
say() {
	printf "\n${B}== %s${N}\n" "$*"
}
note() {
	printf '   %s\n' "$@"
}
prompt() {
	printf "${G}\$ %s${N}\n" "$*"
}
run() {
	prompt "$*"
	"$@"
	rc=$?
	[ $rc = 0 ] || printf '(exit status %d)\n' $rc
	return 0
}
# put VALUE FILE shows and runs "echo VALUE > FILE".
put() {
	prompt "echo $1 > $2"
	echo "$1" >"$2" || printf '(failed)\n'
}
# uptime_cs prints the uptime in hundredths of a second.
uptime_cs() {
	read -r up _ </proc/uptime
	echo "${up%.*}${up#*.}"
}
# wait_ready polls klp status until it says ready, for at most $1 seconds,
# printing the status with the elapsed time whenever it changes.
wait_ready() {
	t0=$(uptime_cs)
	last=
	while :; do
		s=$(klp status)
		dt=$(($(uptime_cs) - t0))
		[ "$s" = "$last" ] || printf '   [+%d.%02ds] klp status: %s\n' $((dt / 100)) $((dt % 100)) "$s"
		last=$s
		[ "$s" != ready ] || return 0
		[ $dt -lt $(($1 * 100)) ] || return 1
		sleep 0.1
	done
}

say "klp demo on Linux $(uname -r)"
note "A freshly booted kernel: livepatch is built in, and nothing is patched yet."
run klp status
run klp -v patches
run klp -v blocking

say "1. Load a live patch"
note "klp_e2e_cmdline replaces the kernel function cmdline_proc_show(), so" \
	"/proc/cmdline shows a marker while the patch is in effect."
run cat /proc/cmdline
run insmod $M/klp_e2e_cmdline.ko
note "Watching the transition (every task must switch to the new code):"
wait_ready 10
run klp -v patches
run cat /proc/cmdline
run ls $LP/klp_e2e_cmdline/vmlinux

say "2. A transition that stalls"
note "klp_e2e_target is a module whose kernel thread 'klp_e2e_busy' can be told to" \
	"sleep inside its function klp_e2e_target_work(). klp_e2e_target_patch replaces" \
	"that function, and a thread asleep in it cannot be switched safely."
run insmod $M/klp_e2e_target.ko
put 1 /sys/module/klp_e2e_target/parameters/block_kthread
# The kthread enters the function on its next round (within 20 ms).
while [ "$(cat /sys/module/klp_e2e_target/parameters/kthread_waiting)" != 1 ]; do
	sleep 0.01
done
run insmod $M/klp_e2e_target_patch.ko
sleep 2
note "Two seconds later the transition is still open:"
run klp status
run klp check
run klp blocking
note "-v names the thread, -vv shows where it sleeps:"
run klp -vv blocking
note "The stack shows klp_e2e_target_work, the function being replaced: the kernel" \
	"retries every second and switches the thread once it leaves that function."
note "Meanwhile other patches are refused with EBUSY:"
run insmod $M/klp_e2e_replace.ko

say "3. Unblock it"
put 0 /sys/module/klp_e2e_target/parameters/block_kthread
wait_ready 5
run klp -v blocking
run klp patches

say "4. Replace everything with a cumulative patch"
note "klp_e2e_replace sets .replace = true: when its transition completes, the" \
	"patches loaded before it are retired."
run insmod $M/klp_e2e_replace.ko
wait_ready 5
sleep 0.2
run klp -v patches
run cat /proc/cmdline
note "The retired modules are still loaded, with no references, until removed:"
run grep klp_e2e_ /proc/modules
run rmmod klp_e2e_cmdline klp_e2e_target_patch

say "5. Unload"
put 0 $LP/klp_e2e_replace/enabled
wait_ready 5
i=0
while [ -d $LP/klp_e2e_replace ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
run rmmod klp_e2e_replace klp_e2e_target
run klp status
run klp patches
run cat /proc/cmdline
say "What the kernel logged meanwhile (dmesg)"
dmesg | grep -E 'livepatch|klp_e2e_replace:' | sed 's/^/   /'
say "demo done"
