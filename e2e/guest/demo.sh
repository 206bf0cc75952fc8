#!/bin/sh
# The narrated klp demo, run by /init in the guest when the kernel command
# line says klp_e2e_mode=demo (see e2e/demo). Every command is echoed with a
# "$ " prompt before its output so the console reads like a terminal session.
# klp does the live patching; the only other commands load the ordinary
# module that plays the application being patched and steer its thread.
M=/e2e/modules
P=/sys/module/klp_e2e_target/parameters

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

say "klp demo on Linux $(uname -r)"
note "A freshly booted kernel: live patching is built in, and nothing is patched yet."
run klp status
run klp -v patches

say "1. Before loading: what is in the patch, and will this kernel take it?"
note "klp_e2e_cmdline replaces the kernel function cmdline_proc_show(), so" \
	"/proc/cmdline shows a marker while the patch is in effect. klp info reads" \
	"the module file alone:"
run klp info $M/klp_e2e_cmdline.ko
note "klp preflight asks the running kernel (unsigned: a warning, not a failure):"
run klp preflight $M/klp_e2e_cmdline.ko

say "2. Load it"
run cat /proc/cmdline
note "klp load loads the module and waits until every task runs the new code:"
run klp load $M/klp_e2e_cmdline.ko
run cat /proc/cmdline
run klp -v patches
run klp list

say "3. A transition that stalls"
note "klp_e2e_target is an ordinary module (the code to patch). Its kernel thread" \
	"'klp_e2e_busy' can be told to sleep inside klp_e2e_target_work(), the function" \
	"that the patch klp_e2e_target_patch replaces; a thread asleep in it cannot be" \
	"switched safely."
run insmod $M/klp_e2e_target.ko
put 1 $P/block_kthread
# The kthread enters the function on its next round (within 20 ms).
while [ "$(cat $P/kthread_waiting)" != 1 ]; do
	sleep 0.01
done
note "By default klp load rolls a stalled patch back; here it leaves it running:"
run klp load --timeout 3s --on-stall=leave $M/klp_e2e_target_patch.ko
run klp status
note "-vv shows each blocking thread with its kernel stack:"
run klp -vv blocking
note "--why marks the frame that holds it (=>) and says what can be done:"
run klp blocking --why
note "Meanwhile the kernel takes no other patch; klp says so before trying:"
run klp load $M/klp_e2e_replace.ko

say "4. Unblock it"
note "The kernel retries about once a second and switches the thread once it" \
	"leaves the function."
put 0 $P/block_kthread
run klp wait klp_e2e_target_patch
run klp status
run klp patches

say "5. Replace everything with a cumulative patch"
note "klp_e2e_replace sets .replace = true: when its transition completes, the" \
	"patches loaded before it are retired, their modules left loaded."
run klp load $M/klp_e2e_replace.ko
run cat /proc/cmdline
run klp list
run klp unload klp_e2e_cmdline
run klp unload klp_e2e_target_patch

say "6. Unload"
run klp unload --all
run klp status
run klp list
run rmmod klp_e2e_target
run cat /proc/cmdline

say "What the kernel logged meanwhile (dmesg)"
dmesg | grep -E 'livepatch|klp_e2e_replace:' | sed 's/^/   /'
say "demo done"
