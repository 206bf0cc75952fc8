// Package bench holds klp's host-side benchmarks: the task scan over
// generated trees here, and in compare.sh the scan of this host's /proc
// against cscan.c, the minimal C scanner. The real-kernel benchmark, which
// the targets of docs/performance.md are checked against, is e2e/bench
// (make bench); bench/c holds the C programs both use.
package bench
