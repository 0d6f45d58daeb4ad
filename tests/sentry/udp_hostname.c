/* A UDP Service for the Service tests: `serve PORT` answers every datagram with the host
 * name; `ask IP PORT` sends one and prints the answer, or "refused"/"timeout" (exit 1). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    char buf[256];
    if (s < 0 || argc < 3) return 2;
    if (!strcmp(argv[1], "serve")) {
        char name[128] = {0};
        gethostname(name, sizeof name - 1);
        a.sin_port = htons(atoi(argv[2]));
        if (bind(s, (struct sockaddr *)&a, sizeof a)) return perror("bind"), 2;
        for (;;) {
            struct sockaddr_in from;
            socklen_t len = sizeof from;
            if (recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &len) < 0) continue;
            sendto(s, name, strlen(name), 0, (struct sockaddr *)&from, len);
        }
    }
    if (argc < 4) return 2;
    struct timeval tv = {.tv_sec = 2};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    a.sin_port = htons(atoi(argv[3]));
    inet_pton(AF_INET, argv[2], &a.sin_addr);
    if (connect(s, (struct sockaddr *)&a, sizeof a) || send(s, "?", 1, 0) < 0)
        return puts("refused"), 1;
    ssize_t n = recv(s, buf, sizeof buf - 1, 0);
    if (n < 0) return puts(errno == ECONNREFUSED ? "refused" : "timeout"), 1;
    buf[n] = 0;
    puts(buf);
    return 0;
}
