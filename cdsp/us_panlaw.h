/* us_panlaw.h — the pan laws pan.c and mix.c share. Internal to cdsp.
 *
 * For pos in -1 (left) .. 1 (right):
 *   law 0, constant power: gl = cos t, gr = sin t, t = (pos + 1) pi/4
 *          (-3 dB each at the centre, the summed power constant)
 *   law 1, linear:         gl = (1 - pos)/2, gr = (1 + pos)/2
 *          (-6 dB each at the centre, the summed amplitude constant)
 * In double from us_dspmath.h, from the nearer edge, so that a hard pan is
 * exactly 0 and 1 and pos and -pos give mirrored gains bit for bit. The
 * gains stay in double so that a caller scaling them further (mix's trim)
 * rounds to float once. cdsp/gotwin/pan.go (panLaw) repeats it operation for
 * operation. */
#ifndef US_PANLAW_H
#define US_PANLAW_H

#include "us_dspmath.h"

static inline void us_pan_law(float pos, float law, double *gl, double *gr) {
    if (law != 0.0f) {
        *gl = (1.0 - (double)pos) * 0.5;
        *gr = (1.0 + (double)pos) * 0.5;
        return;
    }
    /* The angle from the nearer edge: 0 there, pi/4 at the centre. */
    const double a = (1.0 - (pos < 0.0f ? -(double)pos : (double)pos)) * (US_PI * 0.25);
    double s, c;
    us_sincos(a, &s, &c);
    *gl = pos > 0.0f ? s : c;
    *gr = pos > 0.0f ? c : s;
}

#endif
