/* Micro-benchmarks run inside each runtime: prints "<name> <ns per operation>". */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    long n = atol(argv[2]);
    double t0 = now();
    if (!strcmp(argv[1], "getpid")) {
        for (long i = 0; i < n; i++) syscall(SYS_getpid);
    } else if (!strcmp(argv[1], "open")) {
        char buf[64];
        for (long i = 0; i < n; i++) {
            int fd = open("/etc/hostname", O_RDONLY);
            if (fd < 0 || read(fd, buf, sizeof buf) <= 0) return 3;
            close(fd);
        }
    } else if (!strcmp(argv[1], "forkexec")) {
        for (long i = 0; i < n; i++) {
            pid_t p = fork();
            if (p == 0) { execl("/bin/true", "true", (char *)NULL); _exit(127); }
            int st;
            if (waitpid(p, &st, 0) != p || st != 0) return 4;
        }
    } else {
        return 2;
    }
    printf("%s %.0f\n", argv[1], (now() - t0) / n);
    return 0;
}
