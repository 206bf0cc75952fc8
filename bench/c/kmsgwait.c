// SPDX-License-Identifier: GPL-2.0
/*
 * kmsgwait: the least a waiter for a livepatch transition can do, which
 * klp wait is measured against. It reads /dev/kmsg from its end, blocking,
 * and exits at the kernel's record "'<patch>': patching complete" (or
 * unpatching): no read of sysfs, no runtime, one wake-up per record. Its
 * latency is the kernel's (waking the log's readers) and the emulator's.
 *
 *   kmsgwait PATCH
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char rec[16384], patching[512], unpatching[512];
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: kmsgwait PATCH\n");
		return 2;
	}
	snprintf(patching, sizeof(patching), "'%s': patching complete", argv[1]);
	snprintf(unpatching, sizeof(unpatching), "'%s': unpatching complete", argv[1]);
	fd = open("/dev/kmsg", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || lseek(fd, 0, SEEK_END) < 0) {
		perror("kmsgwait: /dev/kmsg");
		return 1;
	}
	for (;;) {
		ssize_t n = read(fd, rec, sizeof(rec) - 1);

		if (n < 0) {
			if (errno == EPIPE || errno == EINTR)
				continue; /* records overwritten: read on */
			perror("kmsgwait: read /dev/kmsg");
			return 1;
		}
		rec[n] = 0;
		if (strstr(rec, patching) || strstr(rec, unpatching))
			return 0;
	}
}
