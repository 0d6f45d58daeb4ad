/* POSIX timers through the raw syscalls (no C library wrappers in the way), printed so that a
 * run in the Sentry can be compared with a native one. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *err(long r) {
    static char b[32];
    if (r >= 0) return "ok";
    switch (errno) {
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EAGAIN: return "EAGAIN";
    }
    snprintf(b, sizeof b, "errno%d", errno);
    return b;
}

struct kevent { /* struct sigevent as the kernel reads it */
    union sigval value;
    int signo, notify, tid, pad[11];
};

static long tcreate(int clock, struct kevent *ev, int *id) {
    return syscall(SYS_timer_create, clock, ev, id);
}
static long tset(int id, int flags, long vs, long vns, long is, long ins, struct itimerspec *old) {
    struct itimerspec s = {{is, ins}, {vs, vns}};
    return syscall(SYS_timer_settime, id, flags, &s, old);
}
static long tget(int id, struct itimerspec *s) { return syscall(SYS_timer_gettime, id, s); }

static double now(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static volatile int count, last_code, last_value, last_timerid, first_overrun, get_overrun;
static volatile int watched;

static void on_signal(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    count++;
    last_code = si->si_code;
    last_value = si->si_value.sival_int;
    last_timerid = si->si_timerid;
    /* The first delivery after `count = 0`: later expiries may signal again before a test
       disarms its timer, on Linux as here. */
    if (count == 1) {
        first_overrun = si->si_overrun;
        get_overrun = syscall(SYS_timer_getoverrun, watched);
    }
}

static void handle(int sig) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(sig, &sa, 0);
}

static void block(int sig, int how) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    sigprocmask(how, &s, 0);
}

static void periodic(void) {
    struct kevent ev = {.value.sival_int = 42, .signo = SIGUSR1, .notify = SIGEV_SIGNAL};
    int id = -1;
    handle(SIGUSR1);
    const char *r = err(tcreate(CLOCK_MONOTONIC, &ev, &id));
    printf("create monotonic: %s first id=%d\n", r, id);
    watched = id;
    count = 0;
    printf("arm 10ms period: %s\n", err(tset(id, 0, 0, 10000000, 0, 10000000, 0)));
    double t0 = now(CLOCK_MONOTONIC);
    while (count < 5 && now(CLOCK_MONOTONIC) - t0 < 5) usleep(1000);
    double took = now(CLOCK_MONOTONIC) - t0;
    printf("periodic: count>=5 %d took>=40ms %d code=SI_TIMER %d value=%d timerid-ok=%d\n",
           count >= 5, took >= 0.04, last_code == SI_TIMER, last_value, last_timerid == id);
    struct itimerspec s;
    tget(id, &s);
    printf("gettime: interval=%ldns value-in-period=%d\n", s.it_interval.tv_nsec,
           s.it_value.tv_sec == 0 && s.it_value.tv_nsec > 0 && s.it_value.tv_nsec <= 10000000);
    printf("disarm: %s\n", err(tset(id, 0, 0, 0, 0, 0, 0)));
    int before = count;
    usleep(50000);
    tget(id, &s);
    printf("disarmed: no more=%d value=%ld.%09ld\n", count == before, s.it_value.tv_sec, s.it_value.tv_nsec);

    /* Overruns: expiries while the signal waits, blocked. */
    block(SIGUSR1, SIG_BLOCK);
    count = 0;
    tset(id, 0, 0, 1000000, 0, 1000000, 0);
    usleep(100000);
    block(SIGUSR1, SIG_UNBLOCK);
    tset(id, 0, 0, 0, 0, 0, 0);
    printf("overrun: signalled=%d first si_overrun>=20 %d getoverrun==si_overrun %d\n",
           count >= 1, first_overrun >= 20, get_overrun == first_overrun);
    printf("delete: %s\n", err(syscall(SYS_timer_delete, id)));
    printf("delete again: %s\n", err(syscall(SYS_timer_delete, id)));
    printf("settime deleted: %s\n", err(tset(id, 0, 1, 0, 0, 0, 0)));
    printf("gettime deleted: %s\n", err(tget(id, &s)));
}

