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
#include <sys/syscall.h>
#include <unistd.h>

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
	fprintf(stderr, "helper: unknown mode %s\n", mode);
	return 2;
}
