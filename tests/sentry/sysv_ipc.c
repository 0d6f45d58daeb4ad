// System V IPC, printed only where Linux and the Sentry must agree (never ids, keys, times or
// addresses): shared memory shared across fork, attach counts through fork, exit, shmdt and
// IPC_RMID while attached; semaphores with blocking semop woken by another process, wait
// order, SEM_UNDO applied at exit, EINTR, EIDRM and timeouts; message queues with type
// selection, MSG_NOERROR/E2BIG, MSG_COPY, blocking both ways; permissions for another user;
// the limits in /proc/sys/kernel and IPC_INFO; and errors for wild arguments.
// With the argument "sysctl" (run natively in a new IPC namespace: it changes the limits), it
// writes the limits instead and shows what they then allow; with "caps", what root may do to
// another user's objects and to the limits.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *errname(int e) {
    switch (e) {
    case 0: return "0";
    case ENOENT: return "ENOENT";
    case EFAULT: return "EFAULT";
    case EINVAL: return "EINVAL";
    case EEXIST: return "EEXIST";
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOSPC: return "ENOSPC";
    case EIDRM: return "EIDRM";
    case ENOMSG: return "ENOMSG";
    case E2BIG: return "E2BIG";
    case ERANGE: return "ERANGE";
    case EFBIG: return "EFBIG";
    default: return "other";
    }
}

#define TRY(label, expr)                                              \
    do {                                                              \
        errno = 0;                                                    \
        long r_ = (long)(expr);                                       \
        printf("%s: %ld %s\n", label, r_ < 0 ? -1L : r_, errname(errno)); \
    } while (0)

// Like TRY, but only says whether the call succeeded (for calls returning ids or addresses).
#define OK(label, expr)                                               \
    do {                                                              \
        errno = 0;                                                    \
        long r_ = (long)(expr);                                       \
        printf("%s: %s %s\n", label, r_ == -1 ? "fail" : "ok", errname(errno)); \
    } while (0)

#ifndef MSG_COPY
#define MSG_COPY 040000 // Linux's value; musl's headers lack it
#endif

union semun {
    int val;
    struct semid_ds *buf;
    unsigned short *array;
    struct seminfo *__buf;
};

static void *const BAD = (void *)16;

static int wait_child(pid_t pid) {
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static pid_t child(void) {
    fflush(stdout);
    pid_t p = fork();
    if (p < 0) {
        perror("fork");
        exit(2);
    }
    return p;
}

static void sleep_ms(int ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

// Waits until `n` processes wait on semaphore `num` (GETNCNT, or GETZCNT when `zero`).
static int wait_waiters(int id, int num, int zero, int n) {
    for (int i = 0; i < 5000; i++) {
        if (semctl(id, num, zero ? GETZCNT : GETNCNT) == n) return 1;
        sleep_ms(2);
    }
    return 0;
}

static void on_alarm(int sig) { (void)sig; }

static void arm_timer(int ms) {
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART; // semop and msgrcv are never restarted anyway
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 0}, {ms / 1000, (ms % 1000) * 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
}

static void print_file(const char *path) {
    char buf[256] = {0};
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("%s: missing\n", path);
        return;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    for (char *p = buf; *p; p++)
        if (*p == '\t') *p = ' ';
    printf("%s: %s", path, buf);
}

// A /proc/sysvipc file as is, but for the columns that differ between runs (`skip`: times,
// process ids, resident bytes, keys other than IPC_PRIVATE), which show as '*' with their
// padding: the other columns keep Linux's exact widths.
static void print_listing(const char *path, const char *skip) {
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("%s: missing\n", path);
        return;
    }
    char line[512];
    int first = 1;
    while (fgets(line, sizeof line, f)) {
        if (first) {
            printf("%s header: %s", path, line);
            first = 0;
            continue;
        }
        printf("%s row: ", path);
        int col = 0;
        for (char *p = line; *p && *p != '\n'; col++) {
            char *start = p;
            while (*p == ' ') p++;
            char *tok = p;
            while (*p && *p != ' ' && *p != '\n') p++;
            int masked = strchr(skip, 'a' + col) || (col == 0 && !(p - tok == 1 && *tok == '0'));
            if (masked)
                printf(" *");
            else
                printf("%.*s", (int)(p - start), start);
        }
        printf("\n");
    }
    fclose(f);
}

// The name /proc/self/maps gives the area at `addr`, and its sharing flag.
static void print_map_name(void *addr) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && lo == (unsigned long)addr) {
            char *name = strstr(line, "/SYSV");
            printf("maps: %s %s", perms, name ? name : "(no name)\n");
        }
    }
    if (f) fclose(f);
}

static const char *self_path;

