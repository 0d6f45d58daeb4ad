/* Advisory locks across processes: POSIX record locks (F_SETLK/F_SETLKW/F_GETLK), OFD locks
 * and flock, with the results printed so that a run in the Sentry can be compared with a
 * native one. Process ids are printed only as "is the parent" / "is the child". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *path = "/tmp/lockfile"; /* or argv[1] */
static pid_t parent;

static const char *err(int r) {
    static char b[32];
    if (r == 0) return "ok";
    switch (errno) {
    case EAGAIN: return "EAGAIN";
    case EACCES: return "EACCES";
    case EDEADLK: return "EDEADLK";
    case EINTR: return "EINTR";
    case EINVAL: return "EINVAL";
    case EBADF: return "EBADF";
    case EFAULT: return "EFAULT";
    case EOVERFLOW: return "EOVERFLOW";
    }
    snprintf(b, sizeof b, "errno%d", errno);
    return b;
}

static int lk(int fd, int cmd, short type, short whence, off_t start, off_t len) {
    struct flock f = {.l_type = type, .l_whence = whence, .l_start = start, .l_len = len};
    return fcntl(fd, cmd, &f);
}

/* F_GETLK (or F_OFD_GETLK) for a write lock over [start, start+len). */
static void show(const char *what, int fd, int cmd, off_t start, off_t len, pid_t child) {
    struct flock f = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    int r = fcntl(fd, cmd, &f);
    if (r != 0) {
        printf("%s: getlk %s\n", what, err(r));
        return;
    }
    if (f.l_type == F_UNLCK) {
        printf("%s: unlocked\n", what);
        return;
    }
    const char *who = f.l_pid == parent ? "parent" : f.l_pid == child ? "child"
                      : f.l_pid == -1 ? "ofd" : "other";
    printf("%s: %s start=%lld len=%lld by %s\n", what, f.l_type == F_WRLCK ? "WR" : "RD",
           (long long)f.l_start, (long long)f.l_len, who);
}

static int openf(int flags) { return open(path, flags); }

static void wait_child(pid_t c) {
    int st;
    waitpid(c, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) printf("child failed: %x\n", st);
}

static void on_alarm(int s) { (void)s; }

static void posix_locks(void) {
    int fd = openf(O_RDWR);
    printf("parent lock [0,10): %s\n", err(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 0, 10)));
    pid_t c = fork();
    if (c == 0) {
        int fd = openf(O_RDWR);
        show("child sees", fd, F_GETLK, 5, 1, 0);
        printf("child lock [5,6): %s\n", err(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 5, 1)));
        printf("child read lock [20,30): %s\n", err(lk(fd, F_SETLK, F_RDLCK, SEEK_SET, 20, 10)));
        _exit(0);
    }
    wait_child(c);
    show("after child exit", fd, F_GETLK, 20, 10, c);

    /* A child blocked in F_SETLKW gets the lock when the parent unlocks. */
    int p[2];
    pipe(p);
    c = fork();
    if (c == 0) {
        int fd = openf(O_RDWR);
        write(p[1], "x", 1);
        int r = lk(fd, F_SETLKW, F_WRLCK, SEEK_SET, 0, 10);
        printf("child waited for [0,10): %s\n", err(r));
        show("child then sees from its own lock", fd, F_GETLK, 0, 10, 0);
        _exit(0);
    }
    char x;
    read(p[0], &x, 1);
    usleep(200000);
    show("parent sees its own lock", fd, F_GETLK, 0, 10, c);
    int r = lk(fd, F_SETLK, F_UNLCK, SEEK_SET, 0, 10);
    wait_child(c); /* printed after the child's lines, which may come first */
    printf("parent unlock: %s\n", err(r));

    /* Closing any descriptor of the file drops the process's locks on it. */
    lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 0, 0);
    c = fork();
    if (c == 0) {
        show("child sees whole-file lock", openf(O_RDONLY), F_GETLK, 50, 1, 0);
        _exit(0);
    }
    wait_child(c);
    close(openf(O_RDONLY));
    c = fork();
    if (c == 0) {
        show("child after parent closed another fd", openf(O_RDONLY), F_GETLK, 50, 1, 0);
        _exit(0);
    }
    wait_child(c);

    /* Splitting: unlocking the middle of a range leaves two. */
    lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 0, 100);
    lk(fd, F_SETLK, F_UNLCK, SEEK_SET, 40, 20);
    lk(fd, F_SETLK, F_RDLCK, SEEK_SET, 10, 5);
    c = fork();
    if (c == 0) {
        int fd = openf(O_RDONLY);
        show("hole", fd, F_GETLK, 45, 1, 0);
        show("right part", fd, F_GETLK, 50, 100, 0);
        show("read part", fd, F_GETLK, 11, 2, 0);
        struct flock f = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 5};
        fcntl(fd, F_GETLK, &f);
        printf("read lock vs read part: %s\n", f.l_type == F_UNLCK ? "unlocked" : "locked");
        _exit(0);
    }
    wait_child(c);
    lk(fd, F_SETLK, F_UNLCK, SEEK_SET, 0, 0);

    /* Deadlock: the parent holds A and waits for B, which the child holds while waiting for A. */
    lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 0, 1);
    c = fork();
    if (c == 0) {
        int fd = openf(O_RDWR);
        lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 1, 1);
        write(p[1], "x", 1);
        int r = lk(fd, F_SETLKW, F_WRLCK, SEEK_SET, 0, 1);
        printf("child got A after the parent gave up: %s\n", err(r));
        _exit(0);
    }
    read(p[0], &x, 1);
    usleep(500000); /* the child is blocked waiting for A by now */
    printf("parent waits for B: %s\n", err(lk(fd, F_SETLKW, F_WRLCK, SEEK_SET, 1, 1)));
    lk(fd, F_SETLK, F_UNLCK, SEEK_SET, 0, 1);
    wait_child(c);

    /* A signal interrupts F_SETLKW (handler without SA_RESTART). */
    lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 0, 1);
    c = fork();
    if (c == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;
        sigaction(SIGALRM, &sa, 0);
        struct itimerval it = {.it_value = {.tv_usec = 200000}};
        setitimer(ITIMER_REAL, &it, 0);
        int r = lk(openf(O_RDWR), F_SETLKW, F_WRLCK, SEEK_SET, 0, 1);
        printf("child interrupted: %s\n", err(r));
        _exit(0);
    }
    wait_child(c);
    lk(fd, F_SETLK, F_UNLCK, SEEK_SET, 0, 0);
    close(p[0]);
    close(p[1]);
    close(fd);
}

