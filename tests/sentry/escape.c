/* Tries to reach host files outside the sandbox's root. Prints one line per attempt:
 * "blocked <what>" when the secret stayed out of reach, "LEAK <what>" otherwise. The secret's
 * host path is ../secret relative to the rootfs directory. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int leaks;

static void try_read(const char *what, const char *path) {
    char buf[64] = {0};
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n > 0 && strstr(buf, "HOST-SECRET")) {
            printf("LEAK %s\n", what);
            leaks++;
            return;
        }
    }
    printf("blocked %s\n", what);
}

int main(void) {
    try_read("dot-dot from root", "/../secret");
    try_read("many dot-dots", "/../../../../../../secret");
    chdir("/tmp");
    try_read("relative dot-dots", "../../../secret");
    symlink("../../../../secret", "/tmp/rel");
    try_read("relative symlink", "/tmp/rel");
    symlink("/../secret", "/tmp/abs");
    try_read("absolute symlink", "/tmp/abs");
    try_read("planted symlink in rootfs", "/evil");
    try_read("planted symlink dir", "/evildir/secret");
    try_read("proc self root", "/proc/self/root/../secret");
    try_read("proc self cwd", "/proc/self/cwd/../../secret");
    if (link("/../secret", "/tmp/hard") == 0) try_read("hard link", "/tmp/hard");
    else printf("blocked hard link\n");
    mkdir("/tmp/jail", 0755);
    if (chroot("/tmp/jail") == 0) {
        try_read("chroot escape", "../../../../secret");
        chdir("/../../..");
        try_read("chroot cwd escape", "secret");
    }
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, "/../../host-socket");
    if (bind(s, (struct sockaddr *)&a, sizeof a) == 0) printf("bound socket inside\n");
    int w = open("/../written-outside", O_CREAT | O_WRONLY, 0644);
    if (w >= 0) { write(w, "x", 1); close(w); }
    printf("leaks=%d\n", leaks);
    return leaks;
}