static void limits(void) {
    printf("== limits\n");
    const char *files[] = {"shmmax", "shmall", "shmmni", "shm_rmid_forced",
                           "msgmax", "msgmnb", "msgmni", "sem"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/sys/kernel/%s", files[i]);
        print_file(path);
    }
    struct shminfo si;
    OK("shmctl IPC_INFO", shmctl(0, IPC_INFO, (struct shmid_ds *)&si));
    printf("shminfo: max=%lu min=%lu mni=%lu seg=%lu all=%lu\n", si.shmmax, si.shmmin,
           si.shmmni, si.shmseg, si.shmall);
    struct seminfo se;
    union semun a = {.__buf = &se};
    OK("semctl IPC_INFO", semctl(0, 0, IPC_INFO, a));
    printf("seminfo: map=%d mni=%d mns=%d mnu=%d msl=%d opm=%d ume=%d usz=%d vmx=%d aem=%d\n",
           se.semmap, se.semmni, se.semmns, se.semmnu, se.semmsl, se.semopm, se.semume,
           se.semusz, se.semvmx, se.semaem);
    struct msginfo mi;
    OK("msgctl IPC_INFO", msgctl(0, IPC_INFO, (struct msqid_ds *)&mi));
    printf("msginfo: pool=%d map=%d max=%d mnb=%d mni=%d ssz=%d tql=%d seg=%d\n", mi.msgpool,
           mi.msgmap, mi.msgmax, mi.msgmnb, mi.msgmni, mi.msgssz, mi.msgtql, mi.msgseg);
}

static void ids(void) {
    printf("== ids (a fresh IPC namespace)\n");
    int a = shmget(IPC_PRIVATE, 100, 0600), b = shmget(IPC_PRIVATE, 100, 0600);
    shmctl(a, IPC_RMID, NULL);
    int c = shmget(IPC_PRIVATE, 100, 0600);
    printf("shm ids: %d %d %d\n", a, b, c);
    struct shmid_ds ds;
    TRY("stale shm id", shmctl(a, IPC_STAT, &ds));
    TRY("SHM_STAT by index", shmctl(b % 32768, SHM_STAT, &ds));
    TRY("SHM_STAT_ANY by index", shmctl(c % 32768, SHM_STAT_ANY, &ds));
    TRY("SHM_STAT empty index", shmctl(a % 32768, SHM_STAT, &ds));
    struct shminfo si;
    TRY("shm IPC_INFO (highest index)", shmctl(0, IPC_INFO, (struct shmid_ds *)&si));
    shmctl(b, IPC_RMID, NULL);
    shmctl(c, IPC_RMID, NULL);
    int s1 = semget(IPC_PRIVATE, 1, 0600), q1 = msgget(IPC_PRIVATE, 0600);
    printf("first sem and msg ids: %d %d\n", s1, q1);
    struct semid_ds sds;
    union semun arg = {.buf = &sds};
    TRY("SEM_STAT by index", semctl(s1 % 32768, 0, SEM_STAT, arg));
    struct msqid_ds mds;
    TRY("MSG_STAT by index", msgctl(q1 % 32768, MSG_STAT, &mds));
    semctl(s1, 0, IPC_RMID);
    msgctl(q1, IPC_RMID, NULL);
}

