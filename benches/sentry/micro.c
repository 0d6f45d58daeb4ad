/* Micro-benchmarks run inside each runtime: prints "<name> <ns per operation>". */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
    } else if (!strcmp(argv[1], "clock")) {
        /* Through libc, so through the vDSO where the runtime has one. */
        struct timespec t;
        long sum = 0;
        for (long i = 0; i < n; i++) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            sum += t.tv_nsec;
        }
        if (sum == 0) return 6;
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
    } else if (!strcmp(argv[1], "pollrt")) {
        /* Round trips over loopback TCP, each side waiting in poll(): how soon a host socket's
         * readiness reaches a task blocked in poll. */
        int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof a;
        if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) ||
            getsockname(l, (struct sockaddr *)&a, &len)) return 5;
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a)) return 5;
        int s = accept(l, NULL, NULL);
        if (s < 0) return 5;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pid_t p = fork();
        if (p == 0) {
            char b;
            struct pollfd f = {.fd = s, .events = POLLIN};
            for (long i = 0; i < n; i++) {
                if (poll(&f, 1, -1) != 1 || read(s, &b, 1) != 1 || write(s, &b, 1) != 1) _exit(6);
            }
            _exit(0);
        }
        t0 = now();
        char b = 'x';
        struct pollfd f = {.fd = c, .events = POLLIN};
        for (long i = 0; i < n; i++) {
            if (write(c, &b, 1) != 1 || poll(&f, 1, -1) != 1 || read(c, &b, 1) != 1) return 6;
        }
        int st;
        if (waitpid(p, &st, 0) != p || st != 0) return 6;
    } else {
        return 2;
    }
    printf("%s %.0f\n", argv[1], (now() - t0) / n);
    return 0;
}
