// SPDX-License-Identifier: GPL-2.0
/*
 * spawn: start N sleeping threads and wait, so that /proc holds a realistic
 * number of tasks for the scan benchmark. Prints "ready" once all exist.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000;
	pthread_attr_t attr;
	pthread_t t;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (long i = 0; i < n; i++) {
		if (pthread_create(&t, &attr, sleeper, NULL) != 0) {
			fprintf(stderr, "spawn: created %ld of %ld threads\n", i, n);
			break;
		}
	}
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
