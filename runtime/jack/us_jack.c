/* us_jack.c — see us_jack.h. */
#define _GNU_SOURCE
#define US_JACK_IMPL
#include "us_jack.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "us_ring.h"

us_jack *us_jack_alloc(void) {
    void *p = NULL;
    if (posix_memalign(&p, 4096, sizeof(us_jack))) return NULL;
    memset(p, 0, sizeof(us_jack));
    /* The callbacks touch all of it from JACK's real-time thread: no page
     * fault there. Locking may be refused without privilege; the memset has
     * faulted it in anyway. */
    mlock(p, sizeof(us_jack));
    return p;
}

void us_jack_free(us_jack *j) {
    if (!j) return;
    munlock(j, sizeof(us_jack));
    free(j);
}

static void silence_outputs(us_jack *j, jack_nframes_t n) {
    for (uint32_t l = 0; l < j->n_lanes; l++)
        for (uint32_t c = 0; c < j->channels[l]; c++) {
            float *o = us_jk.port_get_buffer(j->out[l][c], n);
            if (o) memset(o, 0, (size_t)n * sizeof(float));
        }
}

static void record_duration(us_jack *j, uint64_t d) {
    if (d > j->cb_max_ns) US_STORE_RLX(&j->cb_max_ns, d);
    US_STORE_RLX(&j->cb_last_ns, d);
    uint32_t b;
    if (d < 100000)
        b = (uint32_t)(d / 100);
    else if (d < 10000000)
        b = US_JACK_HIST_FINE + (uint32_t)((d - 100000) / 10000);
    else
        b = US_JACK_HIST - 1;
    US_STORE_RLX(&j->cb_hist[b], j->cb_hist[b] + 1);
}

static int on_process(jack_nframes_t n, void *arg) {
    us_jack *j = arg;
    uint64_t t0 = us_now_ns();
    uint32_t nb = n / j->frames;
    uint32_t refusal = US_JACK_OK;
    if (n % j->frames)
        refusal = US_JACK_NOT_MULTIPLE;
    else if (nb > j->latency)
        /* The last block of a period would be due before the period that
         * pushed it ended: every block would be an xrun. */
        refusal = US_JACK_TOO_LONG;
    if (refusal) {
        silence_outputs(j, n);
        US_STORE_RLX(&j->refused_nframes, n);
        US_STORE_RLX(&j->refusal, refusal);
        US_STORE_REL(&j->refused, j->refused + 1);
        return 0;
    }

    jack_nframes_t ft = us_jk.last_frame_time(j->client);
    if (!j->started) {
        j->first_frame = ft;
        j->started = 1;
        US_STORE_RLX(&j->first_frame_pub, (uint32_t)ft);
        US_STORE_REL(&j->started_pub, 1u);
    } else if (ft != j->next_frame) {
        /* A cycle we were not called in (or a refused one): from here on
         * block numbers no longer map to frame times from first_frame. */
        uint64_t d = j->discontinuities;
        if (d < US_JACK_GAPS) {
            j->gap_frame[d] = j->next_frame;
            j->gap_skip[d] = (int32_t)(ft - j->next_frame);
            j->gap_pos[d] = j->blocks * j->frames;
        }
        US_STORE_REL(&j->discontinuities, d + 1);
    }
    j->next_frame = ft + n;

    uint64_t due = t0, next = t0 + (uint64_t)n * 1000000000ull / j->rate;
    if (j->jack_time_mono && us_jk.get_cycle_times) {
        jack_nframes_t cur_frames;
        jack_time_t cur_us, next_us;
        float period_us;
        if (us_jk.get_cycle_times(j->client, &cur_frames, &cur_us, &next_us, &period_us) == 0) {
            due = cur_us * 1000ull;
            next = next_us * 1000ull;
        }
    }

    us_clock_ext *io = &j->io;
    for (uint32_t l = 0; l < j->n_lanes; l++)
        for (uint32_t c = 0; c < j->channels[l]; c++) {
            io->in[l][c] = us_jk.port_get_buffer(j->in[l][c], n);
            io->out[l][c] = us_jk.port_get_buffer(j->out[l][c], n);
        }
    for (uint32_t b = 0; b < nb; b++) {
        if (b) {
            for (uint32_t l = 0; l < j->n_lanes; l++)
                for (uint32_t c = 0; c < j->channels[l]; c++) {
                    if (io->in[l][c]) io->in[l][c] += j->frames;
                    if (io->out[l][c]) io->out[l][c] += j->frames;
                }
        }
        j->period(j->clk, due, t0, io);
    }
    /* The monitor schedules its next look from this. */
    US_STORE_REL(&j->clk->next_deadline_ns, next);
    US_STORE_RLX(&j->blocks, j->blocks + nb);
    US_STORE_REL(&j->callbacks, j->callbacks + 1);
    record_duration(j, us_now_ns() - t0);
    return 0;
}

