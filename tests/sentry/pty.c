/* Pseudo-terminals: the pty calls of the C library, the line discipline, and a child on the
 * slave as its controlling terminal (window size, ^C, /dev/tty, raw mode, busybox's stty and
 * tty), printed so that a run in the Sentry can be compared with a native one.
 * argv[1]: busybox's path. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static const char *err(long r) {
    static char b[32];
    if (r >= 0) return "ok";
    switch (errno) {
    case EIO: return "EIO";
    case ENOTTY: return "ENOTTY";
    case EAGAIN: return "EAGAIN";
    case EPERM: return "EPERM";
    case ENXIO: return "ENXIO";
    }
    snprintf(b, sizeof b, "errno%d", errno);
    return b;
}

/* Bytes with control characters made visible. */
static void show(const char *what, const char *p, long n) {
    printf("%s: ", what);
    if (n < 0) {
        printf("%s\n", err(n));
        return;
    }
    for (long i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (c == '\r') printf("\\r");
        else if (c == '\n') printf("\\n");
        else if (c < 0x20 || c == 0x7f) printf("^%c", c ^ 0x40);
        else putchar(c);
    }
    printf("\n");
}

static long settle_read(int fd, char *b, long cap) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 2000) <= 0) return -1;
    usleep(20000); /* let the rest of a burst arrive */
    return read(fd, b, cap);
}

static void line_discipline(void) {
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    printf("posix_openpt: %s\n", err(m));
    char name[64];
    ptsname_r(m, name, sizeof name);
    printf("ptsname under /dev/pts: %d\n", !strncmp(name, "/dev/pts/", 9));
    int locked = -1;
    ioctl(m, TIOCGPTLCK, &locked);
    printf("locked=%d open while locked: %s\n", locked, err(open(name, O_RDWR | O_NOCTTY)));
    printf("grantpt: %s unlockpt: %s\n", err(grantpt(m)), err(unlockpt(m)));
    ioctl(m, TIOCGPTLCK, &locked);
    int s = open(name, O_RDWR | O_NOCTTY);
    printf("locked=%d open slave: %s\n", locked, err(s));
    struct stat a, b;
    fstat(s, &a);
    stat(name, &b);
    printf("slave: chr=%d major>=136 %d same as node %d\n", S_ISCHR(a.st_mode), major(a.st_rdev) >= 136,
           a.st_ino == b.st_ino && a.st_dev == b.st_dev && a.st_rdev == b.st_rdev);
    char tn[64] = "";
    ttyname_r(s, tn, sizeof tn);
    printf("isatty: %d ttyname matches: %d master isatty: %d\n", isatty(s), !strcmp(tn, name), isatty(m));
    struct termios t;
    tcgetattr(s, &t);
    printf("termios: %#x %#x %#x %#x vmin=%d veof=%d\n", t.c_iflag, t.c_oflag, t.c_cflag, t.c_lflag,
           t.c_cc[VMIN], t.c_cc[VEOF]);

    char buf[256];
    long n;
    write(m, "xy\x7fz\r", 5);
    n = read(s, buf, sizeof buf);
    show("canonical read", buf, n);
    n = settle_read(m, buf, sizeof buf);
    show("echo", buf, n);
    write(m, "partial", 7);
    int avail = -1;
    ioctl(s, FIONREAD, &avail);
    printf("FIONREAD of a partial line: %d\n", avail);
    write(m, "\x15", 1); /* kill the line */
    settle_read(m, buf, sizeof buf);
    write(m, "\x04", 1);
    n = read(s, buf, sizeof buf);
    printf("EOF at line start reads %ld\n", n);
    write(s, "a\nb", 3);
    n = settle_read(m, buf, sizeof buf);
    show("output", buf, n);

    struct termios raw = t;
    cfmakeraw(&raw);
    tcsetattr(s, TCSANOW, &raw);
    write(m, "abc\r\x03", 5);
    usleep(20000);
    n = read(s, buf, sizeof buf);
    show("raw read", buf, n);
    struct pollfd p = {m, POLLIN, 0};
    printf("raw echo: %d\n", poll(&p, 1, 100));
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    tcsetattr(s, TCSANOW, &raw);
    printf("VMIN=0 read: %ld\n", read(s, buf, sizeof buf));
    raw.c_cc[VTIME] = 2;
    tcsetattr(s, TCSANOW, &raw);
    printf("VTIME=2 read: %ld\n", read(s, buf, sizeof buf));
    write(s, "x\n", 2);
    n = settle_read(m, buf, sizeof buf);
    show("raw output", buf, n);
    tcsetattr(s, TCSANOW, &t);

    struct winsize w = {33, 111, 0, 0}, got;
    ioctl(m, TIOCSWINSZ, &w);
    ioctl(s, TIOCGWINSZ, &got);
    printf("winsize: %d %d\n", got.ws_row, got.ws_col);
    pid_t pg;
    printf("TIOCGPGRP, not our terminal: %s\n", err(ioctl(s, TIOCGPGRP, &pg)));
    printf("TIOCSCTTY, not a session leader: %s\n", err(ioctl(s, TIOCSCTTY, 0)));
    close(s);
    n = read(m, buf, sizeof buf);
    printf("master read, slave closed: %s\n", err(n));
    close(m);
}

