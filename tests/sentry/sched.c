/* Nice values, CPU affinity and sync, printed so that a run in the Sentry can be compared
 * with a native one (as root, like the sandbox's processes). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err(long r) {
    static char b[32];
    if (r >= 0) return "ok";
    switch (errno) {
    case EINVAL: return "EINVAL";
    case ESRCH: return "ESRCH";
    case EFAULT: return "EFAULT";
    case EBADF: return "EBADF";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    }
    snprintf(b, sizeof b, "errno%d", errno);
    return b;
}

/* The nice value /proc/self/stat reports (field 19). */
static int stat_nice(void) {
    char b[1024];
    int fd = open("/proc/self/stat", O_RDONLY);
    int n = read(fd, b, sizeof b - 1);
    close(fd);
    if (n <= 0) return 99;
    b[n] = 0;
    char *p = strrchr(b, ')');
    int field = 2;
    for (; p && *p; p++) {
        if (*p == ' ' && ++field == 19) return atoi(p + 1);
    }
    return 98;
}

static void prio(const char *what, int which, int who) {
    errno = 0;
    int r = getpriority(which, who);
    printf("%s: %d %s\n", what, r, errno ? err(-1) : "ok");
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    setpgid(0, 0); /* its own process group, natively too */
    prio("start", PRIO_PROCESS, 0);
    printf("set 5: %s\n", err(setpriority(PRIO_PROCESS, 0, 5)));
    prio("now", PRIO_PROCESS, 0);
    prio("by pid", PRIO_PROCESS, getpid());
    printf("stat nice: %d\n", stat_nice());
    printf("set 100: %s\n", err(setpriority(PRIO_PROCESS, 0, 100)));
    prio("clamped", PRIO_PROCESS, 0);
    printf("set -100 as root: %s\n", err(setpriority(PRIO_PROCESS, 0, -100)));
    prio("clamped low", PRIO_PROCESS, 0);
    printf("raw getpriority: %ld\n", syscall(SYS_getpriority, PRIO_PROCESS, 0));
    setpriority(PRIO_PROCESS, 0, 3);
    prio("pgrp", PRIO_PGRP, 0);
    prio("no such pid", PRIO_PROCESS, 999999);
    prio("negative pid", PRIO_PROCESS, -5);
    prio("bad which", 7, 0);
    prio("no such user", PRIO_USER, 54321);
    printf("set bad which: %s\n", err(setpriority(9, 0, 1)));
    printf("set no such pid: %s\n", err(setpriority(PRIO_PROCESS, 999999, 1)));
    pid_t c = fork();
    if (c == 0) {
        prio("child inherits", PRIO_PROCESS, 0);
        printf("child stat nice: %d\n", stat_nice());
        _exit(0);
    }
    waitpid(c, 0, 0);
    printf("parent sets child's: %s\n", err(setpriority(PRIO_PROCESS, c, 1)));

    cpu_set_t all, one, got;
    CPU_ZERO(&all);
    printf("getaffinity: %s\n", err(sched_getaffinity(0, sizeof all, &all)));
    printf("every online cpu: %s\n",
           CPU_COUNT(&all) == sysconf(_SC_NPROCESSORS_ONLN) ? "yes" : "no");
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    printf("set {0}: %s\n", err(sched_setaffinity(0, sizeof one, &one)));
    sched_getaffinity(0, sizeof got, &got);
    printf("now count=%d has0=%d\n", CPU_COUNT(&got), CPU_ISSET(0, &got));
    CPU_ZERO(&one);
    printf("set empty: %s\n", err(sched_setaffinity(0, sizeof one, &one)));
    CPU_SET(1000, &one);
    printf("set {1000}: %s\n", err(sched_setaffinity(0, sizeof one, &one)));
    CPU_SET(0, &one);
    printf("set {0,1000}: %s\n", err(sched_setaffinity(0, sizeof one, &one)));
    printf("set len 0: %s\n", err(syscall(SYS_sched_setaffinity, 0, 0, &one)));
    printf("set null: %s\n", err(syscall(SYS_sched_setaffinity, 0, 8, 0)));
    printf("set no such pid: %s\n", err(sched_setaffinity(999999, sizeof one, &one)));
    printf("get len 4: %s\n", err(syscall(SYS_sched_getaffinity, 0, 4, &got)));
    printf("get len 9: %s\n", err(syscall(SYS_sched_getaffinity, 0, 9, &got)));
    printf("get null: %s\n", err(syscall(SYS_sched_getaffinity, 0, 8, 0)));
    printf("get no such pid: %s\n", err(syscall(SYS_sched_getaffinity, 999999, 8, &got)));
    printf("get negative pid: %s\n", err(syscall(SYS_sched_getaffinity, -1, 8, &got)));
    c = fork();
    if (c == 0) {
        sched_getaffinity(0, sizeof got, &got);
        printf("child inherits count=%d has0=%d\n", CPU_COUNT(&got), CPU_ISSET(0, &got));
        _exit(0);
    }
    waitpid(c, 0, 0);
    printf("set all again: %s\n", err(sched_setaffinity(0, sizeof all, &all)));

    sync();
    printf("sync: ok\n");
    int fd = open("/tmp", O_RDONLY);
    printf("syncfs: %s\n", err(syncfs(fd)));
    printf("syncfs bad fd: %s\n", err(syncfs(999)));
    printf("syncfs -1: %s\n", err(syncfs(-1)));
    return 0;
}
