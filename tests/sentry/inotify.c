// inotify, printed only where Linux and the Sentry must agree: the events each file operation
// reports (names, masks, whether rename cookies pair up, never their values), watch
// descriptors, the read(2) record format, errors, readiness, blocking reads woken by another
// process or interrupted by a signal, one-shot and mask-add watches, and the overflow event.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *errname(int e) {
    switch (e) {
    case 0: return "0";
    case ENOENT: return "ENOENT";
    case ENOTDIR: return "ENOTDIR";
    case EFAULT: return "EFAULT";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EEXIST: return "EEXIST";
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    case EACCES: return "EACCES";
    case ENOSPC: return "ENOSPC";
    case EMFILE: return "EMFILE";
    default: return "other";
    }
}

#define TRY(label, expr)                                              \
    do {                                                              \
        errno = 0;                                                    \
        long r_ = (expr);                                             \
        printf("%s: %ld %s\n", label, r_, errname(errno));            \
    } while (0)

static const struct { unsigned bit; const char *name; } NAMES[] = {
    {IN_ACCESS, "ACCESS"}, {IN_MODIFY, "MODIFY"}, {IN_ATTRIB, "ATTRIB"},
    {IN_CLOSE_WRITE, "CLOSE_WRITE"}, {IN_CLOSE_NOWRITE, "CLOSE_NOWRITE"}, {IN_OPEN, "OPEN"},
    {IN_MOVED_FROM, "MOVED_FROM"}, {IN_MOVED_TO, "MOVED_TO"}, {IN_CREATE, "CREATE"},
    {IN_DELETE, "DELETE"}, {IN_DELETE_SELF, "DELETE_SELF"}, {IN_MOVE_SELF, "MOVE_SELF"},
    {IN_UNMOUNT, "UNMOUNT"}, {IN_Q_OVERFLOW, "Q_OVERFLOW"}, {IN_IGNORED, "IGNORED"},
    {IN_ISDIR, "ISDIR"},
};

static void print_mask(unsigned m) {
    int first = 1;
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (m & NAMES[i].bit) {
            printf("%s%s", first ? "" : "|", NAMES[i].name);
            first = 0;
            m &= ~NAMES[i].bit;
        }
    if (m) printf("%s0x%x", first ? "" : "|", m);
}

static unsigned last_cookie;

// Reads and prints every queued event (the instance must be non-blocking).
static void drain(const char *label, int fd) {
    char buf[65536] __attribute__((aligned(8)));
    printf("%s:\n", label);
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno != EAGAIN) printf("  read: %s\n", errname(errno));
            return;
        }
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            printf("  wd=%d ", e->wd);
            print_mask(e->mask);
            if (e->cookie == 0) {
                printf(" cookie=0");
            } else {
                printf(" cookie=%s", e->cookie == last_cookie ? "same" : "new");
                last_cookie = e->cookie;
            }
            if (e->len) printf(" name=%s", e->name);
            printf("\n");
            p += sizeof *e + e->len;
        }
    }
}

static char dir[64];

static char *at(const char *name) {
    static char paths[4][128];
    static int i;
    char *p = paths[i++ % 4];
    snprintf(p, 128, "%s/%s", dir, name);
    return p;
}

