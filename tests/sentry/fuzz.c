/* A syscall fuzzer: child processes make random syscalls with random arguments until they die
 * or their alarm fires; the parent (the sandbox's init, which signals cannot kill) keeps
 * starting new ones until the time is up (killing any that outlive two seconds), then
 * reports how many calls were made. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t state;
static uint64_t rnd(void) {
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    return state;
}

static uint64_t arg(char *buf) {
    switch (rnd() % 8) {
    case 0: return 0;
    case 1: return rnd() % 4096;
    case 2: return (uint64_t)(buf + rnd() % 4096);   /* a valid pointer */
    case 3: return (uint64_t)-1 - rnd() % 16;         /* -1, -2 ... */
    case 4: return 0xffff800000000000ull + rnd();      /* kernel half */
    case 5: return 0x7ffffffff000ull - rnd() % 8192;   /* around the top of user space */
    default: return rnd();
    }
}

static int excluded(long nr) {
    /* Calls that would only create more processes, or stop this one for good. */
    return nr == SYS_fork || nr == SYS_vfork || nr == SYS_clone || nr == SYS_clone3 ||
           nr == SYS_pause || nr == SYS_rt_sigsuspend || nr == SYS_exit || nr == SYS_exit_group;
}

int main(int argc, char **argv) {
    int seconds = argc > 1 ? atoi(argv[1]) : 10;
    unsigned seed0 = argc > 2 ? (unsigned)atoi(argv[2]) : (unsigned)time(NULL);
    srand(seed0);
    time_t end = time(NULL) + seconds;
    long children = 0, calls = 0;
    int pipefd[2];
    pipe(pipefd);
    fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    while (time(NULL) < end) {
        uint64_t seed = (uint64_t)rand() << 32 | (uint64_t)rand() | 1;
        pid_t p = fork();
        if (p == 0) {
            close(pipefd[0]);
            state = seed;
            alarm(1);
            char *buf = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            /* Objects for random calls to find among the low descriptors and timer ids: a
             * pty pair (ioctls), a periodic timer. */
            int pty = open("/dev/ptmx", O_RDWR | O_NOCTTY);
            int unlock = 0;
            unsigned ptn = 0;
            if (pty >= 0 && ioctl(pty, TIOCSPTLCK, &unlock) == 0 && ioctl(pty, TIOCGPTN, &ptn) == 0) {
                char name[32];
                snprintf(name, sizeof name, "/dev/pts/%u", ptn);
                open(name, O_RDWR);
            }
            int timer;
            /* SIGWINCH: ignored by default, so the child lives on. */
            struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGWINCH};
            if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &timer) == 0) {
                struct itimerspec every = {{0, 50000000}, {0, 50000000}};
                syscall(SYS_timer_settime, timer, 0, &every, 0);
            }
            long n = 0;
            for (;;) {
                long nr = rnd() % 463;
                if (excluded(nr)) continue;
                syscall(nr, arg(buf), arg(buf), arg(buf), arg(buf), arg(buf), arg(buf));
                if (++n % 64 == 0) write(pipefd[1], "@", 1);
            }
        }
        if (p < 0) continue;
        children++;
        int st;
        /* A child may cancel its own alarm and block forever: kill it after two seconds. */
        for (int i = 0; waitpid(p, &st, WNOHANG) == 0; i++) {
            if (i == 200) kill(p, SIGKILL);
            usleep(10000);
        }
        char b[4096];
        ssize_t r;
        while ((r = read(pipefd[0], b, sizeof b)) == sizeof b) calls += r * 64;
        if (r > 0) calls += r * 64;
        /* Reap anything the children left behind. */
        while (waitpid(-1, &st, WNOHANG) > 0) {}
    }
    printf("fuzz seed=%u children=%ld calls>=%ld\n", seed0, children, calls);
    return 0;
}
