#!/usr/bin/env bash
# Compare klp's task scan with a minimal C scanner on the real /proc of this
# machine, filled with BENCH_THREADS sleeping threads (default 100000) in
# BENCH_PROCS processes (default 1: one big process; 1000 gives many small
# ones).
#
# Real procfs is what matters: the cost is in the kernel's path walk and
# seq_file reads, which a fake tree on disk does not model. This host's
# kernel may lack CONFIG_LIVEPATCH, so by default both scanners read
# oom_score_adj, another one-line per-task procfs file served the same way
# as patch_state (BENCH_FILE=patch_state on a livepatch kernel).
set -euo pipefail
cd "$(dirname "$0")/.."

threads=${BENCH_THREADS:-100000}
file=${BENCH_FILE:-oom_score_adj}
[ -e /proc/self/task/$$/patch_state ] && file=${BENCH_FILE:-patch_state}
work=$(mktemp -d)
spawn_pid=
cleanup() {
	[ -n "$spawn_pid" ] && kill "$spawn_pid" 2>/dev/null || true
	[ -n "${old_pid_max:-}" ] && echo "$old_pid_max" >/proc/sys/kernel/pid_max 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

command -v hyperfine >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -qq -o DPkg::Lock::Timeout=600 hyperfine >/dev/null; }
command -v hyperfine >/dev/null || { echo "compare.sh: hyperfine is needed (apt-get install hyperfine)" >&2; exit 1; }

gcc -O2 -o "$work/cscan" bench/c/cscan.c
gcc -O2 -pthread -o "$work/spawn" bench/c/spawn.c
CGO_ENABLED=0 go build -o "$work/gscan" ./bench/gscan

# Room for the threads: pid_max bounds the number of tasks.
old_pid_max=$(cat /proc/sys/kernel/pid_max)
if [ "$old_pid_max" -lt $((threads + 20000)) ]; then
	echo $((threads + 20000)) >/proc/sys/kernel/pid_max 2>/dev/null || old_pid_max=
fi

coproc SPAWN { exec "$work/spawn" "$threads" "${BENCH_PROCS:-1}"; }
spawn_pid=$SPAWN_PID
read -r line <&"${SPAWN[0]}"
[ "$line" = ready ] || { echo "compare.sh: spawn failed" >&2; exit 1; }

echo "tasks on this machine: $("$work/cscan" /proc "$file")"
echo "CPUs: $(nproc); file: $file"
hyperfine -N --warmup 3 --runs "${BENCH_RUNS:-20}" \
	-n "C scanner" "$work/cscan /proc $file" \
	-n "klp, 1 worker" "$work/gscan -workers 1 -file $file /proc" \
	-n "klp, $(nproc) workers" "$work/gscan -file $file /proc" \
	--export-markdown "$work/result.md"
cat "$work/result.md"
