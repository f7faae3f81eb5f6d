/* us_dspmath.h — the few transcendental functions the kernels need, written
 * with + - * / only.
 *
 * libm is not used on purpose: sin, cos and pow differ in the last bit between
 * libm versions and between C and Go, and that bit can survive the rounding of
 * a coefficient to float. With these, a worker built anywhere and the pure-Go
 * twin (cdsp/gotwin/dspmath.go, which must stay operation-for-operation equal)
 * compute identical coefficients. Accuracy is near double precision over the
 * documented domains, far more than float coefficients can hold.
 *
 * Constants are hexadecimal so both languages read the same bits. */
#ifndef US_DSPMATH_H
#define US_DSPMATH_H

#if defined(__FAST_MATH__)
#error "cdsp kernels must not be built with -ffast-math: it breaks bit-exact failover"
#endif

/* No fused multiply-add: a fused and an unfused build of the same kernel
 * round differently. The Makefile passes -ffp-contract=off, but cgo's flag
 * allowlist refuses it, so the files that include this header say it again.
 * GCC contracts across statements by default on targets with FMA (arm64,
 * x86-64 with -mfma); clang contracts within expressions. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define US_PI 0x1.921fb54442d18p+1
#define US_HALF_PI 0x1.921fb54442d18p+0
#define US_TWO_PI 0x1.921fb54442d18p+2
#define US_INV_LN2 0x1.71547652b82fep+0
/* ln 2 split so that k * US_LN2_HI is exact for any |k| < 2^20. */
#define US_LN2_HI 0x1.62e42feep-1
#define US_LN2_LO 0x1.a39ef35793c76p-33
#define US_LN10_20 0x1.d791c5f888822p-4 /* dB to linear amplitude */
#define US_LN10_40 0x1.d791c5f888822p-5 /* dB to the cookbook's A */
#define US_LN10_80 0x1.d791c5f888822p-6 /* dB to sqrt(A) */

/* e^x for |x| < 700. */
static inline double us_exp(double x) {
    const double t = x * US_INV_LN2;
    int k = (int)(t < 0.0 ? t - 0.5 : t + 0.5);
    const double r = (x - (double)k * US_LN2_HI) - (double)k * US_LN2_LO;
    /* |r| <= ln2/2, so the Taylor series to r^16 leaves < 1e-22. */
    double p = 1.0;
    for (int n = 16; n >= 1; n--) p = 1.0 + (p * r) / (double)n;
    /* Scaling by powers of two is exact, unlike ldexp's platform variance on
     * subnormals, which we never reach here anyway. */
    for (; k > 0; k--) p *= 2.0;
    for (; k < 0; k++) p *= 0.5;
    return p;
}

/* sin and cos of x for 0 <= x <= pi (a biquad's w0). */
static inline void us_sincos(double x, double *s, double *c) {
    double sign = 1.0;
    if (x > US_HALF_PI) { /* fold onto [0, pi/2], where the series converges fast */
        x = US_PI - x;
        sign = -1.0;
    }
    const double x2 = x * x;
    double ps = 1.0, pc = 1.0;
    /* Terms to x^29 at x = pi/2 leave < 1e-25. */
    for (int n = 14; n >= 1; n--) {
        ps = 1.0 - (ps * x2) / (double)((2 * n) * (2 * n + 1));
        pc = 1.0 - (pc * x2) / (double)((2 * n - 1) * (2 * n));
    }
    *s = x * ps;
    *c = sign * pc;
}

/* sin(2 pi p) for a phase p in turns, 0 <= p < 1: the sine generator calls it
 * once per sample, so it is a fixed odd polynomial instead of us_sincos's
 * loop with a division per term. Folding onto |x| <= pi/2 and the Taylor
 * series to x^15 leave < 1e-11, far below float32's 6e-8. Like everything
 * here, cdsp/gotwin/dspmath.go repeats it operation for operation. */
#define US_SIN_C3 (-0x1.5555555555555p-3)
#define US_SIN_C5 0x1.1111111111111p-7
#define US_SIN_C7 (-0x1.a01a01a01a01ap-13)
#define US_SIN_C9 0x1.71de3a556c734p-19
#define US_SIN_C11 (-0x1.ae64567f544e4p-26)
#define US_SIN_C13 0x1.6124613a86d09p-33
#define US_SIN_C15 (-0x1.ae7f3e733b81fp-41)

static inline double us_sin_turns(double p) {
    /* sin(2 pi p) = -sin(2 pi t) with t = p - 1/2 in [-1/2, 1/2). */
    double t = p - 0.5;
    if (t > 0.25)
        t = 0.5 - t;
    else if (t < -0.25)
        t = -0.5 - t;
    const double x = US_TWO_PI * t;
    const double x2 = x * x;
    double q = US_SIN_C15;
    q = q * x2 + US_SIN_C13;
    q = q * x2 + US_SIN_C11;
    q = q * x2 + US_SIN_C9;
    q = q * x2 + US_SIN_C7;
    q = q * x2 + US_SIN_C5;
    q = q * x2 + US_SIN_C3;
    return -(x + (x * x2) * q);
}

#endif
