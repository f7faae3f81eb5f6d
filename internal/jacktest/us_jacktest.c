/* us_jacktest.c — test peers for understudy's JACK client: a player whose
 * output is a known function of JACK's frame time, and a recorder that keeps
 * what it hears with the frame time it heard it at. Both are plain JACK
 * clients in C (no Go on JACK's threads), loaded through the same run-time
 * binding as the client under test. */
#define _GNU_SOURCE
#define US_JACK_IMPL
#include "us_jacktest.h"

#include <stdlib.h>
#include <string.h>

float ust_signal(uint32_t ch, uint32_t t) {
    /* A hash of (channel, frame time): every sample differs from its
     * neighbours, so a shift by any number of frames shows. */
    uint32_t h = t * 2654435761u ^ (ch + 1) * 0x9e3779b9u;
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 12;
    return (float)(int32_t)(h >> 8) / 16777216.0f - 0.5f;
}

static int on_process(jack_nframes_t n, void *arg) {
    ust_peer *p = arg;
    jack_nframes_t ft = us_jk.last_frame_time(p->client);
    if (!p->started) {
        p->first_frame = ft;
        p->started = 1;
    } else if (ft != p->next_frame) {
        uint64_t g = p->gaps;
        if (g < UST_GAPS) {
            p->gap_pos[g] = p->pos;
            p->gap_skip[g] = (int32_t)(ft - p->next_frame);
        }
        __atomic_store_n(&p->gaps, g + 1, __ATOMIC_RELEASE);
    }
    p->next_frame = ft + n;
    if (p->play) {
        for (uint32_t c = 0; c < p->nports; c++) {
            float *o = us_jk.port_get_buffer(p->port[c], n);
            for (uint32_t i = 0; i < n; i++) o[i] = ust_signal(c, ft + i);
        }
        return 0;
    }
    if (p->pos + n > p->cap) return 0;
    for (uint32_t c = 0; c < p->nports; c++) {
        const float *in = us_jk.port_get_buffer(p->port[c], n);
        memcpy(p->buf[c] + p->pos, in, (size_t)n * sizeof(float));
    }
    __atomic_store_n(&p->pos, p->pos + n, __ATOMIC_RELEASE);
    return 0;
}

int ust_open(ust_peer *p, const char *name, const char *server, char *err, size_t errlen) {
    if (us_jack_load("libjack.so.0", err, errlen)) return -1;
    jack_status_t st = 0;
    us_jk.set_error_function(us_jack_keep_msg);
    p->client = us_jack_open(name, server, &st);
    if (!p->client) {
        snprintf(err, errlen, "jack_client_open %s: status 0x%x %s", name, st, us_jack_last_msg);
        return -1;
    }
    for (uint32_t c = 0; c < p->nports; c++) {
        char pn[32];
        snprintf(pn, sizeof pn, "%s_%u", p->play ? "out" : "in", c + 1);
        p->port[c] = us_jk.port_register(p->client, pn, US_JACK_AUDIO_TYPE, p->play ? US_JACK_PORT_IS_OUTPUT : US_JACK_PORT_IS_INPUT, 0);
        if (!p->port[c]) {
            snprintf(err, errlen, "port %s", pn);
            return -1;
        }
        if (!p->play) {
            p->buf[c] = calloc(p->cap, sizeof(float));
            if (!p->buf[c]) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
        }
    }
    us_jk.set_process_callback(p->client, on_process, p);
    if (us_jk.activate(p->client)) {
        snprintf(err, errlen, "jack_activate failed");
        return -1;
    }
    return 0;
}

const char *ust_port_name(ust_peer *p, uint32_t c) { return us_jk.port_name(p->port[c]); }

int ust_connect(ust_peer *p, const char *src, const char *dst) { return us_jk.connect(p->client, src, dst); }

void ust_close(ust_peer *p) {
    if (p->client) {
        us_jk.deactivate(p->client);
        us_jk.client_close(p->client);
        p->client = NULL;
    }
}

void ust_free(ust_peer *p) {
    for (uint32_t c = 0; c < p->nports; c++) free(p->buf[c]);
    memset(p->buf, 0, sizeof p->buf);
}

int ust_port_latency(ust_peer *p, const char *port, int playback, uint32_t *min, uint32_t *max) {
    if (!us_jk.port_get_latency_range) return -1;
    /* jack_port_by_name is not in the shared table: find it by name. */
    jack_port_t *(*by_name)(jack_client_t *, const char *) = dlsym(us_jk.lib, "jack_port_by_name");
    if (!by_name) return -1;
    jack_port_t *pt = by_name(p->client, port);
    if (!pt) return -1;
    jack_latency_range_t r;
    us_jk.port_get_latency_range(pt, playback ? US_JACK_PLAYBACK_LATENCY : US_JACK_CAPTURE_LATENCY, &r);
    *min = r.min;
    *max = r.max;
    return 0;
}

int ust_client_priority(const char *server, char *err, size_t errlen) {
    if (us_jack_load("libjack.so.0", err, errlen)) return -1;
    jack_status_t st = 0;
    jack_client_t *cl = us_jack_open("ustprobe", server, &st);
    if (!cl) {
        snprintf(err, errlen, "jack_client_open: status 0x%x %s", st, us_jack_last_msg);
        return -1;
    }
    int prio = us_jk.is_realtime(cl) ? us_jk.client_real_time_priority(cl) : 0;
    us_jk.client_close(cl);
    return prio;
}
