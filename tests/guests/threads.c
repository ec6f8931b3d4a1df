/*
 * threads: several threads each running counted_loop at once.
 *
 *     threads [THREADS [ITERS]]     (default 8 threads, 100000 iterations)
 *
 * The block at hot_loop_head executes exactly THREADS * ITERS times.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "counted_loop.h"

static unsigned long iters = 100000;

static void *worker(void *arg)
{
    counted_loop(iters);
    return arg;
}

int main(int argc, char **argv)
{
    int nthreads = argc > 1 ? atoi(argv[1]) : 8;
    pthread_t *threads;

    if (argc > 2) {
        iters = strtoul(argv[2], NULL, 0);
    }
    if (nthreads < 1 || iters < 1) {
        fprintf(stderr, "usage: threads [THREADS>=1 [ITERS>=1]]\n");
        return 2;
    }
    threads = calloc((size_t)nthreads, sizeof(*threads));
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&threads[i], NULL, worker, NULL) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    for (int i = 0; i < nthreads; i++) {
        pthread_join(threads[i], NULL);
    }
    printf("counted_loop=%p\nhot_loop_head=%p\nthreads=%d\niters=%lu\n", (void *)counted_loop, (void *)hot_loop_head, nthreads, iters);
    free(threads);
    return 0;
}
