/* Capabilities, no_new_privs and seccomp as a program sees them, printed so that a run in the
 * Sentry can be compared with a native one (as root). Each check that changes the process's
 * security state runs in a child. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err(long r) {
    static char b[32];
    if (r >= 0) return "ok";
    switch (errno) {
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case ENOTTY: return "ENOTTY";
    case ENOSYS: return "ENOSYS";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    }
    snprintf(b, sizeof b, "errno%d", errno);
    return b;
}

static struct __user_cap_data_struct caps[2];

static void get_caps(void) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    syscall(SYS_capget, &h, caps);
}

static long set_caps(void) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    return syscall(SYS_capset, &h, caps);
}

static int has(unsigned cap, int which) {
    unsigned w = which == 0 ? caps[cap / 32].effective : which == 1 ? caps[cap / 32].permitted : caps[cap / 32].inheritable;
    return (w >> (cap % 32)) & 1;
}

/* Runs f in a child; prints how the child ended. */
static void in_child(const char *name, void (*f)(void)) {
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        f();
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    if (WIFSIGNALED(st)) printf("%s: killed by %s\n", name, strsignal(WTERMSIG(st)));
    else printf("%s: exit %d\n", name, WEXITSTATUS(st));
}

static long install(struct sock_filter *f, unsigned short n, unsigned flags) {
    struct sock_fprog prog = {n, f};
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

#define LOAD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define ON(nr, ret) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1), BPF_STMT(BPF_RET | BPF_K, ret)
#define ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

static void capabilities(void) {
    get_caps();
    printf("root has CAP_SYS_ADMIN: %d, CAP_KILL: %d\n", has(CAP_SYS_ADMIN, 0), has(CAP_KILL, 0));
    /* Drop CAP_KILL from effective only, then from permitted; raising it back fails. */
    caps[0].effective &= ~(1u << CAP_KILL);
    printf("drop effective: %s\n", err(set_caps()));
    get_caps();
    printf("after: eff %d prm %d\n", has(CAP_KILL, 0), has(CAP_KILL, 1));
    caps[0].permitted &= ~(1u << CAP_KILL);
    printf("drop permitted: %s\n", err(set_caps()));
    caps[0].permitted |= 1u << CAP_KILL;
    printf("raise permitted: %s\n", err(set_caps()));
    caps[0].permitted &= ~(1u << CAP_KILL);
    caps[0].effective |= 1u << CAP_KILL;
    printf("effective beyond permitted: %s\n", err(set_caps()));
    struct __user_cap_header_struct bad = {0x12345678, 0};
    const char *r = err(syscall(SYS_capget, &bad, caps));
    printf("bad version: %s, header now %#x\n", r, bad.version);
    struct __user_cap_header_struct probe = {0x12345678, 0};
    printf("probe: %s\n", err(syscall(SYS_capget, &probe, NULL)));
    struct __user_cap_header_struct other = {_LINUX_CAPABILITY_VERSION_3, 1};
    get_caps();
    printf("capset another process: %s\n", err(syscall(SYS_capset, &other, caps)));
}

static void bounding_and_ambient(void) {
    printf("bset read net_raw: %ld, cap 99: %s\n", (long)prctl(PR_CAPBSET_READ, CAP_NET_RAW), err(prctl(PR_CAPBSET_READ, 99)));
    printf("bset drop: %s", err(prctl(PR_CAPBSET_DROP, CAP_NET_RAW)));
    printf(", read: %ld\n", (long)prctl(PR_CAPBSET_READ, CAP_NET_RAW));
    printf("ambient raise without inheritable: %s\n", err(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_CHOWN, 0, 0)));
    get_caps();
    caps[0].inheritable |= 1u << CAP_CHOWN;
    printf("inheritable: %s\n", err(set_caps()));
    printf("ambient raise: %s", err(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_CHOWN, 0, 0)));
    printf(", is_set: %ld\n", (long)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_CHOWN, 0, 0));
    printf("ambient clear: %s", err(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)));
    printf(", is_set: %ld\n", (long)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_CHOWN, 0, 0));
    printf("ambient bad args: %s\n", err(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_CHOWN, 1, 0)));
}

static void leave_root(void) {
    printf("setuid 1000: %s\n", err(setuid(1000)));
    get_caps();
    printf("after setuid: eff %d prm %d\n", has(CAP_SETUID, 0), has(CAP_SETUID, 1));
    printf("setuid 0 again: %s\n", err(setuid(0)));
    printf("sethostname: %s\n", err(sethostname("x", 1)));
    printf("kill init: %s\n", err(kill(1, 0)));
}

