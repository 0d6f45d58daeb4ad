/* PID namespaces made by the program itself (unshare and clone with CLONE_NEWPID), printed so
 * that a run in the Sentry can be compared with a native one (as root, with CAP_SYS_ADMIN):
 * ids inside and outside, the init's protection from its own namespace's signals, orphans
 * adopted by the init, waitid's si_pid on both sides, and the namespace emptied when its init
 * exits. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err(long r) {
    static char b[32];
    if (r >= 0) return "ok";
    switch (errno) {
    case EINVAL: return "EINVAL";
    case ESRCH: return "ESRCH";
    case EPERM: return "EPERM";
    case ECHILD: return "ECHILD";
    }
    snprintf(b, sizeof b, "errno%d", errno);
    return b;
}

/* Waits for a byte on `fd` (a step of another process). */
static void step(int fd) {
    char c;
    if (read(fd, &c, 1) != 1) _exit(90);
}

static void go(int fd) {
    if (write(fd, "x", 1) != 1) _exit(91);
}

/* The namespace's init: its own ids, its protection, a child and an orphan. `hold` is kept
 * open by a process that lives until the namespace ends. */
static int init_main(int hold) {
    printf("init: pid=%d ppid=%d pgid=%d sid=%d\n", getpid(), getppid(), getpgid(0), getsid(0));
    fflush(stdout);
    printf("init: kill(self, SIGTERM)=%s then alive\n", err(kill(getpid(), SIGTERM)));
    printf("init: kill(1, SIGKILL)=%s then alive\n", err(kill(1, SIGKILL)));
    fflush(stdout);
    int p[2], q[2]; /* init to orphan, orphan to init */
    if (pipe(p) || pipe(q)) return 80;
    pid_t c = fork();
    if (c == 0) {
        printf("child: pid=%d ppid=%d\n", getpid(), getppid());
        printf("child: kill(1, SIGTERM)=%s\n", err(kill(1, SIGTERM)));
        fflush(stdout);
        pid_t o = fork();
        if (o == 0) {
            /* The orphan: once its parent has gone, names its new parent. */
            step(p[0]);
            printf("orphan: pid=%d ppid=%d\n", getpid(), getppid());
            fflush(stdout);
            go(q[1]);
            for (;;) pause(); /* until the namespace ends; `hold` stays open */
        }
        _exit(0);
    }
    siginfo_t si = {0};
    printf("init: waitid=%s", err(waitid(P_PID, c, &si, WEXITED)));
    printf(" si_pid=%d status=%d\n", si.si_pid, si.si_status);
    fflush(stdout);
    go(p[1]);
    step(q[0]);
    int sid = setsid();
    printf("init: setsid=%d pgid=%d\n", sid, getpgid(0));
    fflush(stdout);
    (void)hold;
    return 7;
}

static void run_init(pid_t pid, int hold[2], const char *how) {
    close(hold[1]);
    siginfo_t si = {0};
    printf("%s: waitid=%s", how, err(waitid(P_PID, pid, &si, WEXITED)));
    printf(" si_pid_matches=%d status=%d\n", si.si_pid == pid, si.si_status);
    char c;
    /* Every process of the namespace is gone: nobody holds the pipe any more. */
    printf("%s: namespace emptied: read=%zd\n", how, read(hold[0], &c, 1));
    close(hold[0]);
    fflush(stdout);
}

static char stack[1 << 16];
static int hold_fd;

static int cloned(void *arg) {
    (void)arg;
    return init_main(hold_fd);
}

/* unshare(CLONE_NEWPID): the caller stays where it is; its next child is the new namespace's
 * init, and once that has exited the namespace takes no one else. */
static void by_unshare(void) {
    int hold[2];
    pid_t me = getpid();
    printf("unshare=%s", err(unshare(CLONE_NEWPID)));
    printf(" same pid=%d again=%s\n", getpid() == me, err(unshare(CLONE_NEWPID)));
    if (pipe(hold)) _exit(1);
    pid_t c = fork();
    if (c == 0) {
        close(hold[0]);
        _exit(init_main(hold[1]));
    }
    run_init(c, hold, "unshare");
    pid_t late = fork();
    if (late == 0) _exit(0);
    printf("fork after the init's exit=%s\n", late < 0 ? err(late) : "ok");
    if (late > 0) waitpid(late, NULL, 0);
    printf("clone(NEWPID) after unshare=%s\n",
           err(clone(cloned, stack + sizeof stack, CLONE_NEWPID | SIGCHLD, NULL)));
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* In a helper, so that this process's own children stay in its namespace. */
    pid_t helper = fork();
    if (helper == 0) {
        by_unshare();
        _exit(0);
    }
    waitpid(helper, NULL, 0);

    int hold[2];
    if (pipe(hold)) return 1;
    hold_fd = hold[1];
    pid_t c = clone(cloned, stack + sizeof stack, CLONE_NEWPID | SIGCHLD, NULL);
    if (c < 0) {
        printf("clone(NEWPID)=%s\n", err(c));
        return 1;
    }
    run_init(c, hold, "clone");
    printf("clone(NEWPID|THREAD)=%s\n",
           err(clone(cloned, stack + sizeof stack,
                     CLONE_NEWPID | CLONE_THREAD | CLONE_SIGHAND | CLONE_VM, NULL)));
    return 0;
}
