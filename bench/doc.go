// Package bench holds klp's benchmarks: the task scan over generated trees
// here, and in compare.sh the scan of the real /proc against cscan.c, the
// minimal C scanner that sets the target (klp within 1.25 times its time on
// one CPU, and faster than it with two).
package bench