static void one_shots(void) {
    struct kevent none = {.notify = SIGEV_NONE};
    int id;
    tcreate(CLOCK_MONOTONIC, &none, &id);
    struct itimerspec old, s;
    tset(id, 0, 5, 0, 0, 0, 0);
    tget(id, &s);
    printf("sigev_none: remaining in (4,5] %d\n", s.it_value.tv_sec == 4 && s.it_value.tv_nsec > 0);
    tset(id, 0, 1, 0, 0, 0, &old);
    printf("old value in (4,5] %d interval=%ld\n", old.it_value.tv_sec == 4, old.it_interval.tv_sec);
    syscall(SYS_timer_delete, id);

    /* Absolute deadline on the real-time clock, waited for with sigtimedwait. */
    int sig = SIGRTMIN + 1;
    block(sig, SIG_BLOCK);
    struct kevent ev = {.value.sival_int = 7, .signo = sig, .notify = SIGEV_SIGNAL};
    tcreate(CLOCK_REALTIME, &ev, &id);
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    long ns = t.tv_nsec + 50000000;
    double t0 = now(CLOCK_MONOTONIC);
    tset(id, TIMER_ABSTIME, t.tv_sec + ns / 1000000000, ns % 1000000000, 0, 0, 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    siginfo_t si;
    struct timespec limit = {5, 0};
    int got = sigtimedwait(&set, &si, &limit);
    double took = now(CLOCK_MONOTONIC) - t0;
    printf("absolute realtime: got=%d code=SI_TIMER %d value=%d after>=40ms %d before 1s %d\n",
           got == sig, si.si_code == SI_TIMER, si.si_value.sival_int, took >= 0.04, took < 1);
    /* An absolute time already past fires at once. */
    tset(id, TIMER_ABSTIME, 1, 0, 0, 0, 0);
    got = sigtimedwait(&set, &si, &limit);
    printf("absolute past: fired=%d\n", got == sig);
    syscall(SYS_timer_delete, id);

    /* No sigevent: SIGALRM with the timer id as value. */
    handle(SIGALRM);
    count = 0;
    tcreate(CLOCK_MONOTONIC, 0, &id);
    watched = id;
    tset(id, 0, 0, 20000000, 0, 0, 0);
    while (count == 0) pause();
    printf("default sigevent: SIGALRM value==id %d\n", last_value == id);
    syscall(SYS_timer_delete, id);
}

/* CPU time: the timer fires once the process has used 50 ms of CPU. */
static void cpu_time(void) {
    struct kevent ev = {.signo = SIGUSR2, .notify = SIGEV_SIGNAL};
    int id;
    handle(SIGUSR2);
    count = 0;
    printf("create process cputime: %s\n", err(tcreate(CLOCK_PROCESS_CPUTIME_ID, &ev, &id)));
    double c0 = now(CLOCK_PROCESS_CPUTIME_ID), t0 = now(CLOCK_MONOTONIC);
    tset(id, 0, 0, 50000000, 0, 0, 0);
    while (count == 0 && now(CLOCK_MONOTONIC) - t0 < 10) {
    }
    printf("cputime: fired=%d cpu>=45ms %d\n", count == 1, now(CLOCK_PROCESS_CPUTIME_ID) - c0 >= 0.045);
    syscall(SYS_timer_delete, id);
}

static volatile int thread_got;
static int thread_tid;

static void *waiter(void *arg) {
    (void)arg;
    thread_tid = gettid();
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN + 2);
    siginfo_t si;
    struct timespec limit = {5, 0};
    thread_got = sigtimedwait(&set, &si, &limit) == SIGRTMIN + 2 && si.si_code == SI_TIMER;
    return 0;
}

static void thread_id(void) {
    block(SIGRTMIN + 2, SIG_BLOCK);
    pthread_t th;
    thread_tid = 0;
    pthread_create(&th, 0, waiter, 0);
    while (!thread_tid) usleep(1000);
    struct kevent ev = {.signo = SIGRTMIN + 2, .notify = SIGEV_THREAD_ID, .tid = thread_tid};
    int id;
    printf("create thread id: %s\n", err(tcreate(CLOCK_MONOTONIC, &ev, &id)));
    tset(id, 0, 0, 10000000, 0, 0, 0);
    pthread_join(th, 0);
    printf("thread got its signal: %d\n", thread_got);
    syscall(SYS_timer_delete, id);
}

