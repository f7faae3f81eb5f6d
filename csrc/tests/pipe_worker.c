/* pipe_worker.c — what a user would build without understudy: a C process
 * that reads blocks from a pipe, runs a kernel, and writes them back. Same
 * kernel code as the shared-memory worker; only the transport differs.
 *
 *   pipe_worker KERNEL FRAMES CHANNELS   (blocks of FRAMES*CHANNELS floats on stdin/stdout)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "us_kernel.h"

static int read_full(int fd, void *buf, size_t n) {
    char *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t r = write(fd, p, n);
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: pipe_worker KERNEL FRAMES CHANNELS\n");
        return 64;
    }
    const us_kernel *k = us_find_kernel(argv[1]);
    if (!k) {
        fprintf(stderr, "pipe_worker: no kernel %s\n", argv[1]);
        return 65;
    }
    uint32_t frames = (uint32_t)atoi(argv[2]), ch = (uint32_t)atoi(argv[3]);
    float params[US_KERNEL_MAX_PARAMS];
    for (uint32_t i = 0; i < k->n_params; i++) params[i] = k->params[i].def;
    void *state = calloc(1, k->state_bytes(ch));
    if (k->init(state, params, ch, 48000.0f) != 0) return 66;
    size_t n = (size_t)frames * ch * sizeof(float);
    float *buf = malloc(n);
    while (read_full(0, buf, n) == 0) {
        k->process(state, params, buf, frames, ch);
        if (write_full(1, buf, n) != 0) break;
    }
    return 0;
}
