// The vDSO as glibc and musl use it: present in the auxiliary vector, every clock against the raw
// syscall, time running forwards in and across threads, getcpu, and the error cases (which go
// through the syscall, or fault in the vDSO itself, exactly as on Linux). Prints only what is
// the same natively and in the Sentry.
//
//   vdso           the checks above
//   vdso calls N   N calls of each vDSO function (the test counts the syscalls they cost)
//   vdso raw N     the same clock reads as N raw syscalls (the counting's control)
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// glibc and musl builds print the same names (musl has no strerrorname_np).
static const char *errname(int e) {
    switch (e) {
    case 0: return "0";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    default: return "other";
    }
}

// getcpu through libc: glibc's getcpu, or musl's sched_getcpu (musl has no getcpu wrapper and
// no node number; both reach the vDSO's __vdso_getcpu).
static int cpu_of(unsigned *cpu, unsigned *node) {
#ifdef __GLIBC__
    return getcpu(cpu, node);
#else
    int c = sched_getcpu();
    if (c < 0) return -1;
    if (cpu) *cpu = c;
    if (node) *node = 0;
    return 0;
#endif
}

static long long ns_of(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

static long long raw_ns(clockid_t c) {
    struct timespec t;
    if (syscall(SYS_clock_gettime, c, &t) != 0) return -1;
    return ns_of(t);
}

static long long vdso_ns(clockid_t c) {
    struct timespec t;
    if (clock_gettime(c, &t) != 0) return -1;
    return ns_of(t);
}

// vDSO, raw syscall, vDSO: each no earlier than the one before (within `slack`).
static void against_syscall(const char *name, clockid_t c, long long slack) {
    int ok = 1;
    for (int i = 0; i < 20; i++) {
        long long a = vdso_ns(c), b = raw_ns(c), d = vdso_ns(c);
        if (a < 0 || b < 0 || d < 0 || b + slack < a || d + slack < b || d - a > 1000000000LL) {
            printf("%s: vdso %lld raw %lld vdso %lld\n", name, a, b, d);
            ok = 0;
            break;
        }
    }
    printf("%s agrees with the syscall: %d\n", name, ok);
}

#define THREADS 4
#define READS 200000
static _Atomic long long latest;
static _Atomic int backwards;

// Every read is no earlier than any read another thread finished before it started.
static void *reader(void *arg) {
    (void)arg;
    long long mine = 0;
    for (int i = 0; i < READS; i++) {
        long long seen = atomic_load(&latest);
        long long now = vdso_ns(CLOCK_MONOTONIC);
        if (now < seen || now < mine) atomic_fetch_add(&backwards, 1);
        mine = now;
        long long cur = atomic_load(&latest);
        while (cur < now && !atomic_compare_exchange_weak(&latest, &cur, now)) {
        }
    }
    return NULL;
}

static void errors(void) {
    struct timespec t;
    errno = 0;
    int r = clock_gettime(100, &t);
    printf("clock 100: %d %s\n", r, errname(errno));
    errno = 0;
    r = clock_gettime(0x7fffffff, &t);
    printf("clock 0x7fffffff: %d %s\n", r, errname(errno));
    // Clocks the vDSO leaves to the syscall report a bad pointer as the syscall does.
    errno = 0;
    r = clock_gettime(CLOCK_PROCESS_CPUTIME_ID, (struct timespec *)8);
    printf("cputime, bad pointer: %d %s\n", r, errname(errno));
    errno = 0;
    r = clock_gettime(100, (struct timespec *)8);
    printf("clock 100, bad pointer: %d %s\n", r, errname(errno));
    errno = 0;
    r = syscall(SYS_clock_gettime, CLOCK_MONOTONIC, (struct timespec *)8);
    printf("raw monotonic, bad pointer: %d %s\n", r, errname(errno));
    // The vDSO itself writes through the pointer: a bad one faults, as on Linux.
    pid_t pid = fork();
    if (pid == 0) {
        clock_gettime(CLOCK_MONOTONIC, (struct timespec *)8);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    printf("vdso monotonic, bad pointer: signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

// Start of the mapping /proc/self/maps names `name` (0 if none), and its length.
static unsigned long mapping(const char *name, unsigned long *len) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    unsigned long start = 0, end = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *n = strrchr(line, ' ');
        if (n && strcmp(n + 1, name) == 0 && sscanf(line, "%lx-%lx", &start, &end) == 2) break;
        start = end = 0;
    }
    if (f) fclose(f);
    *len = end - start;
    return start;
}

static int child_status(void) {
    int st = 0;
    wait(&st);
    return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

// A process that breaks its own vDSO changes nothing for any other process.
static void hostile(void) {
    unsigned long vvar_len, text_len;
    unsigned long vvar = mapping("[vvar]\n", &vvar_len), text = mapping("[vdso]\n", &text_len);
    printf("maps show [vvar] %d [vdso] %d\n", vvar != 0, text != 0);
    if (!vvar || !text) return;
    fflush(stdout);
    if (fork() == 0) {
        // The data page cannot be made writable, and writing it faults.
        int r = mprotect((void *)vvar, 4096, PROT_READ | PROT_WRITE);
        printf("mprotect [vvar] writable: %d %s\n", r, r ? errname(errno) : "");
        fflush(stdout);
        *(volatile char *)vvar = 1;
        _exit(0);
    }
    printf("writing [vvar]: status %d\n", child_status());
    fflush(stdout);
    if (fork() == 0) {
        // Neither can the code; writing it faults.
        int r = mprotect((void *)text, text_len, PROT_READ | PROT_WRITE | PROT_EXEC);
        printf("mprotect [vdso] writable: %d %s\n", r, r ? errname(errno) : "");
        fflush(stdout);
        memset((void *)text, 0xcc, 16);
        _exit(0);
    }
    printf("overwriting [vdso]: status %d\n", child_status());
    fflush(stdout);
    if (fork() == 0) {
        int a = munmap((void *)vvar, vvar_len), b = munmap((void *)text, text_len);
        printf("munmap [vvar] %d [vdso] %d; time then: %d\n", a, b, time(NULL) > 0);
        fflush(stdout);
        _exit(0);
    }
    printf("unmapping both: status %d\n", child_status());
    printf("MONOTONIC still agrees afterwards: %d\n", vdso_ns(CLOCK_MONOTONIC) > 0 &&
           memcmp((void *)text, "\177ELF", 4) == 0);
}

static int checks(void) {
    unsigned long ehdr = getauxval(AT_SYSINFO_EHDR);
    printf("AT_SYSINFO_EHDR present: %d elf: %d\n", ehdr != 0,
           ehdr != 0 && memcmp((void *)ehdr, "\177ELF", 4) == 0);

    against_syscall("REALTIME", CLOCK_REALTIME, 1000000);
    against_syscall("MONOTONIC", CLOCK_MONOTONIC, 1000000);
    against_syscall("MONOTONIC_RAW", CLOCK_MONOTONIC_RAW, 1000000);
    against_syscall("BOOTTIME", CLOCK_BOOTTIME, 1000000);
    // Coarse clocks trail the fine ones by up to a tick on Linux.
    against_syscall("REALTIME_COARSE", CLOCK_REALTIME_COARSE, 20000000);
    against_syscall("MONOTONIC_COARSE", CLOCK_MONOTONIC_COARSE, 20000000);
    printf("PROCESS_CPUTIME: %d\n", vdso_ns(CLOCK_PROCESS_CPUTIME_ID) >= 0);
    printf("THREAD_CPUTIME: %d\n", vdso_ns(CLOCK_THREAD_CPUTIME_ID) >= 0);

    // Wall clock three ways: they agree to the microsecond/second.
    struct timeval tv, raw_tv;
    struct timezone tz;
    int ok = gettimeofday(&tv, &tz) == 0 && syscall(SYS_gettimeofday, &raw_tv, NULL) == 0;
    long long us = tv.tv_sec * 1000000LL + tv.tv_usec, raw_us = raw_tv.tv_sec * 1000000LL + raw_tv.tv_usec;
    printf("gettimeofday agrees: %d\n", ok && raw_us >= us - 1000 && raw_us - us < 1000000);
    printf("gettimeofday(NULL, NULL): %d\n", gettimeofday(NULL, NULL));
    time_t t1 = 0, t0 = time(&t1);
    long rawt = syscall(SYS_time, NULL);
    // The time syscall reads the tick-updated seconds, which may trail clock_gettime's (what
    // musl's time() uses) by a tick just after a second begins.
    printf("time agrees: %d\n", t0 == t1 && rawt >= t0 - 1 && rawt - t0 <= 1);
    long long rt = vdso_ns(CLOCK_REALTIME) / 1000000000LL;
    printf("time matches REALTIME: %d\n", rt >= t0 && rt - t0 <= 1);

    unsigned cpu = 9999, node = 9999;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int r = cpu_of(&cpu, &node);
    printf("getcpu: %d cpu<ncpu %d node %u\n", r, (long)cpu < ncpu, node);
    printf("sched_getcpu in range: %d\n", sched_getcpu() >= 0 && sched_getcpu() < ncpu);
    printf("getcpu(NULL, NULL): %d\n", cpu_of(NULL, NULL));
    unsigned raw_cpu = 9999, raw_node = 9999;
    r = syscall(SYS_getcpu, &raw_cpu, &raw_node, NULL);
    printf("raw getcpu: %d cpu<ncpu %d node %u\n", r, (long)raw_cpu < ncpu, raw_node);

    errors();
    hostile();

    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, reader, NULL);
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    printf("MONOTONIC backwards across %d threads: %d\n", THREADS, atomic_load(&backwards));
    printf("done\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) return checks();
    long n = atol(argv[2]);
    struct timespec t;
    struct timeval tv;
    unsigned cpu;
    long long sum = 0;
    if (strcmp(argv[1], "calls") == 0) {
        for (long i = 0; i < n; i++) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            sum += t.tv_nsec;
            clock_gettime(CLOCK_REALTIME, &t);
            clock_gettime(CLOCK_BOOTTIME, &t);
            clock_gettime(CLOCK_MONOTONIC_RAW, &t);
            clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
            gettimeofday(&tv, NULL);
            sum += time(NULL);
            cpu_of(&cpu, NULL);
        }
    } else {
        for (long i = 0; i < n; i++) {
            syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &t);
            sum += t.tv_nsec;
        }
    }
    printf("%s %ld %d\n", argv[1], n, sum != 0);
    return 0;
}
