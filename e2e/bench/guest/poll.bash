# kpatch's wait for a transition: a cat of patch $1's transition
# attribute once a second until it no longer reads 1.
while [[ $(cat "/sys/kernel/livepatch/$1/transition" 2>/dev/null) == 1 ]]; do
	sleep 1
done