static int on_buffer_size(jack_nframes_t n, void *arg) {
    us_jack *j = arg;
    US_STORE_REL(&j->buffer_size, (uint32_t)n);
    return 0;
}

static int on_xrun(void *arg) {
    us_jack *j = arg;
    US_STORE_RLX(&j->server_xruns, j->server_xruns + 1);
    return 0;
}

static void set_shutdown(us_jack *j, const char *reason) {
    if (US_LOAD_ACQ(&j->shutdown)) return;
    snprintf(j->shutdown_reason, sizeof j->shutdown_reason, "%s", reason && reason[0] ? reason : "the JACK server shut the client down");
    US_STORE_REL(&j->shutdown, 1u);
}

static void on_shutdown(void *arg) { set_shutdown(arg, NULL); }

static void on_info_shutdown(jack_status_t code, const char *reason, void *arg) {
    (void)code;
    set_shutdown(arg, reason);
}

/* Our added latency is the clock's: an input frame comes out latency blocks
 * later. Capture latency flows from our inputs to our outputs, playback
 * latency from our outputs back to our inputs, each per lane. */
static void on_latency(jack_latency_callback_mode_t mode, void *arg) {
    us_jack *j = arg;
    jack_nframes_t add = j->latency * j->frames;
    for (uint32_t l = 0; l < j->n_lanes; l++) {
        jack_port_t **from = mode == US_JACK_CAPTURE_LATENCY ? j->in[l] : j->out[l];
        jack_port_t **to = mode == US_JACK_CAPTURE_LATENCY ? j->out[l] : j->in[l];
        jack_latency_range_t r = {UINT32_MAX, 0};
        for (uint32_t c = 0; c < j->channels[l]; c++) {
            jack_latency_range_t p;
            us_jk.port_get_latency_range(from[c], mode, &p);
            if (p.min < r.min) r.min = p.min;
            if (p.max > r.max) r.max = p.max;
        }
        if (r.min > r.max) r.min = r.max = 0;
        r.min += add;
        r.max += add;
        for (uint32_t c = 0; c < j->channels[l]; c++) us_jk.port_set_latency_range(to[c], mode, &r);
    }
}

int us_jack_setup(us_jack *j, char *err, size_t errlen) {
    us_clock *c = j->clk;
    j->n_lanes = c->n_lanes;
    j->frames = c->frames;
    j->latency = c->latency;
    j->rate = c->rate;
    j->buffer_size = us_jk.get_buffer_size(j->client);
    for (uint32_t l = 0; l < j->n_lanes; l++) {
        j->channels[l] = c->lanes[l].channels;
        for (uint32_t ch = 0; ch < j->channels[l]; ch++) {
            char name[64];
            snprintf(name, sizeof name, "lane%u_in_%u", l, ch + 1);
            j->in[l][ch] = us_jk.port_register(j->client, name, US_JACK_AUDIO_TYPE, US_JACK_PORT_IS_INPUT, 0);
            snprintf(name, sizeof name, "lane%u_out_%u", l, ch + 1);
            j->out[l][ch] = us_jk.port_register(j->client, name, US_JACK_AUDIO_TYPE, US_JACK_PORT_IS_OUTPUT, 0);
            if (!j->in[l][ch] || !j->out[l][ch]) {
                snprintf(err, errlen, "cannot register port %s", name);
                return -1;
            }
        }
    }
    /* Lateness against JACK's cycle start needs JACK's clock to be ours. */
    uint64_t jt = us_jk.get_time() * 1000ull, now = us_now_ns();
    j->jack_time_mono = (jt > now ? jt - now : now - jt) < 10000000ull;

    if (us_jk.set_process_callback(j->client, on_process, j)) {
        snprintf(err, errlen, "jack_set_process_callback failed");
        return -1;
    }
    us_jk.set_buffer_size_callback(j->client, on_buffer_size, j);
    us_jk.set_xrun_callback(j->client, on_xrun, j);
    if (us_jk.on_info_shutdown)
        us_jk.on_info_shutdown(j->client, on_info_shutdown, j);
    else
        us_jk.on_shutdown(j->client, on_shutdown, j);
    if (us_jk.set_latency_callback) us_jk.set_latency_callback(j->client, on_latency, j);
    return 0;
}

