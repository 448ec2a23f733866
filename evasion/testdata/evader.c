/* A small program the evasion tests run as an attacker would, built with
 * `gcc -static` so that it runs anywhere, from a chroot or from memory. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "exit";
	char *noenv[] = {NULL};
	if (!strcmp(mode, "exit"))
		return argc > 2 ? atoi(argv[2]) : 0;
	if (!strcmp(mode, "code")) {
		/* Exit with the first byte read from stdin: the same argv can
		 * end in different codes. */
		unsigned char c = 0;
		return read(0, &c, 1) == 1 ? c : 0;
	}
	if (!strcmp(mode, "wait")) {
		/* Run until stdin closes or a signal ends it. */
		char buf[64];
		while (read(0, buf, sizeof(buf)) > 0)
			;
		return 0;
	}
	if (!strcmp(mode, "rename") && argc > 2) {
		/* Take another comm, then crash. */
		prctl(PR_SET_NAME, argv[2], 0, 0, 0);
		signal(SIGSEGV, SIG_DFL);
		raise(SIGSEGV);
		return 1;
	}
	if (!strcmp(mode, "setuid0")) {
		/* A raw syscall: glibc's wrapper would broadcast to threads. */
		return syscall(SYS_setuid, 0) ? 1 : 0;
	}
	if (!strcmp(mode, "memfd") && argc > 2) {
		/* Copy this program into an anonymous memory file and run it
		 * from there: fexecve, nothing on disk. */
		int fd = memfd_create(argv[2], MFD_CLOEXEC);
		int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || self < 0 || fstat(self, &st) < 0)
			return 2;
		off_t off = 0;
		while (off < st.st_size)
			if (sendfile(fd, self, &off, st.st_size - off) <= 0)
				return 2;
		char *args[] = {"memfd-child", "exit", "0", NULL};
		fexecve(fd, args, noenv);
		return 2;
	}
	if (!strcmp(mode, "execveat") && argc > 3) {
		/* execveat(dirfd, NAME): a name relative to a directory fd. */
		int dir = open(argv[2], O_PATH | O_DIRECTORY);
		if (dir < 0)
			return 2;
		char *args[] = {argv[3], "exit", "0", NULL};
		syscall(SYS_execveat, dir, argv[3], args, noenv, 0);
		return 3;
	}
	return 2;
}
