//go:build ignore

/* The exec-storm load generator of `procwatch bench exec`.
 *
 * Run with no arguments it does nothing and exits 0: it is also the static
 * no-op binary the storm executes. Run as `storm WORKERS SECONDS` it forks
 * WORKERS children that each fork/exec the no-op binary (itself) in a loop
 * as fast as the machine allows, for SECONDS, and prints the number of
 * no-op processes that exited cleanly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 4 || strcmp(argv[1], "storm") != 0)
		return 0;
	int workers = atoi(argv[2]);
	double seconds = atof(argv[3]);
	int fds[2];
	if (pipe(fds) < 0)
		return 2;
	for (int w = 0; w < workers; w++) {
		if (fork() == 0) {
			char *args[] = {argv[0], NULL};
			char *env[] = {NULL};
			long ok = 0;
			double end = now() + seconds;
			while (now() < end) {
				pid_t pid = vfork();
				if (pid == 0) {
					execve(argv[0], args, env);
					_exit(127);
				}
				int status;
				if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0)
					ok++;
			}
			write(fds[1], &ok, sizeof(ok));
			_exit(0);
		}
	}
	long total = 0;
	for (int w = 0; w < workers; w++) {
		long n = 0;
		if (read(fds[0], &n, sizeof(n)) == sizeof(n))
			total += n;
	}
	while (wait(NULL) > 0)
		;
	printf("%ld\n", total);
	return 0;
}
