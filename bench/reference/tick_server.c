// A minimal epoll SSE tick server, the yardstick for mio-sse's tick figures (bench/reference/ticks.sh).
//
// What mio-sse's `GET /home/events` does with ticks, and nothing else: accept, read the request head,
// answer with the stream's head and a first tick, then a tick every second on the stream's own grid
// (deadline + 1 s, not now + 1 s). One `write` per tick, a timerfd for the next deadline, no bound on
// the work of a turn, a binary min-heap of deadlines (a FIFO would not do: a stream opened in a turn
// that also fires late ticks gets a later deadline than the ticks re-queued after it).
//
//   cc -O2 -o tick_server tick_server.c && ./tick_server 127.0.0.1 18910
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_FD 65536
#define INTERVAL_NS 1000000000LL

enum { FREE, HEAD, STREAMING };
static unsigned char state[MAX_FD];
static unsigned generation[MAX_FD]; // a queued tick for a closed fd must not reach the fd's next owner
struct entry { long long deadline; int fd; unsigned generation; };
static struct entry heap[MAX_FD];
static unsigned heap_len;

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void push(int fd, long long deadline) {
    if (heap_len == MAX_FD) return; // one entry per fd at most: cannot happen
    unsigned i = heap_len++;
    struct entry e = {deadline, fd, generation[fd]};
    for (; i > 0 && heap[(i - 1) / 2].deadline > deadline; i = (i - 1) / 2) heap[i] = heap[(i - 1) / 2];
    heap[i] = e;
}

static struct entry pop(void) {
    struct entry top = heap[0], last = heap[--heap_len];
    unsigned i = 0;
    for (;;) {
        unsigned child = 2 * i + 1;
        if (child >= heap_len) break;
        if (child + 1 < heap_len && heap[child + 1].deadline < heap[child].deadline) child++;
        if (heap[child].deadline >= last.deadline) break;
        heap[i] = heap[child];
        i = child;
    }
    heap[i] = last;
    return top;
}

static void drop(int fd) {
    close(fd);
    state[fd] = FREE;
    generation[fd]++;
}

// `data: HH:MM:SS.mmm` (UTC), as mio-sse sends it: the client reads the tick's time from it.
static int tick(int fd) {
    struct timespec t;
    struct tm tm;
    char frame[64];
    clock_gettime(CLOCK_REALTIME, &t);
    gmtime_r(&t.tv_sec, &tm);
    int n = snprintf(frame, sizeof frame, "data: %02d:%02d:%02d.%03ld\n\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
                     t.tv_nsec / 1000000);
    return write(fd, frame, n) == n;
}

int main(int argc, char **argv) {
    if (argc != 3) return fprintf(stderr, "usage: %s ADDRESS PORT\n", argv[0]), 2;
    int one = 1, listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listener, (void *)&addr, sizeof addr) || listen(listener, 4096)) return perror("listen"), 1;
    int ep = epoll_create1(0), timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = listener};
    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &event);
    event.data.fd = timer;
    epoll_ctl(ep, EPOLL_CTL_ADD, timer, &event);
    long long armed = 0;
    struct epoll_event events[1024];
    for (;;) {
        if (heap_len > 0 && heap[0].deadline != armed) {
            armed = heap[0].deadline;
            struct itimerspec at = {.it_value = {armed / 1000000000LL, armed % 1000000000LL}};
            timerfd_settime(timer, TFD_TIMER_ABSTIME, &at, NULL);
        }
        int n = epoll_wait(ep, events, 1024, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                int c;
                // (Out of fds, accept4 fails and the level-triggered listener wakes the loop again at
                // once: raise `ulimit -n` for many streams, as ticks.sh does.)
                while ((c = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (c >= MAX_FD) { close(c); continue; }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    state[c] = HEAD;
                    struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
                }
            } else if (fd == timer) {
                unsigned long long expirations;
                (void)!read(timer, &expirations, sizeof expirations);
            } else {
                char buf[4096];
                int r = read(fd, buf, sizeof buf);
                if (r == 0 || (r < 0 && errno != EAGAIN)) { drop(fd); continue; }
                // (A head split over two reads is never answered: fine for a loopback yardstick.)
                if (r > 0 && state[fd] == HEAD && memmem(buf, r, "\r\n\r\n", 4)) {
                    const char *answer = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                         "Cache-Control: no-cache\r\nConnection: close\r\n\r\n: ok\n\nretry: 3000\n\n";
                    state[fd] = STREAMING;
                    if (write(fd, answer, strlen(answer)) < 0 || !tick(fd)) { drop(fd); continue; }
                    push(fd, now_ns() + INTERVAL_NS);
                }
            }
        }
        for (long long now = now_ns(); heap_len > 0 && heap[0].deadline <= now;) {
            struct entry due = pop();
            if (state[due.fd] != STREAMING || generation[due.fd] != due.generation) continue;
            if (!tick(due.fd)) { drop(due.fd); continue; }
            push(due.fd, due.deadline + INTERVAL_NS);
        }
    }
}
