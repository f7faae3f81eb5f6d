/* us_replay.c — the worker's replay mode (us_replay.h). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "us_fp.h"
#include "us_kernel.h"
#include "us_replay.h"

/* Bounds, the same as the host's (us_region.h); restated here so that a
 * replay reads its file by the file's own format, not by the region's
 * layout. */
#define R_MAX_CHANNELS 16
#define R_MAX_FRAMES 1024
#define R_SLOT_SAMPLES 4096
#define R_MAX_CHAIN 8
#define R_STATE_BYTES 65536
#define R_HEADER 64
#define R_ENTRY 112
#define R_NAME 24
#define R_VARIANT 16
#define R_MAX_PARAMS 16
#define R_FILE_MAX (R_HEADER + R_MAX_CHAIN * R_ENTRY + R_SLOT_SAMPLES * 4 + R_STATE_BYTES)

enum { REPLAY_OK = 0, REPLAY_FAILED = 1, REPLAY_BAD_FILE = 2 };

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static float rdf(const unsigned char *p) {
    uint32_t u = rd32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

typedef struct replay_kernel {
    char name[R_NAME];
    char variant[R_VARIANT];
    uint32_t n_params, state_offset;
    float params[R_MAX_PARAMS];
    const us_kernel *k;
} replay_kernel;

/* Static, as in the worker: the kernel sees a state and a block at the
 * alignment it has in a lane (state cache-line aligned, each kernel's at
 * its 16-byte offset). */
static unsigned char file_buf[R_FILE_MAX + 1];
static _Alignas(64) unsigned char state[R_STATE_BYTES];
static _Alignas(64) float buf[R_SLOT_SAMPLES];
static replay_kernel chain[R_MAX_CHAIN];

static int bad(const char *path, const char *why) {
    fprintf(stderr, "understudy-worker: --replay %s: %s\n", path, why);
    return REPLAY_BAD_FILE;
}

int us_replay_main(int argc, char **argv) {
    const char *path = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--replay") && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else {
            fprintf(stderr, "understudy-worker: usage: %s --replay FILE [--out RAW]\n", argv[0]);
            return REPLAY_BAD_FILE;
        }
    }
    if (!path) return bad("(none)", "needs a repro file");
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return REPLAY_BAD_FILE;
    }
    size_t n = fread(file_buf, 1, sizeof file_buf, f);
    fclose(f);
    const unsigned char *b = file_buf;
    if (n < R_HEADER || memcmp(b, "USREPRO1", 8) != 0) return bad(path, "not an understudy repro file");
    if (n > R_FILE_MAX) return bad(path, "too long for a repro file");
    if (rd32(b + 8) != 1) return bad(path, "a repro format version this worker does not read");
    uint32_t flags = rd32(b + 12), lane = rd32(b + 16), ch = rd32(b + 20), frames = rd32(b + 24),
             bframes = rd32(b + 28), rate = rd32(b + 32), nk = rd32(b + 36), sbytes = rd32(b + 40),
             abi = rd32(b + 44);
    uint64_t block = rd64(b + 48);
    if (abi != US_KERNEL_ABI_VERSION) return bad(path, "saved under another kernel ABI version");
    if (ch < 1 || ch > R_MAX_CHANNELS || frames < 1 || frames > R_MAX_FRAMES ||
        (uint64_t)frames * ch > R_SLOT_SAMPLES || bframes < 1 || bframes > frames || nk < 1 || nk > R_MAX_CHAIN ||
        sbytes > R_STATE_BYTES)
        return bad(path, "its header is out of range");
    size_t want = R_HEADER + (size_t)nk * R_ENTRY + (size_t)bframes * ch * 4 + sbytes;
    if (n != want) return bad(path, "its length does not match its header");

    for (uint32_t i = 0; i < nk; i++) {
        const unsigned char *e = b + R_HEADER + (size_t)i * R_ENTRY;
        replay_kernel *r = &chain[i];
        memcpy(r->name, e, R_NAME);
        memcpy(r->variant, e + R_NAME, R_VARIANT);
        r->n_params = rd32(e + 40);
        r->state_offset = rd32(e + 44);
        if (!memchr(r->name, 0, R_NAME) || !memchr(r->variant, 0, R_VARIANT) || !r->name[0] ||
            r->n_params > R_MAX_PARAMS || r->state_offset > sbytes)
            return bad(path, "a kernel entry is malformed");
        for (uint32_t j = 0; j < R_MAX_PARAMS; j++) r->params[j] = j < r->n_params ? rdf(e + 48 + 4 * j) : 0.0f;
        r->k = us_find_kernel_variant(r->name, r->variant);
        if (!r->k) {
            fprintf(stderr, "understudy-worker: --replay %s: kernel %s (variant %s) is not built into this worker: "
                            "replay with the worker that ran it\n",
                    path, r->name, r->variant[0] ? r->variant : "scalar");
            return REPLAY_BAD_FILE;
        }
        if (!us_variant_supported(r->variant)) {
            fprintf(stderr, "understudy-worker: --replay %s: kernel %s variant %s needs instructions this CPU lacks\n",
                    path, r->name, r->variant);
            return REPLAY_BAD_FILE;
        }
        if (r->k->abi_version != US_KERNEL_ABI_VERSION) {
            fprintf(stderr, "understudy-worker: --replay %s: kernel %s has ABI %u, this worker speaks %u: rebuild it\n",
                    path, r->name, r->k->abi_version, US_KERNEL_ABI_VERSION);
            return REPLAY_BAD_FILE;
        }
        if ((uint64_t)r->state_offset + r->k->state_bytes(ch) > sbytes) {
            fprintf(stderr, "understudy-worker: --replay %s: kernel %s needs more state than the file holds "
                            "(a different build of it?)\n",
                    path, r->name);
            return REPLAY_BAD_FILE;
        }
    }
    const unsigned char *in = b + R_HEADER + (size_t)nk * R_ENTRY;
    const size_t samples = (size_t)bframes * ch;
    for (size_t i = 0; i < samples; i++) buf[i] = rdf(in + 4 * i);
    memcpy(state, in + samples * 4, sbytes);

    fprintf(stderr, "understudy-worker: replaying lane %u block %llu: %u kernel%s, %u frames x %u channel%s at %u Hz, "
                    "from its committed state (%u bytes)%s\n",
            lane, (unsigned long long)block, nk, nk == 1 ? "" : "s", bframes, ch, ch == 1 ? "" : "s", rate, sbytes,
            (flags & 1) ? ", after the chain's init" : "");

    /* As the worker computes: subnormals flushed before the first init. */
    us_fp_flush_denormals();
    if (flags & 1) {
        for (uint32_t i = 0; i < nk; i++) {
            if (chain[i].k->init(state + chain[i].state_offset, chain[i].params, ch, (float)rate) != 0) {
                fprintf(stderr, "understudy-worker: --replay %s: kernel %s refused its parameters\n", path,
                        chain[i].name);
                return REPLAY_FAILED;
            }
        }
    }
    /* Where a debugger's breakpoint on a kernel's process lands. */
    for (uint32_t i = 0; i < nk; i++)
        chain[i].k->process(state + chain[i].state_offset, chain[i].params, buf, bframes, ch);

    /* FNV-1a, 64-bit, over the output's bytes (little-endian float32):
     * `understudy replay` prints the same digest. */
    uint64_t h = 0xcbf29ce484222325ull;
    const unsigned char *o = (const unsigned char *)buf;
    for (size_t i = 0; i < samples * 4; i++) h = (h ^ o[i]) * 0x100000001b3ull;
    printf("finished: lane %u block %llu, %zu samples, output fnv1a64 %016llx\n", lane, (unsigned long long)block,
           samples, (unsigned long long)h);
    if (out) {
        FILE *of = fopen(out, "wb");
        if (!of || fwrite(buf, 4, samples, of) != samples || fclose(of) != 0) {
            perror(out);
            return REPLAY_FAILED;
        }
    }
    return REPLAY_OK;
}