static void ofd_locks(void) {
    int a = openf(O_RDWR), b = openf(O_RDWR);
    printf("ofd a [0,10): %s\n", err(lk(a, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 10)));
    printf("ofd b [5,6) same process: %s\n", err(lk(b, F_OFD_SETLK, F_WRLCK, SEEK_SET, 5, 1)));
    show("ofd b sees", b, F_OFD_GETLK, 5, 1, 0);
    printf("posix via b [5,6): %s\n", err(lk(b, F_SETLK, F_WRLCK, SEEK_SET, 5, 1)));
    struct flock f = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1, .l_pid = 1};
    printf("ofd with l_pid set: %s\n", err(fcntl(a, F_OFD_SETLK, &f)));
    pid_t c = fork();
    if (c == 0) {
        printf("child via inherited a: %s\n", err(lk(a, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 20)));
        printf("child via own open: %s\n",
               err(lk(openf(O_RDWR), F_OFD_SETLK, F_WRLCK, SEEK_SET, 15, 1)));
        _exit(0);
    }
    wait_child(c);
    show("after child (its change stays, same description)", b, F_OFD_GETLK, 15, 1, 0);
    close(a);
    printf("ofd b after a closed: %s\n", err(lk(b, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 10)));
    close(b);
}

static void bsd_flock(void) {
    int a = openf(O_RDONLY);
    printf("flock a EX: %s\n", err(flock(a, LOCK_EX)));
    int d = dup(a);
    pid_t c = fork();
    if (c == 0) {
        printf("child own open EX|NB: %s\n", err(flock(openf(O_RDONLY), LOCK_EX | LOCK_NB)));
        printf("child own open SH|NB: %s\n", err(flock(openf(O_RDONLY), LOCK_SH | LOCK_NB)));
        printf("child inherited EX|NB: %s\n", err(flock(a, LOCK_EX | LOCK_NB)));
        _exit(0);
    }
    wait_child(c);
    close(a);
    int e = openf(O_RDONLY);
    printf("after closing one of two fds: %s\n", err(flock(e, LOCK_EX | LOCK_NB)));
    close(d);
    printf("after closing the last: %s\n", err(flock(e, LOCK_EX | LOCK_NB)));
    printf("convert to SH: %s\n", err(flock(e, LOCK_SH)));
    int g = openf(O_RDONLY);
    printf("second SH: %s\n", err(flock(g, LOCK_SH | LOCK_NB)));
    printf("EX while shared: %s\n", err(flock(g, LOCK_EX | LOCK_NB)));
    printf("unlock: %s\n", err(flock(e, LOCK_UN)));
    printf("EX now: %s\n", err(flock(g, LOCK_EX | LOCK_NB)));
    /* flock and POSIX locks do not interact. */
    printf("posix under flock: %s\n", err(lk(openf(O_RDWR), F_SETLK, F_WRLCK, SEEK_SET, 0, 0)));
    close(e);
    close(g);
}

