/* The workloads of `ringfence bench overhead`, run inside each runtime from the same rootfs.
 * Every result is one line "RESULT <metric id> <value>" in the unit the metric id names; the
 * host maps ids to its workload table. Timed loops stop at a count or a time budget, whichever
 * comes first, so that slow runtimes finish in bounded time. Exit status != 0 on any error,
 * with the failing step on stderr. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024L * 1024L)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "work: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void result(const char *id, double v) {
    printf("RESULT %s %.6g\n", id, v);
    fflush(stdout);
}

/* A loop bounded by count and time: the clock is read every `every` iterations. */
struct budget {
    double start, limit;
    long n, max, every;
};

static struct budget budget_new(double seconds, long max, long every) {
    struct budget b = {now(), seconds, 0, max, every};
    return b;
}

static int budget_more(struct budget *b) {
    if (b->n >= b->max) return 0;
    if (b->n > 0 && b->n % b->every == 0 && now() - b->start > b->limit) return 0;
    b->n++;
    return 1;
}

/* Seconds per iteration so far. */
static double budget_per(struct budget *b) { return (now() - b->start) / (b->n ? b->n : 1); }

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Waits for `fd` to be ready: runsc's host network hands out sockets that answer EAGAIN
 * even in blocking mode. */
static void await_fd(int fd, short events) {
    struct pollfd p = {.fd = fd, .events = events};
    poll(&p, 1, 1000);
}

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                await_fd(fd, POLLOUT);
                continue;
            }
            die("write");
        }
        p += w;
        n -= (size_t)w;
    }
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

/* ---- syscalls ---- */

static void syscalls(double secs, const char *file) {
    struct budget b = budget_new(secs, 10000000, 1024);
    while (budget_more(&b)) syscall(SYS_getpid);
    result("getpid_us", budget_per(&b) * 1e6);

    char buf[64];
    b = budget_new(secs, 1000000, 64);
    while (budget_more(&b)) {
        int fd = open(file, O_RDONLY);
        if (fd < 0) die("open");
        if (read(fd, buf, sizeof buf) < 0) die("read");
        close(fd);
    }
    result("open_read_close_us", budget_per(&b) * 1e6);

    /* 1 KiB each way between two processes over two pipes. */
    int ab[2], ba[2];
    if (pipe(ab) || pipe(ba)) die("pipe");
    pid_t child = fork();
    if (child < 0) die("fork");
    char msg[1024];
    memset(msg, 'p', sizeof msg);
    if (child == 0) {
        close(ab[1]);
        close(ba[0]);
        while (read_full(ab[0], msg, sizeof msg) == 0) write_all(ba[1], msg, sizeof msg);
        _exit(0);
    }
    close(ab[0]);
    close(ba[1]);
    b = budget_new(secs, 1000000, 16);
    while (budget_more(&b)) {
        write_all(ab[1], msg, sizeof msg);
        if (read_full(ba[0], msg, sizeof msg)) die("pipe read");
    }
    result("pipe_pingpong_us", budget_per(&b) * 1e6);
    close(ab[1]);
    waitpid(child, NULL, 0);
}

/* ---- processes ---- */

static void forkexec(double secs, const char *prog) {
    struct budget b = budget_new(secs, 100000, 1);
    while (budget_more(&b)) {
        pid_t p = fork();
        if (p < 0) die("fork");
        if (p == 0) {
            execl(prog, "true", (char *)NULL);
            _exit(127);
        }
        int st;
        if (waitpid(p, &st, 0) != p || st != 0) die("fork+exec+wait");
    }
    result("fork_exec_wait_us", budget_per(&b) * 1e6);
}

/* ---- files ---- */

static void fill(char *buf, size_t n) {
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t v = rng();
        memcpy(buf + i, &v, 8);
    }
}

