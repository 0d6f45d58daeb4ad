/* The measuring program of `ringfence bench network`, run the same way as a plain process and
 * in Sentry pods.
 *
 *   netbench server PORT
 *       A connection's first byte picks the exchange: 'C' gets one byte back at once and is
 *       closed (connection setup); 'S' is read to the end, then answered one byte (so the
 *       client times the delivery); 'E' is echoed. One connection at a time (the clients
 *       measure one at a time), with blocking reads: never poll, as the Sentry re-checks host
 *       sockets' readiness in poll/epoll/select only every 10 ms, which would hide the network
 *       path; never a child per connection either, as its wake-ups cost 3x the parent's here.
 *
 *   netbench run PLAN OUT
 *       Waits for PLAN to exist (a pod can start before the benchmark knows what it should
 *       measure, and hold its network namespace meanwhile), then runs each line of PLAN, `LABEL KIND COUNT TARGET[,TARGET...]` with TARGET an
 *       IPv4:port, one after another, and writes `LABEL METRIC VALUE` lines to OUT (through a
 *       temporary file renamed at the end, so that a reader never sees half of it):
 *       stream  COUNT ms of bulk transfer over one connection -> throughput_mibs
 *       rr      COUNT 64-byte round trips over one connection  -> rr_p50_us, rr_p99_us
 *       connect COUNT connections, round-robin over the targets, each timed from connect()
 *               to the first byte of the answer                 -> connect_p50_us, connect_p99_us
 *
 *   netbench probe SECONDS TARGET[,TARGET...]
 *       Retries each target until a server answers a 'C' connection, for up to SECONDS in all;
 *       exits 1 naming the first target that never answered.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Bulk writes of 128 KiB, iperf3's default. */
#define CHUNK (128 * 1024)
#define MSG 64
#define MAX_TARGETS 256
/* Untimed iterations first: ARP, conntrack and the peer's first accept out of the way. */
#define WARMUP 5

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* Waits for `fd` to be ready: some runtimes' host sockets answer EAGAIN in blocking mode. */
static void await_fd(int fd, short events) {
    struct pollfd p = {.fd = fd, .events = events};
    poll(&p, 1, 1000);
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                await_fd(fd, POLLOUT);
                continue;
            }
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_full(int fd, char *p, size_t n) {
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) {
            await_fd(fd, POLLIN);
            continue;
        }
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* ---- server ---- */

/* The rest of a stream or echo connection, with blocking reads. */
static void handle(int fd, char mode) {
    static char buf[CHUNK];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) {
            await_fd(fd, POLLIN);
            continue;
        }
        if (r <= 0) break;
        if (mode == 'E' && write_all(fd, buf, (size_t)r)) return;
    }
    if (mode == 'S') write_all(fd, "k", 1);
}

static void serve(int port) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0) die("socket");
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (bind(l, (struct sockaddr *)&a, sizeof a)) die("bind");
    if (listen(l, 1024)) die("listen");
    /* A client that stalls holds the server up for this long at most. */
    struct timeval stall = {.tv_sec = 10};
    printf("listening on %d\n", port);
    fflush(stdout);
    for (;;) {
        int fd = accept(l, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            die("accept");
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &stall, sizeof stall);
        char mode;
        /* 'C' is answered at once: connection setup is one round trip after the handshake. */
        if (read_full(fd, &mode, 1) || mode == 'C') {
            write_all(fd, "k", 1);
            close(fd);
            continue;
        }
        handle(fd, mode);
        close(fd);
    }
}

/* ---- client ---- */

struct target {
    struct sockaddr_in addr;
};

static int parse_targets(char *list, struct target *out) {
    int n = 0;
    for (char *t = strtok(list, ","); t && n < MAX_TARGETS; t = strtok(NULL, ",")) {
        char *colon = strrchr(t, ':');
        if (!colon) return -1;
        *colon = 0;
        out[n].addr = (struct sockaddr_in){.sin_family = AF_INET,
                                           .sin_port = htons((uint16_t)atoi(colon + 1))};
        if (inet_pton(AF_INET, t, &out[n].addr.sin_addr) != 1) return -1;
        n++;
    }
    return n;
}