static void keep_caps(void) {
    printf("keepcaps: %s", err(prctl(PR_SET_KEEPCAPS, 1)));
    printf(", get: %ld\n", (long)prctl(PR_GET_KEEPCAPS));
    printf("setresuid 1000: %s\n", err(setresuid(1000, 1000, 1000)));
    get_caps();
    printf("kept: eff %d prm %d\n", has(CAP_SETUID, 0), has(CAP_SETUID, 1));
}

static void no_new_privs(void) {
    printf("nnp get: %ld\n", (long)prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    printf("nnp set 2: %s\n", err(prctl(PR_SET_NO_NEW_PRIVS, 2, 0, 0, 0)));
    printf("nnp set: %s", err(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)));
    printf(", get: %ld\n", (long)prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    pid_t p = fork();
    if (p == 0) _exit(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    int st;
    waitpid(p, &st, 0);
    printf("child inherits nnp: %d\n", WEXITSTATUS(st));
}

static void filter_needs_privilege(void) {
    struct sock_filter f[] = {ALLOW};
    get_caps();
    caps[0].effective &= ~(1u << CAP_SYS_ADMIN);
    set_caps();
    printf("filter without nnp or CAP_SYS_ADMIN: %s\n", err(install(f, 1, 0)));
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    printf("filter with nnp: %s\n", err(install(f, 1, 0)));
}

static void hostile_filters(void) {
    struct sock_filter out_of_range[] = {BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 5, 0), ALLOW};
    struct sock_filter div0[] = {BPF_STMT(BPF_ALU | BPF_DIV | BPF_K, 0), ALLOW};
    struct sock_filter no_ret[] = {LOAD_NR};
    struct sock_filter bad_load[] = {BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 200), ALLOW};
    static struct sock_filter huge[5000];
    for (int i = 0; i < 5000; i++) huge[i] = (struct sock_filter)ALLOW;
    printf("jump out of range: %s\n", err(install(out_of_range, 2, 0)));
    printf("division by zero: %s\n", err(install(div0, 2, 0)));
    printf("no return: %s\n", err(install(no_ret, 1, 0)));
    printf("load outside seccomp_data: %s\n", err(install(bad_load, 2, 0)));
    printf("empty: %s\n", err(install(huge, 0, 0)));
    printf("5000 instructions: %s\n", err(install(huge, 5000, 0)));
    printf("4096 instructions: %s\n", err(install(huge, 4096, 0)));
    printf("bad flags: %s\n", err(install(huge, 1, 1u << 20)));
    printf("bad pointer: %s\n", err(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, (void *)8)));
    unsigned a = SECCOMP_RET_KILL_PROCESS, b = SECCOMP_RET_USER_NOTIF + 1;
    printf("kill_process available: %s", err(syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &a)));
    printf(", bogus action: %s\n", err(syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &b)));
    printf("mode: %ld\n", (long)prctl(PR_GET_SECCOMP));
}

static void errno_filter(void) {
    struct sock_filter f[] = {LOAD_NR, ON(SYS_getppid, SECCOMP_RET_ERRNO | ENOTTY), ALLOW};
    printf("install: %s", err(install(f, 4, SECCOMP_FILTER_FLAG_TSYNC)));
    printf(", mode: %ld\n", (long)prctl(PR_GET_SECCOMP));
    printf("getppid: %s", err(syscall(SYS_getppid)));
    printf(", getpid works: %d\n", getpid() > 0);
    /* A second filter stacks; the more restrictive answer wins. */
    struct sock_filter g[] = {LOAD_NR, ON(SYS_getppid, SECCOMP_RET_ERRNO | EPERM), ON(SYS_uname, SECCOMP_RET_ERRNO | EACCES), ALLOW};
    install(g, 6, 0);
    struct utsname u;
    printf("stacked: getppid %s", err(syscall(SYS_getppid)));
    printf(" uname %s\n", err(uname(&u)));
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) _exit(syscall(SYS_getppid) < 0 ? errno : 0);
    int st;
    waitpid(p, &st, 0);
    printf("child inherits filters: %s\n", WEXITSTATUS(st) == EPERM ? "yes" : "no");
    fflush(stdout);
    /* Execed programs keep them: the program runs itself to look. */
    p = fork();
    if (p == 0) {
        execl("/proc/self/exe", "security", "inherited", (char *)NULL);
        _exit(99);
    }
    waitpid(p, &st, 0);
}

