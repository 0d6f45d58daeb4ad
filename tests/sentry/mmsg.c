/* sendmmsg/recvmmsg on a Unix datagram pair (the Sentry's own sockets) and on UDP over
 * loopback (host sockets): three messages out in one call, back in one call; glibc's DNS
 * resolver sends its A and AAAA queries this way. Then getpeername and FIONREAD on the pair
 * (both once deadlocked the Sentry on its own lock). Prints what each call returned. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void exchange(const char *what, int tx, int rx) {
    const char *words[3] = {"one", "two", "three"};
    struct mmsghdr out[3], in[4];
    struct iovec oiov[3], iiov[4];
    char bufs[4][16];
    memset(out, 0, sizeof out);
    memset(in, 0, sizeof in);
    for (int i = 0; i < 3; i++) {
        oiov[i].iov_base = (void *)words[i];
        oiov[i].iov_len = strlen(words[i]);
        out[i].msg_hdr.msg_iov = &oiov[i];
        out[i].msg_hdr.msg_iovlen = 1;
    }
    for (int i = 0; i < 4; i++) {
        iiov[i].iov_base = bufs[i];
        iiov[i].iov_len = sizeof bufs[i];
        in[i].msg_hdr.msg_iov = &iiov[i];
        in[i].msg_hdr.msg_iovlen = 1;
    }
    int sent = sendmmsg(tx, out, 3, 0);
    printf("%s sent=%d lens=%u,%u,%u\n", what, sent, out[0].msg_len, out[1].msg_len,
           out[2].msg_len);
    int got = recvmmsg(rx, in, 4, MSG_WAITFORONE, NULL);
    printf("%s got=%d", what, got);
    for (int i = 0; i < got; i++) printf(" %.*s", (int)in[i].msg_len, bufs[i]);
    printf("\n");
}

int main(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) != 0) { perror("socketpair"); return 1; }
    exchange("unix", sv[0], sv[1]);
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    int pr = getpeername(sv[0], (struct sockaddr *)&peer, &plen);
    printf("peer=%d len=%u family=%d\n", pr, plen, pr == 0 ? peer.ss_family : -1);
    send(sv[0], "abcde", 5, 0);
    int avail = -1;
    ioctl(sv[1], FIONREAD, &avail);
    printf("fionread=%d\n", avail);

    int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (bind(b, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        getsockname(b, (struct sockaddr *)&addr, &len) != 0 ||
        connect(a, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("udp"); return 1;
    }
    exchange("udp", a, b);
    /* Nothing waiting and a nonblocking ask: the first message's error. */
    struct mmsghdr none[1];
    struct iovec iov = {.iov_base = (char[8]){0}, .iov_len = 8};
    memset(none, 0, sizeof none);
    none[0].msg_hdr.msg_iov = &iov;
    none[0].msg_hdr.msg_iovlen = 1;
    int r = recvmmsg(b, none, 1, MSG_DONTWAIT, NULL);
    printf("empty=%d %s\n", r, r < 0 ? "EAGAIN" : "?");
    return 0;
}
