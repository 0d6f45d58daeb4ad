// O_TMPFILE in the directory argv[1]: an unnamed file (no directory entry, no link) that
// linkat names later through /proc/self/fd or AT_EMPTY_PATH, or never (O_EXCL), and the
// errors Linux gives. Prints no paths or numbers that differ between runs.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *result(int r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EINVAL: return "EINVAL";
    case ENOTDIR: return "ENOTDIR";
    case ENOENT: return "ENOENT";
    case EISDIR: return "EISDIR";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EEXIST: return "EEXIST";
    default: return strerror(errno);
    }
}

static int entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static void proc_path(char *out, size_t len, int fd) { snprintf(out, len, "/proc/self/fd/%d", fd); }

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    char named[4096], again[4096], proc[64], buf[64];
    snprintf(named, sizeof named, "%s/named", dir);
    snprintf(again, sizeof again, "%s/named-again", dir);
    umask(022);
    int before = entries(dir);

    int fd = open(dir, O_TMPFILE | O_RDWR, 0640);
    printf("open: %s\n", result(fd));
    printf("write: %zd\n", write(fd, "hello\n", 6));
    struct stat st;
    fstat(fd, &st);
    printf("nlink %lu mode %o size %ld regular %d\n", (unsigned long)st.st_nlink,
           st.st_mode & 07777, (long)st.st_size, S_ISREG(st.st_mode));
    printf("no entry: %d\n", entries(dir) == before);

    proc_path(proc, sizeof proc, fd);
    printf("linkat /proc/self/fd: %s\n", result(linkat(AT_FDCWD, proc, AT_FDCWD, named, AT_SYMLINK_FOLLOW)));
    fstat(fd, &st);
    printf("nlink after link %lu\n", (unsigned long)st.st_nlink);
    int rd = open(named, O_RDONLY);
    ssize_t n = read(rd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("named holds: %s", buf);
    close(rd);
    printf("link once more: %s\n", result(linkat(AT_FDCWD, proc, AT_FDCWD, again, AT_SYMLINK_FOLLOW)));
    printf("onto a name taken: %s\n", result(linkat(AT_FDCWD, proc, AT_FDCWD, named, AT_SYMLINK_FOLLOW)));
    unlink(named);
    unlink(again);
    close(fd);

    int ex = open(dir, O_TMPFILE | O_WRONLY | O_EXCL, 0600);
    printf("open O_EXCL: %s\n", result(ex));
    proc_path(proc, sizeof proc, ex);
    printf("linkat O_EXCL: %s\n", result(linkat(AT_FDCWD, proc, AT_FDCWD, named, AT_SYMLINK_FOLLOW)));
    close(ex);

    int e = open(dir, O_TMPFILE | O_RDWR, 0600);
    printf("linkat AT_EMPTY_PATH: %s\n", result(linkat(e, "", AT_FDCWD, named, AT_EMPTY_PATH)));
    printf("exists: %s\n", result(access(named, F_OK)));
    close(e);

    printf("read-only: %s\n", result(open(dir, O_TMPFILE | O_RDONLY, 0600)));
    printf("with O_CREAT: %s\n", result(open(dir, O_TMPFILE | O_RDWR | O_CREAT, 0600)));
    printf("on a file: %s\n", result(open(named, O_TMPFILE | O_RDWR, 0600)));
    char missing[4096];
    snprintf(missing, sizeof missing, "%s/missing", dir);
    printf("missing dir: %s\n", result(open(missing, O_TMPFILE | O_RDWR, 0600)));
    unlink(named);
    printf("entries as before: %d\n", entries(dir) == before);
    printf("done\n");
    return 0;
}
