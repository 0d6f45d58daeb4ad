/* Reopening descriptors through /proc/self/fd and /dev/std*, and the names /proc shows for
 * them, printed so that a run in the Sentry can be compared with a native one. Stdin is
 * expected to be a pipe holding "from-stdin\n"; argv[1] is a scratch file's path. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err(long r) {
    static char b[32];
    if (r >= 0) return "ok";
    switch (errno) {
    case ENXIO: return "ENXIO";
    case ENOENT: return "ENOENT";
    case EBADF: return "EBADF";
    case EACCES: return "EACCES";
    }
    snprintf(b, sizeof b, "errno%d", errno);
    return b;
}

static int reopen(int fd, int flags) {
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    return open(p, flags);
}

/* The link's text, with the inode number checked against fstat and replaced by "INO". */
static void show_link(const char *what, int fd) {
    char p[64], t[256];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(p, t, sizeof t - 1);
    if (n < 0) {
        printf("%s link: %s\n", what, err(-1));
        return;
    }
    t[n] = 0;
    char *open_b = strchr(t, '[');
    if (open_b && open_b[1] >= '0' && open_b[1] <= '9') {
        struct stat st;
        fstat(fd, &st);
        unsigned long ino = strtoul(open_b + 1, 0, 10);
        open_b[1] = 0;
        printf("%s link: %sINO] ino-matches=%d\n", what, t, ino == (unsigned long)st.st_ino);
        return;
    }
    printf("%s link: %s\n", what, t);
}

static void show_symlink(const char *path) {
    char t[256];
    ssize_t n = readlink(path, t, sizeof t - 1);
    t[n < 0 ? 0 : n] = 0;
    printf("%s -> %s\n", path, n < 0 ? err(-1) : t);
}

/* A memfd: reopened with an offset of its own, and executed through /proc/self/fd
 * (fexecve) from a copy of this program. */
static void memfd(void) {
    int m = memfd_create("copy", 0);
    int self = open("/proc/self/exe", O_RDONLY);
    char b[65536];
    long n;
    while ((n = read(self, b, sizeof b)) > 0) write(m, b, n);
    close(self);
    int again = reopen(m, O_RDONLY);
    n = read(again, b, 4);
    printf("memfd reopen: %s reads from 0: %d\n", err(again), n == 4 && !memcmp(b, "\177ELF", 4));
    close(again);
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        char *args[] = {"fdreopen", "--from-memfd", 0};
        char *env[] = {0};
        fexecve(m, args, env);
        printf("fexecve: %s\n", err(-1));
        _exit(1);
    }
    int st;
    waitpid(p, &st, 0);
    printf("fexecve child exit: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IONBF, 0);
    if (argc > 1 && !strcmp(argv[1], "--from-memfd")) {
        printf("running from a memfd\n");
        return 7;
    }
    const char *scratch = argc > 1 ? argv[1] : "/tmp/fdreopen-file";
    char buf[64];
    int n;

    /* A pipe reopened for reading and, from its read end, for writing. */
    int p[2];
    pipe(p);
    write(p[1], "hello", 5);
    int r2 = reopen(p[0], O_RDONLY);
    n = read(r2, buf, sizeof buf);
    printf("pipe reopen read: %s %.*s\n", err(r2), n > 0 ? n : 0, buf);
    int w2 = reopen(p[0], O_WRONLY);
    printf("pipe reopen write: %s\n", err(w2));
    close(p[1]);
    write(w2, "via-w2", 6);
    close(w2);
    n = read(p[0], buf, sizeof buf);
    printf("pipe read after: %.*s\n", n > 0 ? n : 0, buf);
    n = read(p[0], buf, sizeof buf);
    printf("pipe eof once writers are gone: %d\n", n);
    int rw = reopen(p[0], O_RDWR);
    printf("pipe reopen rdwr: %s\n", err(rw));
    show_link("pipe", p[0]);
    show_link("pipe reopened", r2);
    struct stat a, b;
    fstat(p[0], &a);
    fstat(r2, &b);
    printf("pipe same inode: %d fifo: %d\n", a.st_ino == b.st_ino, S_ISFIFO(b.st_mode));

    /* Sockets cannot be opened. */
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    printf("socket reopen: %s\n", err(reopen(sv[0], O_RDWR)));
    show_link("socket", sv[0]);

    int ev = eventfd(0, 0);
    show_link("eventfd", ev);

    /* A regular file reopened: a description of its own, with its own offset. */
    int f = open(scratch, O_RDWR | O_CREAT | O_TRUNC, 0644);
    write(f, "abcdef", 6);
    int f2 = reopen(f, O_RDONLY);
    n = read(f2, buf, 3);
    printf("file reopen: %s read %.*s\n", err(f2), n > 0 ? n : 0, buf);
    char t[256];
    n = readlink("/proc/self/fd/3", t, 0); /* size 0 is EINVAL */
    printf("readlink size 0: %d\n", n);
    char fp[64];
    snprintf(fp, sizeof fp, "/proc/self/fd/%d", f);
    n = readlink(fp, t, sizeof t - 1);
    printf("file link is its path: %d\n", n > 0 && (size_t)n == strlen(scratch) && !memcmp(t, scratch, n));
    unlink(scratch);

    /* Stdio and /dev's links to it. */
    show_link("stdin", 0);
    int in = open("/dev/stdin", O_RDONLY);
    n = read(in, buf, sizeof buf);
    printf("/dev/stdin: %s %.*s", err(in), n > 0 ? n : 0, buf);
    int e = open("/dev/stderr", O_WRONLY | O_CREAT | O_TRUNC, 0666);
    printf("/dev/stderr: %s\n", err(e));
    write(e, "to-stderr\n", 10);
    show_symlink("/dev/fd");
    show_symlink("/dev/stdin");
    show_symlink("/dev/stdout");
    show_symlink("/dev/stderr");
    printf("/dev/fd/0 exists: %d\n", access("/dev/fd/0", F_OK) == 0);
    memfd();
    printf("done\n");
    return 0;
}