static void files(const char *prefix, const char *dir, long mib, double secs) {
    char path[512], id[64];
    snprintf(path, sizeof path, "%s/seq.%d", dir, (int)getpid());
    char *buf = malloc(MIB);
    if (!buf) die("malloc");
    fill(buf, MIB);

    double t = now();
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
    if (fd < 0) die("create");
    for (long i = 0; i < mib; i++) write_all(fd, buf, MIB);
    if (fsync(fd)) die("fsync");
    snprintf(id, sizeof id, "%s_seq_write_mibs", prefix);
    result(id, mib / (now() - t));
    /* Ask for the data to come from the file system, not the page cache, where a runtime
     * lets it go (an advice, ignored by some). */
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);

    t = now();
    if (lseek(fd, 0, SEEK_SET) < 0) die("lseek");
    for (long i = 0; i < mib; i++)
        if (read_full(fd, buf, MIB)) die("read back");
    snprintf(id, sizeof id, "%s_seq_read_mibs", prefix);
    result(id, mib / (now() - t));

    /* Random 4 KiB reads over the file just written. */
    long blocks = mib * 256;
    struct budget b = budget_new(secs, 10000000, 16);
    while (budget_more(&b)) {
        off_t off = (off_t)(rng() % (uint64_t)blocks) * 4096;
        if (pread(fd, buf, 4096, off) != 4096) die("pread");
    }
    snprintf(id, sizeof id, "%s_rand_read_us", prefix);
    result(id, budget_per(&b) * 1e6);
    close(fd);
    unlink(path);

    /* 4 KiB written then fsync'd, over and over, as a database's log does. */
    snprintf(path, sizeof path, "%s/fsync.%d", dir, (int)getpid());
    fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    if (fd < 0) die("create fsync file");
    b = budget_new(secs, 1000000, 1);
    while (budget_more(&b)) {
        if (pwrite(fd, buf, 4096, (off_t)(b.n % 64) * 4096) != 4096) die("pwrite");
        if (fsync(fd)) die("fsync");
    }
    snprintf(id, sizeof id, "%s_fsync_per_s", prefix);
    result(id, 1.0 / budget_per(&b));
    close(fd);
    unlink(path);
    free(buf);
}

/* ---- CPU: SHA-256 (FIPS 180-4), written for this benchmark ---- */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const unsigned char *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

/* The digest of `mib` MiB (a 1 MiB buffer hashed over and over); the whole data is a
 * multiple of the block size, so only the length block pads it. */
static void sha256(long mib) {
    char *buf = malloc(MIB);
    if (!buf) die("malloc");
    fill(buf, MIB);
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    double t = now();
    for (long i = 0; i < mib; i++)
        for (long off = 0; off < MIB; off += 64) sha256_block(h, (unsigned char *)buf + off);
    unsigned char last[64] = {0x80};
    uint64_t bits = (uint64_t)mib * MIB * 8;
    for (int i = 0; i < 8; i++) last[63 - i] = (unsigned char)(bits >> (8 * i));
    sha256_block(h, last);
    result("sha256_mibs", mib / (now() - t));
    fprintf(stderr, "sha256 %08x%08x...\n", h[0], h[1]);
    free(buf);
}

/* Runs `argv` with stdout to /dev/null and returns its wall time in seconds. */
static double timed(char *const argv[]) {
    double t = now();
    pid_t p = fork();
    if (p < 0) die("fork");
    if (p == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, 1);
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "work: %s failed (status %d)\n", argv[0], st);
        exit(1);
    }
    return now() - t;
}

/* gzip (the rootfs's) of a file of text-like, compressible lines. */
static void gzip(const char *gz, const char *dir, long mib) {
    char path[512];
    snprintf(path, sizeof path, "%s/gzip.%d", dir, (int)getpid());
    FILE *f = fopen(path, "w");
    if (!f) die("create gzip input");
    long written = 0;
    for (long i = 0; written < mib * MIB; i++) {
        int n = fprintf(f, "%ld,sensor-%lu,%lu.%02lu,ok\n", i, (unsigned long)(rng() % 64),
                        (unsigned long)(rng() % 1000), (unsigned long)(rng() % 100));
        if (n < 0) die("write gzip input");
        written += n;
    }
    if (fclose(f)) die("close gzip input");
    char *argv[] = {(char *)gz, "-c", path, NULL};
    double s = timed(argv);
    unlink(path);
    result("gzip_mibs", mib / s);
}

