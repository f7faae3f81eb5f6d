/* us_jack.h — understudy as a JACK client: the process callback drives the
 * audio clock (csrc/us_clock.h) with JACK's port buffers in place of its io
 * rings. Everything that runs on JACK's threads is here, in C; nothing calls
 * into Go, allocates or takes a lock there.
 *
 * Per JACK period of n frames the callback runs n / frames clock periods:
 * each moves one block per lane from the input ports into the lane and one
 * block, `latency` periods older, out to the output ports (or the fallback on
 * an xrun). A period the lanes cannot take (n not a multiple of the block, or
 * more blocks than the latency covers) plays silence and is counted; Go
 * reports it. */
#ifndef US_JACK_H
#define US_JACK_H

#include <stdint.h>

#include "us_clock.h"
#include "us_jackapi.h"

/* Callback time histogram: 100 ns buckets below 100 µs, 10 µs buckets from
 * there to 10 ms, and one bucket for longer. */
#define US_JACK_HIST_FINE 1000
#define US_JACK_HIST_COARSE 990
#define US_JACK_HIST (US_JACK_HIST_FINE + US_JACK_HIST_COARSE + 1)

#define US_JACK_GAPS 64

enum us_jack_refusal {
    US_JACK_OK = 0,
    US_JACK_NOT_MULTIPLE = 1, /* the server's period is not a multiple of the block */
    US_JACK_TOO_LONG = 2,     /* the server's period is longer than the latency */
};

typedef void (*us_clock_prepare_fn)(us_clock *, uint64_t);
typedef void (*us_clock_period_fn)(us_clock *, uint64_t, uint64_t, const us_clock_ext *);

typedef struct us_jack {
    /* set before activation, read-only after */
    us_clock *clk;
    us_clock_prepare_fn prepare;
    us_clock_period_fn period;
    jack_client_t *client;
    uint32_t n_lanes, frames, latency, rate;
    uint32_t channels[US_MAX_LANES];
    jack_port_t *in[US_MAX_LANES][US_MAX_CHANNELS];
    jack_port_t *out[US_MAX_LANES][US_MAX_CHANNELS];
    int jack_time_mono; /* jack_get_time() is CLOCK_MONOTONIC: cycle start is a deadline */

    /* process thread's own */
    us_clock_ext io;
    uint32_t started;
    jack_nframes_t first_frame; /* JACK frame time of block 0 */
    jack_nframes_t next_frame;  /* the frame time the next callback should have */

    /* published by the callbacks, relaxed, read by Go at any time */
    US_LINE uint64_t callbacks;       /* process callbacks that ran the clock */
    uint64_t blocks;                  /* clock periods run */
    uint64_t refused;                 /* callbacks that played silence: see refusal */
    uint64_t discontinuities;         /* callbacks whose frame time was not the previous one's + its period */
    uint64_t server_xruns;            /* JACK's xrun callback */
    uint64_t cb_max_ns;               /* longest callback */
    uint64_t cb_last_ns;
    uint32_t refusal;                 /* enum us_jack_refusal, of the last refused callback */
    uint32_t refused_nframes;         /* its period */
    uint32_t buffer_size;             /* the server's period, from the buffer-size callback */
    uint32_t first_frame_pub;         /* first_frame, valid once started_pub is 1 */
    uint32_t started_pub;
    uint32_t shutdown;                /* 1 once the server shut us down; reason then valid */
    char shutdown_reason[256];
    uint64_t cb_hist[US_JACK_HIST];   /* callback duration */
    /* The first US_JACK_GAPS discontinuities, entry i valid once
     * discontinuities > i: the first frame time missed, how many frames
     * were skipped, and the stream position (blocks × frames) resumed at. */
    uint32_t gap_frame[US_JACK_GAPS];
    int32_t gap_skip[US_JACK_GAPS];
    uint64_t gap_pos[US_JACK_GAPS];
} us_jack;

/* Allocates, locks and zeroes a us_jack; NULL on failure. */
us_jack *us_jack_alloc(void);
void us_jack_free(us_jack *j);
/* Registers ports (lane l channel c: laneL_in_C+1 / laneL_out_C+1) and
 * callbacks on an open client. Returns 0 or -1 with err filled. */
int us_jack_setup(us_jack *j, char *err, size_t errlen);
/* Prepares the clock and activates the client. */
int us_jack_activate(us_jack *j);
/* Connects this client's inputs (inputs=1: from every port matching
 * pattern that outputs audio, in order) or outputs (to matching audio
 * inputs), one to one, from our port number `start` on (counting lane by
 * lane, channel by channel), as many as both sides have. Returns how many. */
int us_jack_connect_pattern(us_jack *j, const char *pattern, int inputs, uint32_t start, char *err, size_t errlen);
/* libjack, loaded once (callers serialise): 0 or -1 with err. */
int us_jack_lib(const char *path, char *err, size_t errlen);
/* Opens a client without starting a server; server NULL or "": libjack's
 * default ($JACK_DEFAULT_SERVER). NULL with status (jack_status_t) and
 * libjack's last message on failure. */
jack_client_t *us_jack_client(const char *name, const char *server, int *status, char *msg, size_t msglen);
const char *us_jack_client_name(us_jack *j);
uint32_t us_jack_buffer_size(us_jack *j);
uint32_t us_jack_sample_rate(us_jack *j);
float us_jack_cpu_load(us_jack *j);
/* The process thread's SCHED_FIFO priority, 0 when JACK runs it ordinary. */
int us_jack_rt_priority(us_jack *j);
int us_jack_has_latency(void);
/* Deactivates (when active) and closes the client; no callback runs after. */
int us_jack_close(us_jack *j, int active);
/* The full name of lane l's channel c port; input or output. */
const char *us_jack_port_name(us_jack *j, int out, uint32_t l, uint32_t c);

#endif