static void shm(void) {
    printf("== shm\n");
    TRY("shmget size 0", shmget(IPC_PRIVATE, 0, 0600));
    TRY("shmget size huge", shmget(IPC_PRIVATE, (size_t)-1, 0600));
    TRY("shmget missing key", shmget(0x5eed0001 ^ getpid(), 4096, 0600));
    int id = shmget(IPC_PRIVATE, 10000, 0640);
    printf("shmget: %s\n", id >= 0 ? "ok" : errname(errno));
    struct shmid_ds ds;
    TRY("IPC_STAT", shmctl(id, IPC_STAT, &ds));
    printf("stat: key=%d mode=%o segsz=%zu nattch=%lu cpid-is-me=%d lpid=%d uid=%u cuid=%u\n",
           ds.shm_perm.__key, ds.shm_perm.mode, ds.shm_segsz, ds.shm_nattch,
           ds.shm_cpid == getpid(), ds.shm_lpid, ds.shm_perm.uid, ds.shm_perm.cuid);
    TRY("IPC_STAT bad buffer", shmctl(id, IPC_STAT, BAD));
    TRY("shmctl bad id", shmctl(-1, IPC_STAT, &ds));
    TRY("shmctl stale id", shmctl(id + 32768 * 7, IPC_STAT, &ds));
    TRY("shmctl bad cmd", shmctl(id, 999, &ds));
    char *p = shmat(id, NULL, 0);
    printf("shmat: %s\n", p != (void *)-1 ? "ok" : errname(errno));
    printf("fresh segment reads zero: %d\n", p[0] == 0 && p[9999] == 0 && p[12287] == 0);
    strcpy(p, "from parent");
    shmctl(id, IPC_STAT, &ds);
    printf("after attach: nattch=%lu lpid-is-me=%d atime-set=%d\n", ds.shm_nattch,
           ds.shm_lpid == getpid(), ds.shm_atime != 0);
    print_map_name(p);
    pid_t c = child();
    if (c == 0) {
        // Attachments do not survive exec.
        shmat(id, NULL, 0);
        char arg[16];
        snprintf(arg, sizeof arg, "%d", id);
        execl(self_path, self_path, "nattch", arg, (char *)NULL);
        _exit(127);
    }
    wait_child(c);
    shmctl(id, IPC_STAT, &ds);
    printf("exec detached: dtime-set=%d lpid-is-child=%d nattch=%lu\n", ds.shm_dtime != 0,
           ds.shm_lpid == c, ds.shm_nattch);
    c = child();
    if (c == 0) {
        struct shmid_ds d;
        shmctl(id, IPC_STAT, &d);
        printf("child sees: '%s' nattch=%lu\n", p, d.shm_nattch);
        strcpy(p + 100, "from child");
        fflush(stdout);
        _exit(0);
    }
    wait_child(c);
    shmctl(id, IPC_STAT, &ds);
    printf("parent sees: '%s' nattch after child exit=%lu\n", p + 100, ds.shm_nattch);

    // A second, read-only attach; fragments from mprotect still detach as one.
    char *ro = shmat(id, NULL, SHM_RDONLY);
    printf("read-only attach sees: '%s'\n", ro);
    print_map_name(ro);
    TRY("mprotect read-only attach writable", mprotect(ro, 4096, PROT_READ | PROT_WRITE));
    TRY("mprotect splits it", mprotect(ro + 4096, 4096, PROT_NONE));
    shmctl(id, IPC_STAT, &ds);
    printf("two attaches, one split: nattch=%lu\n", ds.shm_nattch);
    TRY("shmdt inside", shmdt(ro + 1));
    TRY("shmdt middle fragment", shmdt(ro + 4096));
    TRY("shmdt read-only attach", shmdt(ro));
    shmctl(id, IPC_STAT, &ds);
    printf("after shmdt: nattch=%lu\n", ds.shm_nattch);
    TRY("shmdt again", shmdt(ro));
    TRY("shmdt unmapped", shmdt((void *)0x10000));

    // Addresses: hints, SHM_RND, SHM_REMAP.
    char *area = mmap(NULL, 8 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    TRY("shmat unaligned", shmat(id, area + 100, 0));
    TRY("shmat over a mapping", shmat(id, area, 0));
    TRY("shmat SHM_REMAP without address", shmat(id, NULL, SHM_REMAP));
    char *q = shmat(id, area + 100, SHM_RND | SHM_REMAP);
    printf("shmat SHM_RND|SHM_REMAP: at-rounded=%d sees='%s'\n", q == area, q);
    TRY("shmdt remapped", shmdt(q));
    munmap(area, 8 * 4096);

    // Segments by key, IPC_RMID while attached.
    key_t key = 0x5eed0000 ^ getpid();
    int kid = shmget(key, 5000, IPC_CREAT | 0600);
    OK("shmget key create", kid);
    TRY("shmget key same", shmget(key, 4096, 0600) == kid);
    TRY("shmget key larger", shmget(key, 8192, 0600));
    TRY("shmget key excl", shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600));
    char *k = shmat(kid, NULL, 0);
    strcpy(k, "kept");
    c = child();
    if (c == 0) {
        // Another user: no access, no removal.
        if (setgid(1000) || setuid(1000)) _exit(3);
        TRY("other user shmat", shmat(kid, NULL, 0));
        TRY("other user IPC_STAT", shmctl(kid, IPC_STAT, &ds));
        TRY("other user IPC_RMID", shmctl(kid, IPC_RMID, NULL));
        TRY("other user SHM_LOCK", shmctl(kid, SHM_LOCK, NULL));
        TRY("other user reads group-readable", shmat(id, NULL, SHM_RDONLY) != (void *)-1);
        fflush(stdout);
        _exit(0);
    }
    wait_child(c);
    TRY("SHM_LOCK", shmctl(kid, SHM_LOCK, NULL));
    shmctl(kid, IPC_STAT, &ds);
    printf("locked mode=%o\n", ds.shm_perm.mode);
    TRY("SHM_UNLOCK", shmctl(kid, SHM_UNLOCK, NULL));
    TRY("IPC_RMID attached", shmctl(kid, IPC_RMID, NULL));
    shmctl(kid, IPC_STAT, &ds);
    printf("removed but attached: key=%d mode=%o nattch=%lu data='%s'\n", ds.shm_perm.__key,
           ds.shm_perm.mode, ds.shm_nattch, k);
    TRY("shmget removed key", shmget(key, 4096, 0600));
    char *k2 = shmat(kid, NULL, 0);
    printf("attach after IPC_RMID: %s sees='%s'\n", k2 != (void *)-1 ? "ok" : errname(errno), k2);
    shmdt(k2);
    TRY("still there", shmctl(kid, IPC_STAT, &ds));
    TRY("last shmdt", shmdt(k));
    TRY("gone after last detach", shmctl(kid, IPC_STAT, &ds));
    struct shm_info info;
    int max = shmctl(0, SHM_INFO, (struct shmid_ds *)&info);
    printf("SHM_INFO: %s used>=1=%d\n", max >= 0 ? "ok" : errname(errno), info.used_ids >= 1);
    print_listing("/proc/sysvipc/shm", "eflmno");
    TRY("IPC_SET", shmctl(id, IPC_STAT, &ds) || (ds.shm_perm.mode = 0600, shmctl(id, IPC_SET, &ds)));
    shmctl(id, IPC_STAT, &ds);
    printf("after IPC_SET: mode=%o\n", ds.shm_perm.mode);
    TRY("IPC_RMID", shmctl(id, IPC_RMID, NULL));
    printf("memory stays until detached: '%s'\n", p);
    TRY("shmdt last", shmdt(p));
    TRY("IPC_STAT removed", shmctl(id, IPC_STAT, &ds));
    // Attachments go with exec and exit: a child attaches, exits; the count drops.
    int eid = shmget(IPC_PRIVATE, 4096, 0600);
    c = child();
    if (c == 0) {
        shmat(eid, NULL, 0);
        shmat(eid, NULL, 0);
        _exit(0);
    }
    wait_child(c);
    shmctl(eid, IPC_STAT, &ds);
    printf("child attached twice and exited: nattch=%lu lpid-is-child=%d dtime-set=%d\n",
           ds.shm_nattch, ds.shm_lpid == c, ds.shm_dtime != 0);
    shmctl(eid, IPC_RMID, NULL);
}

