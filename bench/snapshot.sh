#!/usr/bin/env bash
# Measure klp snapshot on the real /proc of this machine, filled with
# BENCH_THREADS sleeping threads (default 100000) in BENCH_PROCS processes
# (default 1; 1000 gives many small ones): the capture's time and memory, the
# archive's size, and the time klp --snapshot takes to read it back.
#
# Needs root (pid_max is raised for the threads, and restored).
set -euo pipefail
cd "$(dirname "$0")/.."

threads=${BENCH_THREADS:-100000}
procs=${BENCH_PROCS:-1}
runs=${BENCH_RUNS:-5}
work=$(mktemp -d)
spawn_pid=
cleanup() {
	[ -n "$spawn_pid" ] && kill "$spawn_pid" 2>/dev/null || true
	[ -n "${old_pid_max:-}" ] && echo "$old_pid_max" >/proc/sys/kernel/pid_max 2>/dev/null || true
	[ -n "${old_map_count:-}" ] && echo "$old_map_count" >/proc/sys/vm/max_map_count 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

gcc -O2 -pthread -o "$work/spawn" bench/c/spawn.c
CGO_ENABLED=0 go build -o "$work/klp" ./cmd/klp

old_pid_max=$(cat /proc/sys/kernel/pid_max)
if [ "$old_pid_max" -lt $((threads + 20000)) ]; then
	echo $((threads + 20000)) >/proc/sys/kernel/pid_max
else
	old_pid_max=
fi

# Each thread's stack is two mappings (the stack and its guard page).
old_map_count=$(cat /proc/sys/vm/max_map_count)
if [ "$old_map_count" -lt $((threads * 2 + 20000)) ]; then
	echo $((threads * 2 + 20000)) >/proc/sys/vm/max_map_count
else
	old_map_count=
fi

coproc SPAWN { exec "$work/spawn" "$threads" "$procs"; }
spawn_pid=$SPAWN_PID
read -r line <&"${SPAWN[0]}"
[ "$line" = ready ] || { echo "snapshot.sh: spawn failed" >&2; exit 1; }

echo "threads on this machine: $(ls /proc/*/task 2>/dev/null | grep -c '^[0-9]')"
echo "CPUs: $(nproc); kernel $(uname -r); livepatch: $([ -d /sys/kernel/livepatch ] && echo yes || echo no)"
for i in $(seq "$runs"); do
	/usr/bin/time -f "capture: %e s wall, %U s user, %S s sys, %M KiB max RSS" \
		"$work/klp" snapshot -o "$work/s.tar.zst" >/dev/null
done
echo "archive: $(stat -c %s "$work/s.tar.zst") bytes"
"$work/klp" snapshot --show "$work/s.tar.zst" -v | grep -E 'tasks|symbols|  [a-z]+ +[0-9]+ file'
for i in $(seq "$runs"); do
	/usr/bin/time -f "read back (klp --snapshot FILE -v blocking): %e s wall, %U s user, %S s sys, %M KiB max RSS" \
		"$work/klp" --snapshot "$work/s.tar.zst" -v blocking >/dev/null
done
