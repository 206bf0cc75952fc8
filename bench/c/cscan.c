// SPDX-License-Identifier: GPL-2.0
/*
 * cscan: the minimal C task scanner that klp's scan is measured against.
 * It does the least work a scanner can do: getdents64 over <root> and each
 * <root>/<pid>/task, then openat/read/close of <pid>/task/<tid>/<file>.
 *
 *   cscan [ROOT [FILE]]      defaults: /proc patch_state
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static int numeric(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	const char *root = argc > 1 ? argv[1] : "/proc";
	const char *file = argc > 2 ? argv[2] : "patch_state";
	static char pbuf[32768], tbuf[32768];
	char path[128], val[32];
	long tasks = 0, nonidle = 0, n, m;
	int procfd = open(root, O_RDONLY | O_DIRECTORY);

	if (procfd < 0) {
		perror(root);
		return 1;
	}
	while ((n = syscall(SYS_getdents64, procfd, pbuf, sizeof(pbuf))) > 0) {
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(pbuf + off);
			int tfd;

			off += d->d_reclen;
			if (!numeric(d->d_name))
				continue;
			snprintf(path, sizeof(path), "%s/task", d->d_name);
			tfd = openat(procfd, path, O_RDONLY | O_DIRECTORY);
			if (tfd < 0)
				continue;
			while ((m = syscall(SYS_getdents64, tfd, tbuf, sizeof(tbuf))) > 0) {
				for (long toff = 0; toff < m;) {
					struct dirent64 *t = (struct dirent64 *)(tbuf + toff);
					int fd;
					ssize_t r;

					toff += t->d_reclen;
					if (!numeric(t->d_name))
						continue;
					snprintf(path, sizeof(path), "%s/%s", t->d_name, file);
					fd = openat(tfd, path, O_RDONLY);
					if (fd < 0)
						continue;
					r = read(fd, val, sizeof(val));
					close(fd);
					if (r > 0) {
						tasks++;
						if (val[0] != '-')
							nonidle++;
					}
				}
			}
			close(tfd);
		}
	}
	printf("%ld tasks, %ld not idle\n", tasks, nonidle);
	return 0;
}