static void sem(void) {
    printf("== sem\n");
    TRY("semget 0 sems", semget(IPC_PRIVATE, 0, 0600));
    TRY("semget -1 sems", semget(IPC_PRIVATE, -1, 0600));
    TRY("semget too many", semget(IPC_PRIVATE, 40000, 0600));
    int id = semget(IPC_PRIVATE, 3, 0600);
    printf("semget: %s\n", id >= 0 ? "ok" : errname(errno));
    union semun a;
    a.val = 5;
    TRY("SETVAL", semctl(id, 0, SETVAL, a));
    TRY("GETVAL", semctl(id, 0, GETVAL));
    TRY("GETPID is me", semctl(id, 0, GETPID) == getpid());
    a.val = 40000;
    TRY("SETVAL too big", semctl(id, 0, SETVAL, a));
    a.val = -1;
    TRY("SETVAL negative", semctl(id, 0, SETVAL, a));
    TRY("GETVAL bad semnum", semctl(id, 3, GETVAL));
    TRY("GETVAL bad id", semctl(-1, 0, GETVAL));
    TRY("bad cmd", semctl(id, 0, 77));
    unsigned short vals[3] = {1, 2, 3}, got[3] = {0};
    a.array = vals;
    TRY("SETALL", semctl(id, 0, SETALL, a));
    a.array = got;
    TRY("GETALL", semctl(id, 0, GETALL, a));
    printf("values: %d %d %d\n", got[0], got[1], got[2]);
    a.array = BAD;
    TRY("GETALL bad buffer", semctl(id, 0, GETALL, a));
    struct semid_ds ds;
    a.buf = &ds;
    TRY("IPC_STAT", semctl(id, 0, IPC_STAT, a));
    printf("stat: nsems=%lu mode=%o otime=%ld\n", ds.sem_nsems, ds.sem_perm.mode, (long)ds.sem_otime);

    struct sembuf op = {0, -2, IPC_NOWAIT};
    TRY("semop would block", semop(id, &op, 1));
    struct sembuf far = {5, 1, 0};
    TRY("semop semnum too big", semop(id, &far, 1));
    TRY("semop no ops", semop(id, &op, 0));
    TRY("semop too many ops", semop(id, &op, 501));
    TRY("semop bad pointer", semop(id, BAD, 1));
    TRY("semop bad id", semop(-5, &op, 1));
    struct sembuf over = {0, 32767, 0};
    TRY("semop past SEMVMX", semop(id, &over, 1));
    struct sembuf two[2] = {{1, -1, 0}, {2, -5, IPC_NOWAIT}};
    TRY("semop all or nothing", semop(id, two, 2));
    TRY("sem 1 untouched", semctl(id, 1, GETVAL));
    struct timespec ts = {0, 50 * 1000000};
    struct sembuf wait2 = {0, -2, 0};
    TRY("semtimedop times out", semtimedop(id, &wait2, 1, &ts));
    struct timespec badts = {0, 2000000000};
    TRY("semtimedop bad timeout", semtimedop(id, &wait2, 1, &badts));
    a.buf = &ds;
    semctl(id, 0, IPC_STAT, a);
    printf("otime set: %d\n", ds.sem_otime != 0);

    // A blocked semop completed by another process's increment.
    pid_t c = child();
    if (c == 0) {
        struct sembuf o = {0, -2, 0};
        int r = semop(id, &o, 1);
        _exit(r == 0 ? 0 : 10 + errno);
    }
    printf("child waits (ncnt=1): %d\n", wait_waiters(id, 0, 0, 1));
    struct sembuf inc = {0, 1, 0};
    TRY("increment wakes it", semop(id, &inc, 1));
    printf("child's semop: %d, value now %d, pid is child %d\n", wait_child(c),
           semctl(id, 0, GETVAL), semctl(id, 0, GETPID) == c);

    // Wait-for-zero.
    c = child();
    if (c == 0) {
        struct sembuf o = {2, 0, 0};
        _exit(semop(id, &o, 1) == 0 ? 0 : 10 + errno);
    }
    printf("child waits for zero (zcnt=1): %d\n", wait_waiters(id, 2, 1, 1));
    a.val = 0;
    TRY("SETVAL 0 wakes it", semctl(id, 2, SETVAL, a));
    printf("zero waiter: %d\n", wait_child(c));

    // Waiters are served in arrival order.
    int pfd[2];
    if (pipe(pfd)) return;
    pid_t w[2];
    for (int i = 0; i < 2; i++) {
        w[i] = child();
        if (w[i] == 0) {
            struct sembuf o = {0, -1, 0};
            if (semop(id, &o, 1) == 0) {
                char ch = 'A' + i;
                if (write(pfd[1], &ch, 1) != 1) _exit(1);
            }
            _exit(0);
        }
        wait_waiters(id, 0, 0, i + 1);
    }
    for (int i = 0; i < 2; i++) {
        semop(id, &inc, 1);
        char ch = '?';
        if (read(pfd[0], &ch, 1) != 1) ch = '!';
        printf("woken %d: %c\n", i, ch);
    }
    wait_child(w[0]);
    wait_child(w[1]);
    close(pfd[0]);
    close(pfd[1]);

    // SEM_UNDO: undone when the process exits.
    a.val = 2;
    semctl(id, 1, SETVAL, a);
    c = child();
    if (c == 0) {
        struct sembuf o[2] = {{1, 3, SEM_UNDO}, {0, 0, 0}};
        semop(id, o, 2);
        struct sembuf d = {1, -1, SEM_UNDO};
        semop(id, &d, 1);
        printf("child: sem1=%d\n", semctl(id, 1, GETVAL));
        fflush(stdout);
        _exit(0);
    }
    wait_child(c);
    printf("after child exit sem1=%d (undone), pid is child %d\n", semctl(id, 1, GETVAL),
           semctl(id, 1, GETPID) == c);
    // An undo that would go below zero stops at zero.
    c = child();
    if (c == 0) {
        struct sembuf o = {1, 2, SEM_UNDO};
        semop(id, &o, 1);
        struct sembuf d = {1, -4, 0};
        semop(id, &d, 1);
        _exit(0);
    }
    wait_child(c);
    printf("undo clamped at zero: sem1=%d\n", semctl(id, 1, GETVAL));
    // SETVAL forgets pending adjustments.
    c = child();
    if (c == 0) {
        struct sembuf o = {1, 5, SEM_UNDO};
        semop(id, &o, 1);
        union semun v = {.val = 7};
        semctl(id, 1, SETVAL, v);
        _exit(0);
    }
    wait_child(c);
    printf("SETVAL cleared the undo: sem1=%d\n", semctl(id, 1, GETVAL));

    // Signals interrupt a blocked semop: EINTR even with SA_RESTART.
    c = child();
    if (c == 0) {
        arm_timer(100);
        struct sembuf o = {0, -10, 0};
        errno = 0;
        int r = semop(id, &o, 1);
        printf("interrupted semop: %d %s\n", r, errname(errno));
        fflush(stdout);
        _exit(0);
    }
    wait_child(c);

    // Another user may not operate on a 0600 set nor remove it.
    c = child();
    if (c == 0) {
        if (setgid(1000) || setuid(1000)) _exit(3);
        struct sembuf o = {0, 1, 0};
        TRY("other user semop", semop(id, &o, 1));
        TRY("other user GETVAL", semctl(id, 0, GETVAL));
        TRY("other user IPC_RMID", semctl(id, 0, IPC_RMID));
        fflush(stdout);
        _exit(0);
    }
    wait_child(c);
    print_listing("/proc/sysvipc/sem", "ij");

    // Removal wakes waiters with EIDRM.
    c = child();
    if (c == 0) {
        struct sembuf o = {0, -10, 0};
        int r = semop(id, &o, 1);
        _exit(r == 0 ? 0 : 10 + errno);
    }
    wait_waiters(id, 0, 0, 1);
    TRY("IPC_RMID", semctl(id, 0, IPC_RMID));
    printf("waiter after removal: %s\n", errname(wait_child(c) - 10));
    TRY("GETVAL removed", semctl(id, 0, GETVAL));
    struct sembuf o = {0, 1, 0};
    TRY("semop removed", semop(id, &o, 1));

    key_t key = 0x5eed1000 ^ getpid();
    int kid = semget(key, 2, IPC_CREAT | 0600);
    TRY("semget key again", semget(key, 2, 0) == kid);
    TRY("semget key more sems", semget(key, 3, 0));
    TRY("semget key excl", semget(key, 2, IPC_CREAT | IPC_EXCL));
    semctl(kid, 0, IPC_RMID);
}