static void hostile(void) {
    int fd = openf(O_RDWR), ro = openf(O_RDONLY), wo = openf(O_WRONLY);
    printf("bad whence: %s\n", err(lk(fd, F_SETLK, F_WRLCK, 7, 0, 1)));
    printf("negative whence: %s\n", err(lk(fd, F_SETLK, F_WRLCK, -1, 0, 1)));
    printf("bad type: %s\n", err(lk(fd, F_SETLK, 9, SEEK_SET, 0, 1)));
    printf("getlk unlock: %s\n", err(lk(fd, F_GETLK, F_UNLCK, SEEK_SET, 0, 1)));
    printf("negative start: %s\n", err(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, -5, 1)));
    printf("huge length: %s\n", err(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 1, LLONG_MAX)));
    printf("max start: %s\n", err(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, LLONG_MAX, 1)));
    printf("negative length below 0: %s\n", err(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 3, -4)));
    printf("negative length: %s\n", err(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 3, -3)));
    printf("min length: %s\n", err(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 3, LLONG_MIN)));
    printf("from end: %s\n", err(lk(fd, F_SETLK, F_WRLCK, SEEK_END, -10, 5)));
    printf("before start from end: %s\n", err(lk(fd, F_SETLK, F_WRLCK, SEEK_END, -1000, 5)));
    lseek(fd, 30, SEEK_SET);
    printf("from cur: %s\n", err(lk(fd, F_SETLK, F_RDLCK, SEEK_CUR, -30, 1)));
    printf("bad fd: %s\n", err(lk(999, F_SETLK, F_WRLCK, SEEK_SET, 0, 1)));
    printf("negative fd: %s\n", err(lk(-3, F_GETLK, F_WRLCK, SEEK_SET, 0, 1)));
    printf("null flock: %s\n", err(fcntl(fd, F_SETLK, (void *)0)));
    printf("wild flock: %s\n", err(fcntl(fd, F_GETLK, (void *)0x10)));
    printf("read lock on write-only: %s\n", err(lk(wo, F_SETLK, F_RDLCK, SEEK_SET, 0, 1)));
    printf("write lock on read-only: %s\n", err(lk(ro, F_SETLK, F_WRLCK, SEEK_SET, 0, 1)));
    printf("unlock on read-only: %s\n", err(lk(ro, F_SETLK, F_UNLCK, SEEK_SET, 0, 1)));
    printf("flock bad op: %s\n", err(flock(fd, 0)));
    printf("flock SH|EX: %s\n", err(flock(fd, LOCK_SH | LOCK_EX)));
    printf("flock huge op: %s\n", err(flock(fd, 0x7fffffff)));
    printf("flock bad fd: %s\n", err(flock(999, LOCK_EX)));
    printf("flock UN|NB unlocked: %s\n", err(flock(fd, LOCK_UN | LOCK_NB)));
    int o = open(path, O_PATH);
    printf("O_PATH flock: %s\n", err(flock(o, LOCK_EX)));
    printf("O_PATH setlk: %s\n", err(lk(o, F_SETLK, F_UNLCK, SEEK_SET, 0, 1)));
    /* Many small locks, then one unlock of everything. */
    int n = 0;
    for (int i = 0; i < 2000; i += 2) n += lk(fd, F_SETLK, F_WRLCK, SEEK_SET, i, 1) == 0;
    printf("many locks: %d, unlock all: %s\n", n, err(lk(fd, F_SETLK, F_UNLCK, SEEK_SET, 0, 0)));
    close(fd);
    close(ro);
    close(wo);
    close(o);
}

int main(int argc, char **argv) {
    if (argc > 1) path = argv[1];
    setvbuf(stdout, 0, _IONBF, 0);
    parent = getpid();
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    char buf[100];
    memset(buf, 'x', sizeof buf);
    write(fd, buf, sizeof buf);
    close(fd);
    posix_locks();
    ofd_locks();
    bsd_flock();
    hostile();
    printf("done\n");
    return 0;
}