int us_jack_activate(us_jack *j) {
    uint64_t now = us_now_ns();
    j->prepare(j->clk, now);
    US_STORE_REL(&j->clk->next_deadline_ns, now);
    int rc = us_jk.activate(j->client);
    if (rc == 0 && us_jk.recompute_total_latencies) us_jk.recompute_total_latencies(j->client);
    return rc;
}

const char *us_jack_port_name(us_jack *j, int out, uint32_t l, uint32_t c) {
    return us_jk.port_name(out ? j->out[l][c] : j->in[l][c]);
}

int us_jack_connect_pattern(us_jack *j, const char *pattern, int inputs, uint32_t start, char *err, size_t errlen) {
    const char **ports = us_jk.get_ports(j->client, pattern, US_JACK_AUDIO_TYPE, inputs ? US_JACK_PORT_IS_OUTPUT : US_JACK_PORT_IS_INPUT);
    const char *me = us_jk.get_client_name(j->client);
    size_t melen = strlen(me);
    int made = 0, theirs = 0;
    uint32_t l = 0, c = 0;
    /* Our ports in order (lane, then channel): skip the first `start`. */
    for (uint32_t k = 0; k < start && l < j->n_lanes; k++)
        if (++c == j->channels[l]) {
            c = 0;
            l++;
        }
    for (const char **p = ports; p && *p && l < j->n_lanes; p++) {
        if (strncmp(*p, me, melen) == 0 && (*p)[melen] == ':') continue; /* never to ourselves */
        theirs++;
        const char *mine = us_jack_port_name(j, !inputs, l, c);
        int rc = inputs ? us_jk.connect(j->client, *p, mine) : us_jk.connect(j->client, mine, *p);
        if (rc && rc != EEXIST) {
            snprintf(err, errlen, "cannot connect %s to %s", inputs ? *p : mine, inputs ? mine : *p);
            us_jk.free(ports);
            return -1;
        }
        made++;
        if (++c == j->channels[l]) {
            c = 0;
            l++;
        }
    }
    if (ports) us_jk.free(ports);
    if (theirs == 0) {
        snprintf(err, errlen, "no JACK audio %s port matches %s", inputs ? "output" : "input", pattern);
        return -1;
    }
    return made;
}

int us_jack_lib(const char *path, char *err, size_t errlen) { return us_jack_load(path, err, errlen); }

jack_client_t *us_jack_client(const char *name, const char *server, int *status, char *msg, size_t msglen) {
    jack_status_t st = 0;
    jack_client_t *cl = us_jack_open(name, server, &st);
    *status = st;
    snprintf(msg, msglen, "%s", us_jack_last_msg);
    return cl;
}

const char *us_jack_client_name(us_jack *j) { return us_jk.get_client_name(j->client); }
uint32_t us_jack_buffer_size(us_jack *j) { return us_jk.get_buffer_size(j->client); }
uint32_t us_jack_sample_rate(us_jack *j) { return us_jk.get_sample_rate(j->client); }
float us_jack_cpu_load(us_jack *j) { return us_jk.cpu_load(j->client); }
/* The kernel's word first: PipeWire's libjack (0.3.65) answers -6 for a
 * process thread it runs at SCHED_FIFO 88, which put the workers on
 * ordinary scheduling under a real-time callback, where they missed their
 * deadlines until the lane was given up. */
int us_jack_rt_priority(us_jack *j) {
    if (us_jk.client_thread_id) {
        pthread_t th = us_jk.client_thread_id(j->client);
        int policy;
        struct sched_param sp;
        if (th && pthread_getschedparam(th, &policy, &sp) == 0) {
            /* PipeWire's thread has SCHED_RESET_ON_FORK set beside its policy. */
            policy &= ~SCHED_RESET_ON_FORK;
            return (policy == SCHED_FIFO || policy == SCHED_RR) ? sp.sched_priority : 0;
        }
    }
    int p = us_jk.is_realtime(j->client) ? us_jk.client_real_time_priority(j->client) : 0;
    return p > 0 ? p : 0;
}
int us_jack_has_latency(void) { return us_jk.set_latency_callback != NULL; }

int us_jack_close(us_jack *j, int active) {
    int rc = 0;
    /* Deactivate first: once it returns no callback of ours runs, so the
     * clock and this struct may go. */
    if (active) rc = us_jk.deactivate(j->client);
    int rc2 = us_jk.client_close(j->client);
    j->client = NULL;
    return rc ? rc : rc2;
}