struct msg {
    long mtype;
    char text[64];
};

static void send(int id, long type, const char *text) {
    struct msg m = {type, {0}};
    strcpy(m.text, text);
    if (msgsnd(id, &m, strlen(text), 0)) printf("msgsnd %ld: %s\n", type, errname(errno));
}

static void recv_print(const char *label, int id, size_t size, long type, int flags) {
    struct msg m = {0, {0}};
    errno = 0;
    long n = msgrcv(id, &m, size, type, flags);
    if (n < 0)
        printf("%s: -1 %s\n", label, errname(errno));
    else
        printf("%s: %ld type=%ld '%.*s'\n", label, n, m.mtype, (int)n, m.text);
}

static void msg(void) {
    printf("== msg\n");
    int id = msgget(IPC_PRIVATE, 0600);
    printf("msgget: %s\n", id >= 0 ? "ok" : errname(errno));
    send(id, 3, "three");
    send(id, 1, "one-a");
    send(id, 2, "two");
    send(id, 1, "one-b");
    send(id, 5, "five");
    struct msqid_ds ds;
    TRY("IPC_STAT", msgctl(id, IPC_STAT, &ds));
    printf("stat: qnum=%lu cbytes=%lu qbytes=%lu mode=%o lspid-is-me=%d lrpid=%d\n",
           ds.msg_qnum, ds.__msg_cbytes, ds.msg_qbytes, ds.msg_perm.mode,
           ds.msg_lspid == getpid(), ds.msg_lrpid);
    recv_print("copy #1", id, 64, 1, MSG_COPY | IPC_NOWAIT);
    recv_print("copy #9", id, 64, 9, MSG_COPY | IPC_NOWAIT);
    recv_print("copy waiting", id, 64, 1, MSG_COPY);
    recv_print("copy except", id, 64, 1, MSG_COPY | MSG_EXCEPT | IPC_NOWAIT);
    recv_print("type 2", id, 64, 2, 0);
    recv_print("type <= 4", id, 64, -4, 0);
    recv_print("not type 3", id, 64, 3, MSG_EXCEPT);
    recv_print("too small", id, 2, 0, 0);
    recv_print("cut to fit", id, 2, 0, MSG_NOERROR);
    recv_print("type 9 nowait", id, 64, 9, IPC_NOWAIT);
    recv_print("lowest", id, 64, -100, 0);
    msgctl(id, IPC_STAT, &ds);
    printf("empty: qnum=%lu cbytes=%lu lrpid-is-me=%d\n", ds.msg_qnum, ds.__msg_cbytes,
           ds.msg_lrpid == getpid());

    struct msg m = {0, "x"};
    TRY("msgsnd type 0", msgsnd(id, &m, 1, 0));
    m.mtype = 1;
    TRY("msgsnd too big", msgsnd(id, &m, 8193, 0));
    TRY("msgsnd bad pointer", msgsnd(id, BAD, 1, 0));
    TRY("msgsnd bad id", msgsnd(-1, &m, 1, 0));
    TRY("msgrcv negative size", msgrcv(id, &m, (size_t)-1, 0, IPC_NOWAIT));
    TRY("msgrcv bad id", msgrcv(12345678, &m, 1, 0, IPC_NOWAIT));
    TRY("msgctl bad cmd", msgctl(id, 99, &ds));
    TRY("msgctl bad buffer", msgctl(id, IPC_STAT, BAD));

    // A receiver waiting for type 7 skips type 6.
    pid_t c = child();
    if (c == 0) {
        recv_print("child got", id, 64, 7, 0);
        fflush(stdout);
        _exit(0);
    }
    sleep_ms(100);
    send(id, 6, "six");
    send(id, 7, "seven");
    wait_child(c);
    recv_print("left for parent", id, 64, 0, IPC_NOWAIT);

    // A full queue: IPC_NOWAIT fails, a blocked sender continues once there is room.
    msgctl(id, IPC_STAT, &ds);
    ds.msg_qbytes = 10;
    TRY("IPC_SET qbytes", msgctl(id, IPC_SET, &ds));
    send(id, 1, "12345678");
    m.mtype = 1;
    strcpy(m.text, "abcdefgh");
    TRY("msgsnd full nowait", msgsnd(id, &m, 8, IPC_NOWAIT));
    c = child();
    if (c == 0) _exit(msgsnd(id, &m, 8, 0) == 0 ? 0 : 10 + errno);
    sleep_ms(100);
    recv_print("make room", id, 64, 0, 0);
    printf("blocked sender: %d\n", wait_child(c));
    recv_print("its message", id, 64, 0, 0);

    // Interrupted and removed receivers.
    c = child();
    if (c == 0) {
        arm_timer(100);
        recv_print("interrupted msgrcv", id, 64, 0, 0);
        fflush(stdout);
        _exit(0);
    }
    wait_child(c);
    c = child();
    if (c == 0) {
        if (setgid(1000) || setuid(1000)) _exit(3);
        TRY("other user msgsnd", msgsnd(id, &m, 1, 0));
        TRY("other user IPC_RMID", msgctl(id, IPC_RMID, NULL));
        fflush(stdout);
        _exit(0);
    }
    wait_child(c);
    print_listing("/proc/sysvipc/msg", "fglmn");
    c = child();
    if (c == 0) {
        struct msg r;
        errno = 0;
        msgrcv(id, &r, 64, 0, 0);
        _exit(errno == EIDRM || errno == EINVAL ? 0 : 1);
    }
    sleep_ms(200);
    TRY("IPC_RMID", msgctl(id, IPC_RMID, NULL));
    printf("receiver after removal: %d\n", wait_child(c));
    TRY("msgsnd removed", msgsnd(id, &m, 1, 0));
    key_t key = 0x5eed2000 ^ getpid();
    int kid = msgget(key, IPC_CREAT | 0600);
    TRY("msgget key again", msgget(key, 0) == kid);
    TRY("msgget key excl", msgget(key, IPC_CREAT | IPC_EXCL | 0600));
    TRY("msgget missing key", msgget(key + 1, 0));
    msgctl(kid, IPC_RMID, NULL);
}