static int new_socket(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int dial(const struct target *t, char mode) {
    int fd = new_socket();
    if (connect(fd, (const struct sockaddr *)&t->addr, sizeof t->addr)) return -1;
    if (write_all(fd, &mode, 1)) return -1;
    return fd;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The p-th percentile (nearest rank, as the Rust side's Samples) of n sorted samples. */
static double percentile(const double *v, long n, double p) {
    long i = (long)(p / 100.0 * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static void report(FILE *out, const char *label, const char *metric, double *v, long n) {
    qsort(v, (size_t)n, sizeof *v, by_value);
    fprintf(out, "%s %s_p50_us %.3f\n", label, metric, percentile(v, n, 50) * 1e6);
    fprintf(out, "%s %s_p99_us %.3f\n", label, metric, percentile(v, n, 99) * 1e6);
}

static int stream(FILE *out, const char *label, const struct target *t, long ms) {
    static char buf[CHUNK];
    memset(buf, 's', sizeof buf);
    int fd = dial(t, 'S');
    if (fd < 0) return -1;
    double start = now(), end = start + ms / 1000.0;
    long chunks = 0;
    do {
        if (write_all(fd, buf, sizeof buf)) return -1;
        chunks++;
    } while (now() < end);
    shutdown(fd, SHUT_WR);
    char ack;
    if (read_full(fd, &ack, 1)) return -1;
    double mib = chunks * (double)CHUNK / (1024.0 * 1024.0);
    fprintf(out, "%s throughput_mibs %.3f\n", label, mib / (now() - start));
    close(fd);
    return 0;
}

static int rr(FILE *out, const char *label, const struct target *t, long count) {
    double *v = calloc((size_t)count, sizeof *v);
    if (!v) die("calloc");
    int fd = dial(t, 'E');
    if (fd < 0) return -1;
    char msg[MSG];
    memset(msg, 'r', sizeof msg);
    for (long i = -WARMUP; i < count; i++) {
        double t0 = now();
        if (write_all(fd, msg, sizeof msg) || read_full(fd, msg, sizeof msg)) return -1;
        if (i >= 0) v[i] = now() - t0;
    }
    close(fd);
    report(out, label, "rr", v, count);
    free(v);
    return 0;
}

static int connects(FILE *out, const char *label, const struct target *t, int nt, long count) {
    double *v = calloc((size_t)count, sizeof *v);
    if (!v) die("calloc");
    for (long i = -WARMUP; i < count; i++) {
        const struct target *to = &t[(i + WARMUP) % nt];
        int fd = new_socket();
        char reply;
        double t0 = now();
        if (connect(fd, (const struct sockaddr *)&to->addr, sizeof to->addr)) return -1;
        if (write_all(fd, "C", 1) || read_full(fd, &reply, 1)) return -1;
        if (i >= 0) v[i] = now() - t0;
        close(fd);
    }
    report(out, label, "connect", v, count);
    free(v);
    return 0;
}

static int run(const char *plan_path, const char *out_path) {
    struct timespec tick = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
    while (access(plan_path, R_OK)) nanosleep(&tick, NULL);
    FILE *plan = fopen(plan_path, "r");
    if (!plan) die(plan_path);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", out_path);
    FILE *out = fopen(tmp, "w");
    if (!out) die(tmp);
    static char line[16384];
    static struct target targets[MAX_TARGETS];
    while (fgets(line, sizeof line, plan)) {
        char label[128], kind[16];
        long count;
        static char list[16384];
        if (sscanf(line, "%127s %15s %ld %16383s", label, kind, &count, list) != 4) continue;
        int nt = parse_targets(list, targets);
        if (nt <= 0 || count <= 0) {
            fprintf(stderr, "%s: bad plan line\n", label);
            return 1;
        }
        printf("%s: %s ...\n", label, kind);
        fflush(stdout);
        int rc = -1;
        if (!strcmp(kind, "stream")) rc = stream(out, label, &targets[0], count);
        else if (!strcmp(kind, "rr")) rc = rr(out, label, &targets[0], count);
        else if (!strcmp(kind, "connect")) rc = connects(out, label, targets, nt, count);
        if (rc) {
            fprintf(out, "%s error %d\n", label, errno);
            fprintf(stderr, "%s: %s failed: %s\n", label, kind, strerror(errno));
        }
        fflush(out);
    }
    if (fclose(out)) die("closing the results");
    if (rename(tmp, out_path)) die("rename");
    return 0;
}

/* One 'C' exchange with `t`, giving up after about a second. */
static int answers(const struct target *t) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    int ok = 0;
    if (connect(fd, (const struct sockaddr *)&t->addr, sizeof t->addr) == 0 || errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof err;
        if (poll(&p, 1, 1000) == 1 && !getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) && !err &&
            write(fd, "C", 1) == 1) {
            p.events = POLLIN;
            char k;
            ok = poll(&p, 1, 1000) == 1 && read(fd, &k, 1) == 1;
        }
    }
    close(fd);
    return ok;
}

static int probe(double seconds, char *list) {
    static struct target targets[MAX_TARGETS];
    int nt = parse_targets(list, targets);
    if (nt <= 0) return 2;
    double end = now() + seconds;
    struct timespec tick = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
    for (int i = 0; i < nt; i++) {
        while (!answers(&targets[i])) {
            if (now() > end) {
                char ip[INET_ADDRSTRLEN];
                inet_ntop(AF_INET, &targets[i].addr.sin_addr, ip, sizeof ip);
                fprintf(stderr, "nothing answered at %s:%d\n", ip, ntohs(targets[i].addr.sin_port));
                return 1;
            }
            nanosleep(&tick, NULL);
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && !strcmp(argv[1], "server")) serve(atoi(argv[2]));
    if (argc == 4 && !strcmp(argv[1], "run")) return run(argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "probe")) return probe(atof(argv[2]), argv[3]);
    fprintf(stderr, "usage: netbench server PORT | run PLAN OUT | probe SECONDS TARGETS\n");
    return 2;
}