/* ---- the application: sqlite3's shell on a small database ---- */

static void sqlite(const char *shell, const char *dir, long rows) {
    char db[512], journal[600];
    snprintf(db, sizeof db, "%s/app.%d.db", dir, (int)getpid());
    snprintf(journal, sizeof journal, "%s-journal", db);
    unlink(db);
    size_t cap = 64 * 1024;
    char *sql = malloc(cap);
    if (!sql) die("malloc");
    int n = snprintf(sql, cap,
                     "CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT, n INTEGER);"
                     "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<%ld) "
                     "INSERT INTO kv SELECT x, hex(randomblob(16)), x%%97 FROM c;"
                     "CREATE INDEX kv_n ON kv(n);"
                     "SELECT n, count(*), sum(length(v)) FROM kv GROUP BY n;"
                     "SELECT count(*) FROM kv a JOIN kv b ON a.k = b.k + 1 WHERE a.n = 3;",
                     rows);
    /* 100 small transactions, each committed (and synced) on its own. */
    for (int i = 1; i <= 100 && (size_t)n + 80 < cap; i++)
        n += snprintf(sql + n, cap - (size_t)n, "UPDATE kv SET v='u%d' WHERE k=%d;", i, i * 7);
    char *argv[] = {(char *)shell, db, sql, NULL};
    double s = timed(argv);
    unlink(db);
    unlink(journal);
    free(sql);
    result("sqlite_ms", s * 1000);
}

/* ---- network: a peer on the host ---- */

static int dial(const char *ip, int port, char mode) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) die("address");
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    write_all(fd, &mode, 1);
    return fd;
}

static void network(const char *ip, int port, long mib, double secs) {
    /* Throughput: `mib` MiB sent, timed until the peer acknowledges it read them all. */
    char *buf = malloc(MIB);
    if (!buf) die("malloc");
    fill(buf, MIB);
    int fd = dial(ip, port, 'S');
    double t = now();
    for (long i = 0; i < mib; i++) write_all(fd, buf, MIB);
    shutdown(fd, SHUT_WR);
    char ack;
    if (read_full(fd, &ack, 1)) die("throughput ack");
    result("tcp_throughput_mibs", mib / (now() - t));
    close(fd);

    /* Request/response: 64 bytes out, 64 back, one at a time. */
    fd = dial(ip, port, 'E');
    char msg[64];
    memset(msg, 'r', sizeof msg);
    struct budget b = budget_new(secs, 1000000, 1);
    while (budget_more(&b)) {
        write_all(fd, msg, sizeof msg);
        if (read_full(fd, msg, sizeof msg)) die("echo");
    }
    result("tcp_rr_us", budget_per(&b) * 1e6);
    close(fd);
    free(buf);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: work syscalls|fork|files|cpu|sqlite|net ...\n");
        return 2;
    }
    const char *w = argv[1];
    if (!strcmp(w, "syscalls") && argc == 4) {
        syscalls(atof(argv[2]), argv[3]);
    } else if (!strcmp(w, "fork") && argc == 4) {
        forkexec(atof(argv[2]), argv[3]);
    } else if (!strcmp(w, "files") && argc == 6) {
        files(argv[2], argv[3], atol(argv[4]), atof(argv[5]));
    } else if (!strcmp(w, "cpu") && argc == 5) {
        sha256(atol(argv[2]));
        gzip(argv[3], argv[4], atol(argv[2]) / 64 + 1);
    } else if (!strcmp(w, "sqlite") && argc == 5) {
        sqlite(argv[2], argv[3], atol(argv[4]));
    } else if (!strcmp(w, "net") && argc == 6) {
        network(argv[2], atoi(argv[3]), atol(argv[4]), atof(argv[5]));
    } else {
        fprintf(stderr, "work: bad arguments for %s\n", w);
        return 2;
    }
    return 0;
}