static void write_sysctl(const char *name, const char *value) {
    char path[64];
    snprintf(path, sizeof path, "/proc/sys/kernel/%s", name);
    int fd = open(path, O_WRONLY);
    if (fd < 0) {
        printf("open %s for writing: %s\n", name, errname(errno));
        return;
    }
    errno = 0;
    long n = write(fd, value, strlen(value));
    printf("write %s=%s: %s\n", name, value, n < 0 ? errname(errno) : "ok");
    close(fd);
}

static int sysctls(void) {
    printf("== sysctl\n");
    write_sysctl("shmmax", "8192");
    TRY("shmget past shmmax", shmget(IPC_PRIVATE, 8193, 0600));
    int a = shmget(IPC_PRIVATE, 8192, 0600);
    OK("shmget at shmmax", a);
    write_sysctl("shmall", "3");
    TRY("shmget past shmall", shmget(IPC_PRIVATE, 8192, 0600));
    int b = shmget(IPC_PRIVATE, 4096, 0600);
    OK("shmget within shmall", b);
    write_sysctl("shmall", "100");
    write_sysctl("shmmni", "2");
    TRY("shmget past shmmni", shmget(IPC_PRIVATE, 4096, 0600));
    static const char *const bad[][2] = {
        {"shmmax", "-1"}, {"shmmax", "12x"}, {"shmmni", "40000"}, {"shm_rmid_forced", "2"},
        {"msgmni", "-1"}, {"sem", "1 2 3 40000"}, {"msgmax", "2147483648"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) write_sysctl(bad[i][0], bad[i][1]);
    write_sysctl("msgmax", "0x40");
    print_file("/proc/sys/kernel/shmmax");
    print_file("/proc/sys/kernel/shmmni");
    print_file("/proc/sys/kernel/msgmax");
    print_file("/proc/sys/kernel/sem");
    struct msg { long type; char text[128]; } m = {1, "x"};
    int q = msgget(IPC_PRIVATE, 0600);
    TRY("msgsnd past msgmax", msgsnd(q, &m, 65, IPC_NOWAIT));
    TRY("msgsnd at msgmax", msgsnd(q, &m, 64, IPC_NOWAIT));
    write_sysctl("msgmnb", "50");
    write_sysctl("msgmni", "2");
    int q2 = msgget(IPC_PRIVATE, 0600);
    struct msqid_ds ds;
    msgctl(q2, IPC_STAT, &ds);
    printf("new queue qbytes=%lu\n", ds.msg_qbytes);
    TRY("msgget past msgmni", msgget(IPC_PRIVATE, 0600));
    write_sysctl("sem", "2 3 10 2");
    print_file("/proc/sys/kernel/sem");
    TRY("semget past semmsl", semget(IPC_PRIVATE, 3, 0600));
    int s1 = semget(IPC_PRIVATE, 2, 0600);
    OK("semget", s1);
    TRY("semget past semmns", semget(IPC_PRIVATE, 2, 0600));
    int s2 = semget(IPC_PRIVATE, 1, 0600);
    OK("semget within semmns", s2);
    write_sysctl("sem", "2 30 10 2");
    TRY("semget past semmni", semget(IPC_PRIVATE, 1, 0600));
    struct sembuf ops[11] = {{0}};
    TRY("semop past semopm", semop(s1, ops, 11));
    write_sysctl("shmmni", "4096");
    int pfd[2];
    if (pipe(pfd)) return 1;
    pid_t o = child();
    if (o == 0) {
        int id = shmget(IPC_PRIVATE, 4096, 0600);
        printf("child's segment: %s\n", id >= 0 ? "ok" : errname(errno));
        fflush(stdout);
        if (write(pfd[1], &id, sizeof id) != sizeof id) _exit(1);
        _exit(0);
    }
    wait_child(o);
    int orphan = -1;
    if (read(pfd[0], &orphan, sizeof orphan) != sizeof orphan) return 1;
    TRY("orphan kept while not forced", shmctl(orphan, IPC_STAT, (struct shmid_ds *)&ds));
    write_sysctl("shm_rmid_forced", "1");
    TRY("orphan destroyed when forced", shmctl(orphan, IPC_STAT, (struct shmid_ds *)&ds));
    o = child();
    if (o == 0) {
        int id = shmget(IPC_PRIVATE, 4096, 0600);
        printf("child's segment: %s\n", id >= 0 ? "ok" : errname(errno));
        fflush(stdout);
        if (write(pfd[1], &id, sizeof id) != sizeof id) _exit(1);
        _exit(0);
    }
    wait_child(o);
    if (read(pfd[0], &orphan, sizeof orphan) != sizeof orphan) return 1;
    TRY("forced: destroyed at its creator's exit", shmctl(orphan, IPC_STAT, (struct shmid_ds *)&ds));
    TRY("segment of a live creator stays", shmctl(a, IPC_STAT, (struct shmid_ds *)0) < 0 &&
        errno == EFAULT);
    shmctl(b, IPC_RMID, NULL);
    int f = shmget(IPC_PRIVATE, 4096, 0600);
    void *at = shmat(f, NULL, 0);
    TRY("shmdt", shmdt(at));
    struct shmid_ds sds;
    TRY("forced removal at last detach", shmctl(f, IPC_STAT, &sds));
    pid_t c = child();
    if (c == 0) {
        if (setgid(1000) || setuid(1000)) _exit(3);
        write_sysctl("shmmax", "1");
        print_file("/proc/sys/kernel/shmmax");
        fflush(stdout);
        _exit(0);
    }
    wait_child(c);
    shmctl(a, IPC_RMID, NULL);
    msgctl(q, IPC_RMID, NULL);
    msgctl(q2, IPC_RMID, NULL);
    semctl(s1, 0, IPC_RMID);
    semctl(s2, 0, IPC_RMID);
    printf("done\n");
    return 0;
}

// What root may do to another user's objects and to the limits, by capability:
// CAP_IPC_OWNER (access), CAP_SYS_ADMIN (IPC_RMID, writing the limits), CAP_SYS_RESOURCE
// (msg_qbytes past msgmnb).
static int caps(void) {
    printf("== caps\n");
    int pfd[2];
    if (pipe(pfd)) return 1;
    pid_t c = child();
    if (c == 0) {
        if (setgid(1000) || setuid(1000)) _exit(3);
        int ids[2] = {shmget(IPC_PRIVATE, 4096, 0600), msgget(IPC_PRIVATE, 0600)};
        if (write(pfd[1], ids, sizeof ids) != sizeof ids) _exit(1);
        _exit(0);
    }
    wait_child(c);
    int ids[2];
    if (read(pfd[0], ids, sizeof ids) != sizeof ids) return 1;
    OK("shmat another user's segment", shmat(ids[0], NULL, 0));
    struct msqid_ds ds;
    TRY("IPC_STAT another user's queue", msgctl(ids[1], IPC_STAT, &ds));
    ds.msg_qbytes = 1 << 20;
    TRY("IPC_SET qbytes past msgmnb", msgctl(ids[1], IPC_SET, &ds));
    TRY("IPC_RMID another user's segment", shmctl(ids[0], IPC_RMID, NULL));
    TRY("IPC_RMID another user's queue", msgctl(ids[1], IPC_RMID, NULL));
    write_sysctl("msgmnb", "20000");
    printf("done\n");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    self_path = argv[0];
    if (argc > 2 && strcmp(argv[1], "nattch") == 0) {
        struct shmid_ds ds;
        shmctl(atoi(argv[2]), IPC_STAT, &ds);
        printf("after exec: nattch=%lu\n", ds.shm_nattch);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "sysctl") == 0) return sysctls();
    if (argc > 1 && strcmp(argv[1], "caps") == 0) return caps();
    limits();
    ids();
    shm();
    sem();
    msg();
    printf("done\n");
    return 0;
}
