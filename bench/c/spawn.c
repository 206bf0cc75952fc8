// SPDX-License-Identifier: GPL-2.0
/*
 * spawn: start N sleeping threads spread over P processes (default 1) and
 * wait, so that /proc holds a realistic number of tasks for the scan
 * benchmark: one big process (a JVM) or many small ones, each thread with
 * a stack of S KiB (default 64). Prints "ready" once all exist; killing
 * it ends the other processes too.
 *
 *   spawn N [P [S]]
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static long stack_kib = 64;

static void threads(long n)
{
	pthread_attr_t attr;
	pthread_t t;

	pthread_attr_init(&attr);
	if (pthread_attr_setstacksize(&attr, stack_kib * 1024) != 0)
		fprintf(stderr, "spawn: stack of %ld KiB refused, using the default\n", stack_kib);
	for (long i = 0; i < n; i++) {
		if (pthread_create(&t, &attr, sleeper, NULL) != 0) {
			fprintf(stderr, "spawn: created %ld of %ld threads\n", i, n);
			break;
		}
	}
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000;
	long procs = argc > 2 ? atol(argv[2]) : 1;
	int ready[2];

	if (argc > 3)
		stack_kib = atol(argv[3]);
	if (procs < 1)
		procs = 1;
	if (pipe(ready) != 0)
		return 1;
	for (long p = 1; p < procs; p++) {
		if (fork() == 0) {
			/* Die with the parent. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			threads(n / procs - 1);
			if (write(ready[1], "", 1) != 1)
				return 1;
			for (;;)
				pause();
		}
	}
	threads(n / procs - (procs > 1 ? 1 : 0));
	for (long p = 1; p < procs; p++) {
		char c;
		if (read(ready[0], &c, 1) != 1)
			return 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