/* The child's side: stdio on the slave, which is its controlling terminal. */
static volatile sig_atomic_t winch, intr;
static void on_winch(int s) { (void)s; winch = 1; }
static void on_int(int s) { (void)s; intr = 1; }

static void run(const char *busybox, const char *applet, const char *arg) {
    pid_t p = fork();
    if (p == 0) {
        execl(busybox, applet, arg, (char *)0);
        _exit(127);
    }
    waitpid(p, 0, 0);
}

static int child(const char *busybox) {
    setvbuf(stdout, 0, _IONBF, 0);
    run(busybox, "stty", "size");
    run(busybox, "tty", 0);
    printf("fg is me: %d sid is me: %d\n", tcgetpgrp(0) == getpgrp(), getsid(0) == getpid());
    pid_t sid = -1;
    ioctl(0, TIOCGSID, &sid);
    printf("TIOCGSID is me: %d\n", sid == getpid());
    int tty = open("/dev/tty", O_RDWR);
    printf("/dev/tty: %s\n", err(tty));
    write(tty, "via-dev-tty\n", 12);
    signal(SIGWINCH, on_winch);
    printf("armed-winch\n");
    while (!winch) pause();
    struct winsize w;
    ioctl(tty, TIOCGWINSZ, &w);
    printf("winch: %d %d\n", w.ws_row, w.ws_col);
    printf("ready-line\n");
    char line[64];
    long n = read(0, line, sizeof line);
    show("line", line, n);
    signal(SIGINT, on_int);
    printf("armed-int\n");
    while (!intr) pause();
    printf("got SIGINT\n");
    struct termios t, raw;
    tcgetattr(0, &t);
    raw = t;
    cfmakeraw(&raw);
    tcsetattr(0, TCSAFLUSH, &raw);
    printf("raw-mode\n");
    char b[8];
    n = 0;
    while (n < 3) {
        long r = read(0, b + n, 3 - n);
        if (r <= 0) break;
        n += r;
    }
    tcsetattr(0, TCSANOW, &t);
    show("raw input", b, n);
    close(tty);
    return 0;
}

/* The parent's side: drives the master and records what the terminal shows. */
static void session(const char *busybox) {
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    grantpt(m);
    unlockpt(m);
    char name[64];
    ptsname_r(m, name, sizeof name);
    struct winsize w = {33, 111, 0, 0};
    ioctl(m, TIOCSWINSZ, &w);
    pid_t p = fork();
    if (p == 0) {
        setsid();
        int s = open(name, O_RDWR); /* becomes the controlling terminal */
        dup2(s, 0);
        dup2(s, 1);
        dup2(s, 2);
        if (s > 2) close(s);
        close(m);
        execl("/proc/self/exe", "pty", "child", busybox, (char *)0);
        _exit(127);
    }
    static char all[8192];
    long len = 0;
    int stage = 0;
    /* Whole lines: printf writes a line's text and its newline separately. */
    const char *marks[] = {"armed-winch\r\n", "ready-line\r\n", "armed-int\r\n", "raw-mode\n"};
    for (;;) {
        struct pollfd pf = {m, POLLIN, 0};
        if (poll(&pf, 1, 10000) <= 0) {
            printf("session: timed out\n");
            break;
        }
        long n = read(m, all + len, sizeof all - 1 - len);
        if (n <= 0) {
            printf("session ends with: %s\n", n == 0 ? "EOF" : err(n));
            break;
        }
        len += n;
        all[len] = 0;
        while (stage < 4 && strstr(all, marks[stage])) {
            if (stage == 0) {
                struct winsize w2 = {40, 100, 0, 0};
                ioctl(m, TIOCSWINSZ, &w2);
            } else if (stage == 1) {
                write(m, "hello world\r", 12);
            } else if (stage == 2) {
                pid_t fg = 0;
                ioctl(m, TIOCGPGRP, &fg);
                printf("master sees child in the foreground: %d\n", fg == p);
                write(m, "\x03", 1);
            } else {
                write(m, "k\x03q", 3);
            }
            stage++;
        }
    }
    int st;
    waitpid(p, &st, 0);
    printf("child exit: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    /* Its session leader gone, the terminal is free for another session. */
    pid_t q = fork();
    if (q == 0) {
        setsid();
        int s = open(name, O_RDWR);
        printf("new session takes the terminal: %d\n", tcgetpgrp(s) == getpid());
        _exit(0);
    }
    waitpid(q, 0, 0);
    /* The pty's number differs between runs. */
    char *d = strstr(all, "/dev/pts/");
    if (d) {
        char *e = d + 9;
        while (*e >= '0' && *e <= '9') e++;
        memmove(d + 10, e, strlen(e) + 1);
        d[9] = 'N';
    }
    char *line = all;
    while (*line) {
        char *nl = strchr(line, '\n');
        long n = nl ? nl - line + 1 : (long)strlen(line);
        show("tty", line, n);
        line += n;
    }
    close(m);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "child")) return child(argv[2]);
    setvbuf(stdout, 0, _IONBF, 0);
    const char *busybox = argc > 1 ? argv[1] : "/bin/busybox";
    /* In a child: not a session leader, natively or as the sandbox's first process. */
    pid_t p = fork();
    if (p == 0) {
        line_discipline();
        _exit(0);
    }
    waitpid(p, 0, 0);
    session(busybox);
    printf("done\n");
    return 0;
}