static void inherited(void) {
    char b[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    int n = read(fd, b, sizeof b - 1);
    b[n > 0 ? n : 0] = 0;
    char *s = strstr(b, "Seccomp:");
    printf("after exec: %.10s getppid %s\n", s ? s : "none", err(syscall(SYS_getppid)));
}

static volatile int trapped_nr = -1, trapped_code, trapped_errno;
static volatile unsigned trapped_arch;

static void on_sigsys(int sig, siginfo_t *si, void *uc) {
    trapped_nr = si->si_syscall;
    trapped_code = si->si_code;
    trapped_errno = si->si_errno;
    trapped_arch = si->si_arch;
}

static void trap_filter(void) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &sa, NULL);
    struct sock_filter f[] = {LOAD_NR, ON(SYS_getppid, SECCOMP_RET_TRAP | 42), ALLOW};
    install(f, 4, 0);
    long r = syscall(SYS_getppid);
    printf("trap: returned %ld (the number), si_syscall %d si_code %d si_errno %d arch ok %d\n", r, trapped_nr, trapped_code,
           trapped_errno, trapped_arch == AUDIT_ARCH_X86_64);
}

static void kill_process_filter(void) {
    struct sock_filter f[] = {LOAD_NR, ON(SYS_uname, SECCOMP_RET_KILL_PROCESS), ALLOW};
    install(f, 4, 0);
    struct utsname u;
    uname(&u);
    printf("still alive after uname\n");
}

static void kill_thread_filter(void) {
    /* The only thread: the process dies with it. */
    struct sock_filter f[] = {LOAD_NR, ON(SYS_getppid, SECCOMP_RET_KILL_THREAD), ALLOW};
    install(f, 4, 0);
    syscall(SYS_getppid);
    printf("still alive after getppid\n");
}

static void arg_filter(void) {
    /* Refuses write(2) to fd 2 only, by its first argument. */
    struct sock_filter f[] = {
        LOAD_NR,
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_write, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES),
        ALLOW,
    };
    install(f, 6, 0);
    printf("write to stderr: %s\n", err(write(2, "", 0)));
    printf("write to stdout: %s\n", err(write(1, "", 0)));
}

static void strict_mode(void) {
    printf("strict: %s\n", err(prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0)));
    fflush(stdout);
    write(1, "write still works\n", 18);
    syscall(SYS_getpid);
    write(1, "not reached\n", 12);
}


static volatile int go, done_calls;
static long thread_result = -2;

static void *caller(void *arg) {
    while (!go) usleep(1000);
    thread_result = syscall(SYS_getppid) < 0 ? errno : 0;
    if (arg) syscall(SYS_uname, NULL); /* killed here */
    done_calls = 1;
    return NULL;
}

static void thread_sync(void) {
    pthread_t t;
    pthread_create(&t, NULL, caller, NULL);
    struct sock_filter f[] = {LOAD_NR, ON(SYS_getppid, SECCOMP_RET_ERRNO | ENOTTY), ALLOW};
    printf("tsync: %s\n", err(install(f, 4, SECCOMP_FILTER_FLAG_TSYNC)));
    go = 1;
    pthread_join(t, NULL);
    printf("other thread's getppid: %s\n", thread_result == ENOTTY ? "ENOTTY" : thread_result == 0 ? "ok" : "?");
}

static void kill_one_thread(void) {
    pthread_t t;
    struct sock_filter f[] = {LOAD_NR, ON(SYS_uname, SECCOMP_RET_KILL_THREAD), ALLOW};
    install(f, 4, 0);
    go = 1;
    pthread_create(&t, NULL, caller, (void *)1);
    for (int i = 0; i < 2000 && thread_result == -2; i++) usleep(1000);
    usleep(50000);
    printf("killed thread finished: %d, process alive\n", done_calls);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "inherited") == 0) {
        inherited();
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "ids") == 0) {
        get_caps();
        printf("uid %d euid %d setuid-capable %d\n", getuid(), geteuid(), has(CAP_SETUID, 0));
        return 0;
    }
    in_child("capabilities", capabilities);
    in_child("bounding and ambient", bounding_and_ambient);
    in_child("leave root", leave_root);
    in_child("keep caps", keep_caps);
    in_child("no_new_privs", no_new_privs);
    in_child("privilege", filter_needs_privilege);
    in_child("hostile", hostile_filters);
    in_child("errno", errno_filter);
    in_child("trap", trap_filter);
    in_child("kill process", kill_process_filter);
    in_child("kill thread", kill_thread_filter);
    in_child("arguments", arg_filter);
    in_child("strict", strict_mode);
    in_child("thread sync", thread_sync);
    in_child("kill thread of many", kill_one_thread);
    return 0;
}
