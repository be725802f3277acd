// A minimal epoll SSE client that measures tick lateness, the yardstick for mio-sse-load's figure
// (bench/reference/ticks.sh).
//
// Opens N streams at once to ADDRESS:PORT (`GET /home/events`), reads ticks (`data: HH:MM:SS.mmm`, the
// server's time of the tick) and, once every stream has had its first tick and a second more has passed,
// records each tick's lateness: its arrival against its stream's own grid (first tick + k seconds),
// as mio-sse-load does. Prints p50, p90, p99, p99.9 and max in ms.
//
//   cc -O2 -o tick_client tick_client.c && ./tick_client 127.0.0.1 18910 19000 20
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FD 65536
#define DAY_MS 86400000LL
#define MAX_LATE_MS 100000

static long long origin[MAX_FD]; // the stream's first tick (ms of the day), -1 before it
static char sent[MAX_FD];
static long long histogram[MAX_LATE_MS], recorded;

static long long day_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (t.tv_sec % 86400) * 1000LL + t.tv_nsec / 1000000;
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static long long digits(const char *p, int n) {
    long long v = 0;
    while (n--) v = v * 10 + (*p++ - '0');
    return v;
}

int main(int argc, char **argv) {
    if (argc != 5) return fprintf(stderr, "usage: %s ADDRESS PORT STREAMS SECONDS\n", argv[0]), 2;
    int streams = atoi(argv[3]), with_tick = 0;
    double duration = atof(argv[4]), start = seconds(), settled = 0;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    char request[256];
    snprintf(request, sizeof request, "GET /home/events HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n",
             argv[1]);
    int ep = epoll_create1(0), one = 1;
    for (int i = 0; i < streams; i++) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (s < 0 || s >= MAX_FD) return perror("socket"), 1;
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        connect(s, (void *)&addr, sizeof addr); // EINPROGRESS: writable once connected
        origin[s] = -1;
        struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.fd = s};
        epoll_ctl(ep, EPOLL_CTL_ADD, s, &e);
    }
    struct epoll_event events[1024];
    char buf[16384];
    while (seconds() - start < duration) {
        int n = epoll_wait(ep, events, 1024, 100);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (!sent[fd] && (events[i].events & EPOLLOUT) && write(fd, request, strlen(request)) > 0) sent[fd] = 1;
            for (;;) { // edge-triggered: drain until a short read
                int r = read(fd, buf, sizeof buf);
                if (r <= 0) break;
                long long received = day_ms();
                // (A tick split over two reads is skipped: rare on loopback, and it only thins the sample.)
                for (char *p = buf; (p = memmem(p, buf + r - p, "data: ", 6)) && p + 18 <= buf + r; p += 6) {
                    long long tick = (digits(p + 6, 2) * 60 + digits(p + 9, 2)) * 60000 + digits(p + 12, 2) * 1000
                                     + digits(p + 15, 3);
                    if (origin[fd] < 0) {
                        origin[fd] = tick;
                        if (++with_tick == streams) settled = seconds();
                        continue;
                    }
                    long long steps = ((tick - origin[fd] + DAY_MS) % DAY_MS + 500) / 1000;
                    long long late = (received - (origin[fd] + steps * 1000) % DAY_MS + DAY_MS) % DAY_MS;
                    if (late >= DAY_MS / 2) late -= DAY_MS; // across midnight, and early by a clock's rounding
                    late = late < 0 ? 0 : late >= MAX_LATE_MS ? MAX_LATE_MS - 1 : late;
                    if (settled > 0 && seconds() > settled + 1.0) histogram[late]++, recorded++;
                }
                if (r < (int)sizeof buf) break;
            }
        }
    }
    if (with_tick < streams || recorded == 0) {
        // Nothing to measure on: say so, rather than print a perfect 0 ms.
        printf("FAILED: %d streams, %d with a first tick, %lld ticks measured\n", streams, with_tick, recorded);
        return 1;
    }
    printf("%d streams, %d with a first tick, %lld ticks measured; lateness ms:", streams, with_tick, recorded);
    const double at[] = {0.5, 0.9, 0.99, 0.999, 1.0};
    const char *name[] = {"p50", "p90", "p99", "p99.9", "max"};
    for (int j = 0; j < 5; j++) {
        long long seen = 0, ms = 0;
        while (ms < MAX_LATE_MS - 1 && (seen += histogram[ms]) < at[j] * recorded) ms++;
        printf(" %s %lld", name[j], recorded ? ms : 0);
    }
    printf("\n");
    return 0;
}
