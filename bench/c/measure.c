// SPDX-License-Identifier: GPL-2.0
/*
 * measure: run a command and report what it cost, for the real-kernel
 * benchmark (e2e/bench). It forks (a real fork: the child's peak memory
 * then starts from this small program's, not from the caller's, as it
 * would after a vfork from a large process), runs the command in the child
 * with the caller's stdin, stdout and stderr, and writes to file
 * descriptor 3:
 *
 *   pid <child pid>                              once the child exists
 *   exit <status> start <ns> end <ns> utime <us> stime <us> maxrss <KiB>
 *
 * start and end are CLOCK_MONOTONIC around fork and wait4; status is the
 * wait status; the rest is wait4's rusage of the child and the children it
 * waited for.
 *
 *   measure COMMAND [ARG...]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	FILE *report = fdopen(3, "w");
	struct rusage ru;
	long long start, end;
	int status;
	pid_t pid;

	if (argc < 2 || !report) {
		fprintf(stderr, "usage: measure COMMAND [ARG...] 3>REPORT\n");
		return 2;
	}
	start = now();
	pid = fork();
	if (pid < 0) {
		perror("measure: fork");
		return 2;
	}
	if (pid == 0) {
		close(3);
		execv(argv[1], argv + 1);
		perror(argv[1]);
		_exit(127);
	}
	fprintf(report, "pid %d\n", pid);
	fflush(report);
	if (wait4(pid, &status, 0, &ru) < 0) {
		perror("measure: wait4");
		return 2;
	}
	end = now();
	fprintf(report, "exit %d start %lld end %lld utime %lld stime %lld maxrss %ld\n",
		status, start, end,
		ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec,
		ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec,
		ru.ru_maxrss);
	fclose(report);
	return 0;
}
