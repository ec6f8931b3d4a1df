/*
 * ends: a guest that ends its run in the way argv[1] names, for the
 * tests that the host's exit report survives every end.
 *   close        closes fds 1 and 2, then exits 0 (as ls, sort, xz do)
 *   segv         dies of a null pointer store
 *   abort        calls abort()
 *   thread-exit  calls exit(3) from a second thread while main waits
 *   wait         loops until killed (prints "ready" first)
 * Each first runs a counted loop, so there is something to report.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile unsigned long sink;

static void work(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        sink += i;
    }
}

static void *exit_from_thread(void *arg)
{
    work(1000);
    exit(3);
}

int main(int argc, char **argv)
{
    const char *how = argc > 1 ? argv[1] : "";

    work(1000);
    if (strcmp(how, "close") == 0) {
        close(1);
        close(2);
        return 0;
    } else if (strcmp(how, "segv") == 0) {
        *(volatile int *)(argc - 2) = 1;
    } else if (strcmp(how, "abort") == 0) {
        abort();
    } else if (strcmp(how, "thread-exit") == 0) {
        pthread_t t;
        pthread_create(&t, NULL, exit_from_thread, NULL);
        for (;;) {
            pause();
        }
    } else if (strcmp(how, "wait") == 0) {
        printf("ready\n");
        fflush(stdout);
        for (;;) {
            work(100000);
        }
    }
    return 1;
}
