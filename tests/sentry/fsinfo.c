// Filesystem statistics, directory sizes and RLIMIT_NOFILE, printed only where Linux and the
// Sentry must agree: pseudo filesystems report no space, tmpfs reports consistent space and
// counts directory entries as its size, and the descriptor table keeps to RLIMIT_NOFILE.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

static const char *errname(int e) {
    switch (e) {
    case 0: return "0";
    case ENOENT: return "ENOENT";
    case ENOTDIR: return "ENOTDIR";
    case EFAULT: return "EFAULT";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    case EMFILE: return "EMFILE";
    default: return "other";
    }
}

// Prints what `expr` returned and the errno it left.
#define TRY(label, expr)                                              \
    do {                                                              \
        errno = 0;                                                    \
        long r_ = (expr);                                             \
        printf("%s: %ld %s\n", label, r_, errname(errno));            \
    } while (0)

static void pseudo(const char *path) {
    struct statfs s;
    int r = statfs(path, &s);
    printf("%s: %d type %#lx bsize %ld blocks %lu free %lu avail %lu files %lu ffree %lu "
           "namelen %ld frsize %ld rdonly %d valid %d\n",
           path, r, (unsigned long)s.f_type, (long)s.f_bsize, (unsigned long)s.f_blocks,
           (unsigned long)s.f_bfree, (unsigned long)s.f_bavail, (unsigned long)s.f_files,
           (unsigned long)s.f_ffree, (long)s.f_namelen, (long)s.f_frsize,
           (int)(s.f_flags & ST_RDONLY), (s.f_flags & 0x20) != 0);
}

static void tmpfs(void) {
    struct statfs s, f;
    int r = statfs("/dev/shm", &s);
    printf("/dev/shm: %d type %#lx bsize %ld namelen %ld frsize %ld space %d inodes %d valid %d\n",
           r, (unsigned long)s.f_type, (long)s.f_bsize, (long)s.f_namelen, (long)s.f_frsize,
           s.f_blocks > 0 && s.f_blocks >= s.f_bfree && s.f_bfree >= s.f_bavail,
           s.f_files >= s.f_ffree, (s.f_flags & 0x20) != 0);
    int fd = open("/dev/shm/fsinfo-file", O_CREAT | O_RDWR, 0600);
    r = fstatfs(fd, &f);
    printf("fstatfs of a file there: %d same fs %d\n", r,
           f.f_type == s.f_type && f.f_blocks == s.f_blocks && f.f_bsize == s.f_bsize);
    close(fd);
    unlink("/dev/shm/fsinfo-file");
    struct statvfs v;
    r = statvfs("/dev/shm", &v);
    printf("statvfs /dev/shm: %d rdonly %lu namemax %lu\n", r, v.f_flag & ST_RDONLY,
           (unsigned long)v.f_namemax);
}

static void errors(void) {
    struct statfs s;
    TRY("statfs missing", statfs("/no/such/dir", &s));
    TRY("statfs through a file", statfs("/dev/null/x", &s));
    TRY("statfs bad buffer", statfs("/proc", (struct statfs *)8));
    TRY("fstatfs bad fd", fstatfs(-1, &s));
}

static long size_of(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

// tmpfs: 20 bytes per entry, "." and ".." included; no blocks.
static void dir_sizes(void) {
    const char *d = "/dev/shm/fsinfo-dir";
    mkdir(d, 0755);
    long empty = size_of(d);
    close(open("/dev/shm/fsinfo-dir/a", O_CREAT | O_WRONLY, 0644));
    mkdir("/dev/shm/fsinfo-dir/sub", 0755);
    symlink("a", "/dev/shm/fsinfo-dir/link");
    long three = size_of(d);
    unlink("/dev/shm/fsinfo-dir/link");
    long two = size_of(d);
    struct stat st;
    stat(d, &st);
    printf("tmpfs dir sizes: empty %ld three entries %ld two %ld blocks %ld nlink %lu\n", empty,
           three, two, (long)st.st_blocks, (unsigned long)st.st_nlink);
    unlink("/dev/shm/fsinfo-dir/a");
    rmdir("/dev/shm/fsinfo-dir/sub");
    rmdir(d);
}

static void nofile(void) {
    struct rlimit rl, low;
    getrlimit(RLIMIT_NOFILE, &rl);
    printf("RLIMIT_NOFILE soft %llu hard %llu\n", (unsigned long long)rl.rlim_cur,
           (unsigned long long)rl.rlim_max);
    low = rl;
    low.rlim_cur = 64;
    printf("lower soft to 64: %d\n", setrlimit(RLIMIT_NOFILE, &low));
    int last = -1, fd;
    errno = 0;
    while ((fd = open("/dev/null", O_RDONLY)) >= 0) last = fd;
    printf("opened up to fd %d, then %s\n", last, errname(errno));
    TRY("dup2 to 64", dup2(0, 64));
    TRY("F_DUPFD from 64", fcntl(0, F_DUPFD, 64));
    close(last);
    printf("dup2 to %d after closing it: %d\n", last, dup2(0, last) == last);
    for (int i = 3; i <= last; i++) close(i);
    struct rlimit bad = {.rlim_cur = rl.rlim_max + 1, .rlim_max = rl.rlim_max};
    TRY("soft above hard", setrlimit(RLIMIT_NOFILE, &bad));
    struct rlimit huge = {.rlim_cur = 1024, .rlim_max = (1 << 20) + 1};
    TRY("hard above nr_open", setrlimit(RLIMIT_NOFILE, &huge));
    printf("restore: %d\n", setrlimit(RLIMIT_NOFILE, &rl));
}

int main(void) {
    pseudo("/proc");
    pseudo("/dev/pts");
    tmpfs();
    errors();
    dir_sizes();
    nofile();
    printf("done\n");
    return 0;
}
