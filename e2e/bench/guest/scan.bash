# What shell tools do: one loop over every task of /proc that reads each
# patch_state with a builtin (no fork), printing the tasks that block the
# transition of patch $1.
read -r target < "/sys/kernel/livepatch/$1/enabled"
for t in /proc/[0-9]*/task/[0-9]*; do
	read -r s 2>/dev/null < "$t/patch_state" || continue
	if [[ $s != -1 && $s != "$target" ]]; then
		echo "${t##*/}"
	fi
done
exit 0
