# kpatch's approach to finding the stalled tasks of patch $1: for every
# task, the patch's enabled attribute and the task's patch_state are each
# read by a cat of their own (two forks per task).
for task in /proc/[0-9]*/task/[0-9]*; do
	tid=${task##*/}
	enabled=$(cat "/sys/kernel/livepatch/$1/enabled" 2>/dev/null)
	state=$(cat "/proc/$tid/patch_state" 2>/dev/null)
	[[ -z $enabled || -z $state || $state == -1 ]] && continue
	if [[ $enabled != "$state" ]]; then
		echo "$tid"
	fi
done
exit 0
