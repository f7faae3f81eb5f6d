/* us_jacktest.h — see us_jacktest.c. */
#ifndef US_JACKTEST_H
#define US_JACKTEST_H

#include <stdint.h>

#include "../../runtime/jack/us_jackapi.h"

#define UST_GAPS 64

typedef struct ust_peer {
    jack_client_t *client;
    int play;          /* 1: player, 0: recorder */
    uint32_t nports;   /* <= 8 */
    jack_port_t *port[8];
    /* recorder */
    float *buf[8];
    uint64_t cap;      /* frames per channel */
    uint64_t pos;      /* frames recorded */
    uint32_t started, first_frame, next_frame;
    uint64_t gaps;     /* runs of cycles missed */
    uint64_t gap_pos[UST_GAPS];  /* frames recorded before each of the first */
    int32_t gap_skip[UST_GAPS];  /* frames it skipped */
} ust_peer;

float ust_signal(uint32_t ch, uint32_t t);
int ust_open(ust_peer *p, const char *name, const char *server, char *err, size_t errlen);
const char *ust_port_name(ust_peer *p, uint32_t c);
int ust_connect(ust_peer *p, const char *src, const char *dst);
void ust_close(ust_peer *p);
void ust_free(ust_peer *p);
int ust_client_priority(const char *server, char *err, size_t errlen);
int ust_port_latency(ust_peer *p, const char *port, int playback, uint32_t *min, uint32_t *max);

#endif
