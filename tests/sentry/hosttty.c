/* Stdio on a terminal of the host: what the sandbox's programs see of it. */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

int main(void) {
    unsigned char buf[64];
    memset(buf, 0xaa, sizeof buf);
    int r = ioctl(0, TCGETS, buf);
    int untouched = 1;
    for (int i = 36; i < 64; i++) /* past the kernel's struct termios */
        if (buf[i] != 0xaa) untouched = 0;
    printf("TCGETS: %d, nothing written past the kernel's termios: %d\n", r, untouched);
    struct winsize w;
    printf("TIOCGWINSZ: %d isatty: %d\n", ioctl(0, TIOCGWINSZ, &w), isatty(1));
    char t[64];
    ssize_t n = readlink("/proc/self/fd/0", t, sizeof t - 1);
    t[n > 0 ? n : 0] = 0;
    printf("stdin link under /dev/pts: %d\n", !strncmp(t, "/dev/pts/", 9));
    return 0;
}
