/* A small program the sensor's integration tests run to make the kernel do
 * one specific thing. Built with `gcc -static` by the tests. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* memfd_copy copies this program into a new memfd named name. */
static int memfd_copy(const char *name, unsigned flags)
{
	int fd = memfd_create(name, flags);
	int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || self < 0 || fstat(self, &st) < 0) {
		perror("memfd");
		exit(2);
	}
	off_t off = 0;
	while (off < st.st_size)
		if (sendfile(fd, self, &off, st.st_size - off) <= 0) {
			perror("sendfile");
			exit(2);
		}
	close(self);
	return fd;
}

static void *linger(void *arg)
{
	usleep(50 * 1000);
	if (arg)
		exit(6); /* the last thread ends the process */
	return NULL;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "noop";
	if (!strcmp(mode, "noop"))
		return 0;
	if (!strcmp(mode, "exit3"))
		return 3;
	if (!strcmp(mode, "segv")) {
		signal(SIGSEGV, SIG_DFL);
		raise(SIGSEGV);
		return 1;
	}
	if (!strcmp(mode, "threads")) {
		/* Four threads; the process exits with 5 while they run. */
		pthread_t t[3];
		for (int i = 0; i < 3; i++)
			pthread_create(&t[i], NULL, linger, NULL);
		usleep(10 * 1000);
		exit(5);
	}
	if (!strcmp(mode, "leader-first")) {
		/* The main thread leaves first; a later thread ends the process. */
		pthread_t t;
		pthread_create(&t, NULL, linger, (void *)1);
		pthread_exit(NULL);
	}
	if (!strcmp(mode, "id")) {
		printf("uid=%d euid=%d\n", getuid(), geteuid());
		return 0;
	}
	/* Raw syscalls: glibc's wrappers would broadcast to every thread. */
	if (!strcmp(mode, "setuid0")) {
		long r = syscall(SYS_setuid, 0);
		printf("setuid(0)=%ld errno=%d\n", r, r ? errno : 0);
		return r ? 1 : 0;
	}
	if (!strcmp(mode, "setresuid0")) {
		long r = syscall(SYS_setresuid, 0, 0, 0);
		printf("setresuid(0,0,0)=%ld errno=%d\n", r, r ? errno : 0);
		return r ? 1 : 0;
	}
	if (!strcmp(mode, "fexecve") && argc > 2) {
		/* execveat(fd, "", ..., AT_EMPTY_PATH): the path is gone, only the fd names the file. */
		int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			perror("open");
			return 2;
		}
		char *args[] = {"fexecve-child", "noop", NULL};
		char *env[] = {NULL};
		syscall(SYS_execveat, fd, "", args, env, AT_EMPTY_PATH);
		perror("execveat");
		return 2;
	}
	if (!strcmp(mode, "wait")) {
		/* Run until stdin closes, so the test can look at /proc. */
		char buf[64];
		while (read(0, buf, sizeof(buf)) > 0)
			;
		return 0;
	}
	/* Fileless execution: the child runs "wait" from an anonymous memory file. */
	char *wargs[] = {"memfd-child", "wait", NULL};
	char *noenv[] = {NULL};
	if (!strcmp(mode, "memfd-execveat") && argc > 2) {
		int fd = memfd_copy(argv[2], MFD_CLOEXEC);
		syscall(SYS_execveat, fd, "", wargs, noenv, AT_EMPTY_PATH);
		perror("execveat");
		return 2;
	}
	if (!strcmp(mode, "memfd-fexecve") && argc > 2) {
		int fd = memfd_copy(argv[2], MFD_CLOEXEC);
		fexecve(fd, wargs, noenv);
		perror("fexecve");
		return 2;
	}
	if (!strcmp(mode, "memfd-proc") && argc > 2) {
		int fd = memfd_copy(argv[2], 0);
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		execve(path, wargs, noenv);
		perror("execve");
		return 2;
	}
	if ((!strcmp(mode, "memfd-script-proc") || !strcmp(mode, "memfd-script-fd")) && argc > 2) {
		/* A fileless script: the fd stays open across the exec so the
		 * interpreter can read it. */
		int fd = memfd_create(argv[2], 0);
		const char body[] = "#!/bin/sh\nexit 0\n";
		if (fd < 0 || write(fd, body, sizeof(body) - 1) < 0) {
			perror("memfd");
			return 2;
		}
		char *sargs[] = {"memfd-script", NULL};
		if (!strcmp(mode, "memfd-script-fd")) {
			syscall(SYS_execveat, fd, "", sargs, noenv, AT_EMPTY_PATH);
		} else {
			char path[64];
			snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
			execve(path, sargs, noenv);
		}
		perror("exec");
		return 2;
	}
	if (!strcmp(mode, "execveat-dir") && argc > 3) {
		/* execveat(dirfd, NAME): the dirfd stays open across the exec. */
		int dir = open(argv[2], O_PATH | O_DIRECTORY);
		if (dir < 0) {
			perror("open");
			return 2;
		}
		char *args[] = {argv[3], "noop", NULL};
		syscall(SYS_execveat, dir, argv[3], args, noenv, 0);
		perror("execveat");
		return 2;
	}
	fprintf(stderr, "helper: unknown mode %s\n", mode);
	return 2;
}
