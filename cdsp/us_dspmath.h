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

#endif
