// What any sleeping event loop gets from this machine: a loop that sleeps to a deadline every
// millisecond, as a server between ticks does, and records how late it woke. Nothing else runs in it, so
// its tail is the machine's (the kernel's timers, the scheduler, a virtual CPU the host did not run); a
// server's tick lateness cannot be expected below it (bench/reference/ticks.sh prints it first).
//
// Deadlines are absolute (clock_nanosleep with TIMER_ABSTIME on CLOCK_MONOTONIC, the clock a timerfd
// and Rust's Instant use), so a late wake does not move the next one. Prints p50, p90, p99, p99.9 and max
// in ms, the way tick_client.c does.
//
//   cc -O2 -o wakes wakes.c && ./wakes 15
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

static int by_value(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 2 || atoi(argv[1]) <= 0) return fprintf(stderr, "usage: %s SECONDS\n", argv[0]), 2;
    const long long period = 1000000; // 1 ms
    long n = atol(argv[1]) * 1000L;
    long long *late = malloc(n * sizeof *late);
    if (!late) return perror("malloc"), 1;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    long long deadline = ns(t);
    for (long i = 0; i < n; i++) {
        deadline += period;
        struct timespec at = {deadline / 1000000000LL, deadline % 1000000000LL};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) != 0) {
        } // EINTR: sleep again to the same deadline
        clock_gettime(CLOCK_MONOTONIC, &t);
        late[i] = ns(t) - deadline;
        if (late[i] >= period) deadline += late[i] / period * period; // skip missed deadlines, keep the phase
    }
    qsort(late, n, sizeof *late, by_value);
    printf("%ld wakes; lateness ms: p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f max %.3f\n", n, late[n / 2] / 1e6,
           late[n * 9 / 10] / 1e6, late[n * 99 / 100] / 1e6, late[n * 999 / 1000] / 1e6, late[n - 1] / 1e6);
    return 0;
}