static void on_alarm(int s) { (void)s; }

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "exit") == 0) return 0;
    setvbuf(stdout, NULL, _IONBF, 0);
    strcpy(dir, "/tmp/inotify-XXXXXX");
    if (!mkdtemp(dir)) return 1;

    // Instances and their flags.
    TRY("init1 bad flags", syscall(SYS_inotify_init1, 0x10));
    int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    printf("init1 cloexec=%d nonblock=%d\n", fcntl(in, F_GETFD) & FD_CLOEXEC,
           !!(fcntl(in, F_GETFL) & O_NONBLOCK));
    int plain = syscall(SYS_inotify_init);
    printf("init ok=%d cloexec=%d nonblock=%d\n", plain >= 0, fcntl(plain, F_GETFD) & FD_CLOEXEC,
           !!(fcntl(plain, F_GETFL) & O_NONBLOCK));
    close(plain);

    // Arguments add_watch refuses.
    int pfd[2];
    pipe(pfd);
    TRY("zero mask", inotify_add_watch(in, dir, 0));
    TRY("unknown bits only", inotify_add_watch(in, dir, 0x00100000));
    TRY("add and create", inotify_add_watch(in, dir, IN_MODIFY | IN_MASK_ADD | IN_MASK_CREATE));
    TRY("bad fd", inotify_add_watch(-1, dir, IN_MODIFY));
    TRY("closed fd", inotify_add_watch(999, dir, IN_MODIFY));
    TRY("not inotify", inotify_add_watch(pfd[0], dir, IN_MODIFY));
    TRY("missing", inotify_add_watch(in, at("missing"), IN_MODIFY));
    TRY("wild path", inotify_add_watch(in, (char *)8, IN_MODIFY));
    TRY("rm bad wd", inotify_rm_watch(in, 12345));
    TRY("rm not inotify", inotify_rm_watch(pfd[0], 1));
    TRY("read wild buffer (empty)", read(in, (char *)8, 4096));

    // Watching needs read permission.
    mkdir(at("private"), 0700);
    pid_t nobody = fork();
    if (nobody == 0) {
        if (setuid(65534) != 0) _exit(1);
        TRY("watch without read permission", inotify_add_watch(in, at("private"), IN_MODIFY));
        _exit(0);
    }
    waitpid(nobody, NULL, 0);
    rmdir(at("private"));

    // Watch descriptors: one per file.
    int wd = inotify_add_watch(in, dir, IN_ALL_EVENTS);
    printf("dir wd=%d again=%d via dot=%d\n", wd, inotify_add_watch(in, dir, IN_ALL_EVENTS),
           inotify_add_watch(in, at("."), IN_ALL_EVENTS));
    TRY("mask create on watched", inotify_add_watch(in, dir, IN_ALL_EVENTS | IN_MASK_CREATE));
    TRY("read empty", read(in, (char[64]){0}, 64));

    // What each operation reports on the directory.
    int fd = open(at("a"), O_CREAT | O_WRONLY, 0644);
    write(fd, "xy", 2);
    write(fd, "z", 1); // folded into the previous MODIFY
    close(fd);
    drain("create+write", in);
    close(open(at("a"), O_WRONLY | O_TRUNC));
    close(open(at("a"), O_CREAT | O_WRONLY | O_APPEND, 0644));
    drain("truncated and reopened", in);
    fd = open(at("a"), O_RDONLY);
    char c;
    read(fd, &c, 1);
    read(fd, &c, 1);
    pread(fd, &c, 1, 0);
    close(fd);
    drain("read", in);
    chmod(at("a"), 0600);
    truncate(at("a"), 1);
    utimes(at("a"), NULL);
    struct timespec ts[2] = {{0, UTIME_OMIT}, {5, 0}};
    utimensat(AT_FDCWD, at("a"), ts, 0);
    chown(at("a"), -1, -1);
    drain("attributes", in);
    mkdir(at("sub"), 0755);
    symlink("a", at("l"));
    mknod(at("fifo"), S_IFIFO | 0644, 0);
    link(at("a"), at("b"));
    int sock = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", at("sock"));
    bind(sock, (struct sockaddr *)&sun, sizeof sun);
    close(sock);
    drain("creations", in);
    fd = open(at("sub"), O_RDONLY | O_DIRECTORY);
    char dents[4096];
    syscall(SYS_getdents64, fd, dents, sizeof dents);
    close(fd);
    drain("subdirectory listed", in);
    rename(at("a"), at("c"));
    rename(at("sub"), at("sub2"));
    rename(at("b"), at("c")); // b and c are the same file: nothing happens
    drain("renames", in);
    unlink(at("b"));
    unlink(at("l"));
    unlink(at("fifo"));
    unlink(at("sock"));
    rmdir(at("sub2"));
    drain("removals", in);

    // The record format: names padded with NULs to 16 bytes, FIONREAD, small buffers.
    close(open(at("sixteen-chars-xx"), O_CREAT | O_RDONLY, 0644));
    int avail = -1;
    ioctl(in, FIONREAD, &avail);
    printf("FIONREAD=%d\n", avail);
    TRY("read 16-byte buffer", read(in, (char[16]){0}, 16));
    char rec[256] __attribute__((aligned(8)));
    memset(rec, 0x55, sizeof rec);
    ssize_t n = read(in, rec, 48 + 15); // the first record fits, the second does not
    struct inotify_event *e = (struct inotify_event *)rec;
    int nul = 1;
    for (unsigned i = strlen(e->name); i < e->len; i++) nul &= rec[16 + i] == 0;
    printf("read %zd: len=%u padded-with-nul=%d\n", n, e->len, nul);
    drain("rest", in);
    unlink(at("sixteen-chars-xx"));
    drain("unlinked", in);

    // A file's own watch: events without names, then its removal.
    int fin = inotify_init1(IN_NONBLOCK);
    int fwd = inotify_add_watch(fin, at("c"), IN_ALL_EVENTS);
    TRY("onlydir on a file", inotify_add_watch(fin, at("c"), IN_ALL_EVENTS | IN_ONLYDIR));
    fd = open(at("c"), O_WRONLY);
    write(fd, "1", 1);
    close(fd);
    chmod(at("c"), 0644);
    rename(at("c"), at("d"));
    unlink(at("d"));
    printf("file wd=%d\n", fwd);
    drain("file watch", fin);
    TRY("rm after deletion", inotify_rm_watch(fin, fwd));
    drain("dir after file removal", in);

    // Link counts: a second name, its removal, then the file replaced by a rename.
    int lin = inotify_init1(IN_NONBLOCK);
    close(open(at("x"), O_CREAT | O_RDONLY, 0644));
    close(open(at("y"), O_CREAT | O_RDONLY, 0644));
    inotify_add_watch(lin, at("x"), IN_ALL_EVENTS);
    link(at("x"), at("x2"));
    unlink(at("x2"));
    drain("second name added and removed", lin);
    rename(at("y"), at("x"));
    drain("replaced by a rename", lin);
    unlink(at("x"));
    close(lin);
    drain("dir meanwhile", in);

    // An open file renamed (as log rotation does) reports under its new name.
    mkdir(at("rot"), 0755);
    fd = open(at("app.log"), O_CREAT | O_WRONLY, 0644);
    int rot = inotify_init1(IN_NONBLOCK);
    inotify_add_watch(rot, dir, IN_MODIFY | IN_CLOSE_WRITE | IN_MOVE);
    inotify_add_watch(rot, at("rot"), IN_MODIFY | IN_CLOSE_WRITE | IN_MOVE);
    write(fd, "1", 1);
    rename(at("app.log"), at("app.log.1"));
    write(fd, "2", 1);
    rename(at("app.log.1"), at("rot/old"));
    write(fd, "3", 1);
    close(fd);
    drain("rotated while open", rot);
    close(rot);
    unlink(at("rot/old"));
    rmdir(at("rot"));
    drain("dir meanwhile", in);

    // Children used after their removal: reported unless IN_EXCL_UNLINK.
    int keep = inotify_init1(IN_NONBLOCK), excl = inotify_init1(IN_NONBLOCK);
    inotify_add_watch(keep, dir, IN_MODIFY | IN_DELETE | IN_CLOSE_WRITE);
    inotify_add_watch(excl, dir, IN_MODIFY | IN_DELETE | IN_CLOSE_WRITE | IN_EXCL_UNLINK);
    fd = open(at("gone"), O_CREAT | O_WRONLY, 0644);
    int watched = inotify_init1(IN_NONBLOCK);
    inotify_add_watch(watched, at("gone"), IN_ALL_EVENTS);
    write(fd, "1", 1);
    unlink(at("gone"));
    drain("unlinked while open", watched);
    write(fd, "2", 1);
    close(fd);
    drain("closed after unlink", watched);
    close(watched);
    drain("used after unlink", keep);
    drain("used after unlink, IN_EXCL_UNLINK", excl);
    close(keep);
    close(excl);
    drain("dir meanwhile", in);

    // A program run from a watched directory: opened, read, closed.
    int src = open("/proc/self/exe", O_RDONLY), dst = open(at("prog"), O_CREAT | O_WRONLY, 0755);
    char copy[65536];
    while ((n = read(src, copy, sizeof copy)) > 0) write(dst, copy, n);
    close(src);
    close(dst);
    int ex = inotify_init1(IN_NONBLOCK);
    inotify_add_watch(ex, dir, IN_ALL_EVENTS);
    pid_t runner = fork();
    if (runner == 0) {
        execl(at("prog"), "prog", "exit", (char *)NULL);
        _exit(9);
    }
    int status = 0;
    waitpid(runner, &status, 0);
    printf("program ran: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    drain("program run", ex);
    close(ex);
    unlink(at("prog"));
    drain("dir meanwhile", in);

    // Symlinks: IN_DONT_FOLLOW watches the link itself.
    close(open(at("t"), O_CREAT | O_RDONLY, 0644));
    symlink("t", at("tl"));
    int w1 = inotify_add_watch(fin, at("tl"), IN_ATTRIB);
    int w2 = inotify_add_watch(fin, at("tl"), IN_ATTRIB | IN_DONT_FOLLOW);
    int w3 = inotify_add_watch(fin, at("t"), IN_ATTRIB);
    printf("follow=%d dont_follow differs=%d target same=%d\n", w1 > 0, w2 != w1, w3 == w1);
    TRY("rm watch", inotify_rm_watch(fin, w2));
    drain("removed watch", fin);

    // Masks: replaced, added to, one-shot.
    w1 = inotify_add_watch(fin, at("t"), IN_MODIFY);
    fd = open(at("t"), O_WRONLY);
    write(fd, "1", 1);
    chmod(at("t"), 0600);
    drain("modify only", fin);
    inotify_add_watch(fin, at("t"), IN_ATTRIB | IN_MASK_ADD);
    write(fd, "1", 1);
    chmod(at("t"), 0644);
    drain("mask added", fin);
    inotify_add_watch(fin, at("t"), IN_ATTRIB);
    write(fd, "1", 1);
    chmod(at("t"), 0600);
    drain("mask replaced", fin);
    inotify_add_watch(fin, at("t"), IN_MODIFY | IN_ONESHOT);
    write(fd, "1", 1);
    chmod(at("t"), 0644);
    write(fd, "1", 1);
    drain("oneshot", fin);
    close(fd);
    drain("dir meanwhile", in);

    // Readiness: poll and epoll.
    struct pollfd p = {fin, POLLIN, 0};
    printf("poll empty=%d\n", poll(&p, 1, 0));
    w1 = inotify_add_watch(fin, at("t"), IN_ATTRIB);
    chmod(at("t"), 0600);
    int ready = poll(&p, 1, 0);
    printf("poll ready=%d revents=%d\n", ready, p.revents);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 7}, got;
    epoll_ctl(ep, EPOLL_CTL_ADD, fin, &ev);
    ready = epoll_wait(ep, &got, 1, 0);
    printf("epoll ready=%d data=%u\n", ready, got.data.u32);
    drain("drained", fin);
    printf("epoll empty=%d\n", epoll_wait(ep, &got, 1, 0));
    close(ep);

    // A blocking read woken by another process, then one interrupted by a signal.
    int bl = inotify_init();
    inotify_add_watch(bl, dir, IN_CREATE);
    pid_t child = fork();
    if (child == 0) {
        usleep(100000);
        close(open(at("from-child"), O_CREAT | O_RDONLY, 0644));
        _exit(0);
    }
    char big[4096] __attribute__((aligned(8)));
    n = read(bl, big, sizeof big);
    e = (struct inotify_event *)big;
    printf("blocking read %zd: ", n);
    print_mask(e->mask);
    printf(" name=%s\n", e->name);
    waitpid(child, NULL, 0);
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 0}, {0, 100000}};
    setitimer(ITIMER_REAL, &it, NULL);
    TRY("blocking read interrupted", read(bl, big, sizeof big));
    close(bl);

    TRY("rm dir watch", inotify_rm_watch(in, wd));
    drain("dir watch removed", in);

    // Overflow: distinct events past the limit end with one IN_Q_OVERFLOW.
    int max = 0;
    FILE *f = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
    if (!f || fscanf(f, "%d", &max) != 1) return 2;
    fclose(f);
    int ov = inotify_init1(IN_NONBLOCK);
    inotify_add_watch(ov, at("t"), IN_MODIFY | IN_ACCESS);
    fd = open(at("t"), O_RDWR);
    for (int i = 0; i < max + 10; i++) {
        if (i % 2) pwrite(fd, "1", 1, 0);
        else pread(fd, &c, 1, 0);
    }
    close(fd);
    int count = 0, overflows = 0, last_overflow = 0;
    for (;;) {
        n = read(ov, big, sizeof big);
        if (n <= 0) break;
        for (char *q = big; q < big + n;) {
            struct inotify_event *x = (struct inotify_event *)q;
            count++;
            last_overflow = x->mask == IN_Q_OVERFLOW && x->wd == -1;
            overflows += last_overflow;
            q += sizeof *x + x->len;
        }
    }
    printf("overflow: events=max+%d overflows=%d last=%d\n", count - max, overflows, last_overflow);
    close(ov);

    // Instances that go take their watches with them.
    int ok = 1;
    for (int i = 0; i < 300 && ok; i++) {
        int t = inotify_init();
        ok = t >= 0 && inotify_add_watch(t, dir, IN_ALL_EVENTS) == 1 &&
             inotify_add_watch(t, at("t"), IN_ALL_EVENTS) == 2;
        close(t);
    }
    printf("300 instances with watches opened and closed: %d\n", ok);

    // Hostile arguments. (A read into a bad buffer loses the event it was to return.)
    chmod(at("t"), 0644);
    TRY("read wild buffer", read(fin, (char *)8, 4096));
    TRY("read after fault", read(fin, big, sizeof big));
    TRY("huge mask", inotify_add_watch(fin, dir, 0xffffffff));
    TRY("unknown bit with known ones", inotify_add_watch(fin, dir, IN_MODIFY | 0x1000));
    TRY("every known bit but create", inotify_add_watch(fin, dir, 0xe700efff) > 0);
    close(fin);

    // Clean up: the directory watch sees the last removals, then its own.
    TRY("watch dir again", inotify_add_watch(in, dir, IN_ALL_EVENTS));
    unlink(at("t"));
    unlink(at("tl"));
    unlink(at("from-child"));
    rmdir(dir);
    drain("end", in);
    close(in);
    printf("done\n");
    return 0;
}