static void errors(void) {
    int id = 0;
    struct kevent ev = {.signo = SIGUSR1, .notify = SIGEV_SIGNAL};
    printf("bad clock: %s\n", err(tcreate(100, &ev, &id)));
    ev.signo = 0;
    printf("signal 0: %s\n", err(tcreate(CLOCK_MONOTONIC, &ev, &id)));
    ev.signo = 65;
    printf("signal 65: %s\n", err(tcreate(CLOCK_MONOTONIC, &ev, &id)));
    ev.signo = SIGUSR1;
    ev.notify = 99;
    printf("bad notify: %s\n", err(tcreate(CLOCK_MONOTONIC, &ev, &id)));
    ev.notify = SIGEV_THREAD_ID;
    ev.tid = 999999;
    printf("foreign tid: %s\n", err(tcreate(CLOCK_MONOTONIC, &ev, &id)));
    printf("bad sigevent pointer: %s\n", err(tcreate(CLOCK_MONOTONIC, (void *)8, &id)));
    ev.notify = SIGEV_NONE;
    printf("bad id pointer: %s\n", err(tcreate(CLOCK_MONOTONIC, &ev, (void *)8)));
    int first;
    tcreate(CLOCK_MONOTONIC, &ev, &first);
    syscall(SYS_timer_delete, first);
    tcreate(CLOCK_MONOTONIC, &ev, &id);
    printf("ids not reused at once: %d\n", id != first);
    printf("bad nsec: %s\n", err(tset(id, 0, 0, 1000000000, 0, 0, 0)));
    printf("negative: %s\n", err(tset(id, 0, -1, 0, 0, 0, 0)));
    printf("null new: %s\n", err(syscall(SYS_timer_settime, id, 0, 0, 0)));
    printf("huge relative: %s\n", err(tset(id, 0, 0x7fffffffffffffffL, 999999999, 0x7fffffffffffffffL, 0, 0)));
    struct itimerspec h;
    tget(id, &h);
    printf("huge saturates: value>200y %d interval>200y %d\n", h.it_value.tv_sec > 200L * 365 * 86400,
           h.it_interval.tv_sec > 200L * 365 * 86400);
    printf("huge absolute: %s\n", err(tset(id, TIMER_ABSTIME, 0x7fffffffffffffffL, 0, 0, 0, 0)));
    printf("new at the top of memory: %s\n", err(syscall(SYS_timer_settime, id, 0, (void *)-8L, 0)));
    printf("bad new pointer: %s\n", err(syscall(SYS_timer_settime, id, 0, (void *)8, 0)));
    printf("bad get pointer: %s\n", err(syscall(SYS_timer_gettime, id, (void *)8)));
    printf("getoverrun unknown: %s\n", err(syscall(SYS_timer_getoverrun, 12345)));
    /* Timers are not inherited by a child, and do not survive exec. */
    tset(id, 0, 100, 0, 0, 0, 0);
    pid_t p = fork();
    if (p == 0) {
        struct itimerspec s;
        printf("child sees parent's timer: %s\n", err(tget(id, &s)));
        char arg[16];
        snprintf(arg, sizeof arg, "%d", id);
        execl("/proc/self/exe", "timers", "after-exec", arg, (char *)0);
        _exit(1);
    }
    waitpid(p, 0, 0);
    struct itimerspec s;
    printf("parent keeps it: %s\n", err(tget(id, &s)));
}

/* A timer's signal ends a sigsuspend that first meets a pending signal running no handler
 * (SIGCHLD, ignored by default). */
static void suspend(void) {
    block(SIGCHLD, SIG_BLOCK);
    block(SIGUSR1, SIG_BLOCK);
    pid_t p = fork();
    if (p == 0) _exit(0);
    usleep(50000); /* SIGCHLD now pending */
    handle(SIGUSR1);
    count = 0;
    struct kevent ev = {.signo = SIGUSR1, .notify = SIGEV_SIGNAL};
    int id;
    tcreate(CLOCK_MONOTONIC, &ev, &id);
    tset(id, 0, 0, 100000000, 0, 0, 0);
    sigset_t none;
    sigemptyset(&none);
    int r = sigsuspend(&none);
    printf("sigsuspend: %d errno=EINTR %d handled=%d\n", r, errno == EINTR, count);
    syscall(SYS_timer_delete, id);
    waitpid(p, 0, 0);
    block(SIGCHLD, SIG_UNBLOCK);
    block(SIGUSR1, SIG_UNBLOCK);
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IONBF, 0);
    if (argc == 3 && !strcmp(argv[1], "after-exec")) {
        /* Create one in the child, exec: gone. */
        int id = atoi(argv[2]);
        struct itimerspec s;
        printf("after exec: %s\n", err(tget(id, &s)));
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "exec-clears")) {
        struct kevent ev = {.notify = SIGEV_NONE};
        int id;
        tcreate(CLOCK_MONOTONIC, &ev, &id);
        tset(id, 0, 100, 0, 0, 0, 0);
        char arg[16];
        snprintf(arg, sizeof arg, "%d", id);
        execl("/proc/self/exe", "timers", "after-exec", arg, (char *)0);
        return 1;
    }
    periodic();
    suspend();
    one_shots();
    cpu_time();
    thread_id();
    errors();
    pid_t p = fork();
    if (p == 0) {
        execl("/proc/self/exe", "timers", "exec-clears", (char *)0);
        _exit(1);
    }
    waitpid(p, 0, 0);
    printf("done\n");
    return 0;
}
