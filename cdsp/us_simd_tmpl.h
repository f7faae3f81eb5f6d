/* us_simd_tmpl.h — the SIMD kernels, written once for any vector width.
 * Internal to cdsp; simd_x86.c and simd_neon.c include it once per vector
 * flavour, after defining:
 *
 *   TMPL_SFX        suffix of every function made here (sse2, avx2_256, ...)
 *   TMPL_TGT        function attribute enabling the instructions, or nothing
 *   TMPL_W          floats per vector
 *   TV              the vector type
 *   TV_LOADU(p) TV_STOREU(p, v) TV_SET1(x) TV_ZERO() TV_ADD(a, b) TV_SUB(a, b) TV_MUL(a, b)
 *   TMPL_PARTIAL    1 if TV_LOADP(p, n) and TV_STOREP(p, v, n) move the first
 *                   n < TMPL_W floats (the rest of the vector loads as zero)
 *
 * Bit-exactness with the scalar kernels is the whole design: every lane does
 * the scalar code's float operations, one IEEE rounding each, in the scalar
 * code's order. Only element-wise add, sub and mul are used, never a fused
 * multiply-add, a horizontal sum or a reciprocal estimate. */

#define TMPL_CAT2(a, b) a##_##b
#define TMPL_CAT(a, b) TMPL_CAT2(a, b)
#define TMPL_FN(name) TMPL_CAT(name, TMPL_SFX)

/* ---- gain: p[i] = p[i] * g ---- */

static __attribute__((unused)) TMPL_TGT void TMPL_FN(gain_mul)(float *p, size_t n, float g) {
    const TV vg = TV_SET1(g);
    size_t i = 0;
    for (; i + 4 * TMPL_W <= n; i += 4 * TMPL_W) {
        TV_STOREU(p + i, TV_MUL(TV_LOADU(p + i), vg));
        TV_STOREU(p + i + TMPL_W, TV_MUL(TV_LOADU(p + i + TMPL_W), vg));
        TV_STOREU(p + i + 2 * TMPL_W, TV_MUL(TV_LOADU(p + i + 2 * TMPL_W), vg));
        TV_STOREU(p + i + 3 * TMPL_W, TV_MUL(TV_LOADU(p + i + 3 * TMPL_W), vg));
    }
    for (; i + TMPL_W <= n; i += TMPL_W) TV_STOREU(p + i, TV_MUL(TV_LOADU(p + i), vg));
    for (; i < n; i++) p[i] = p[i] * g;
}

/* ---- biquads: one group of up to TMPL_W channels, all sections ----
 *
 * Lane j is channel c0 + j. The scalar kernel runs each section over the
 * whole block before the next; here all sections advance together as a
 * wavefront, section s working on frame t - s at step t, so the sections'
 * recurrences are independent within a step and overlap in the pipeline
 * instead of each waiting out its own multiply and add latencies. Each section
 * still sees exactly the input sequence the scalar code gives it (the
 * previous section's outputs, in order), and computes
 *     y = b0*x + b1*x1 + b2*x2 - a1*y1 - a2*y2
 * left to right as C does, so every channel's bits are the scalar's.
 *
 * With up to 8 sections the history does not fit in registers, so it lives in
 * rings of three slots indexed by step: at step t a section writes its input
 * and output to slot t%3 and finds x1, y1 in slot (t-1)%3 and x2, y2 in
 * (t-2)%3, two stores per section per step instead of four shifts. Section
 * s's input is section s-1's output of step t-1; sections run last to first
 * within a step, so each reads it before it is replaced. A section that has
 * not started (or has finished) at step t touches nothing, so its slots are
 * laid out from the committed state by the step it starts at.
 *
 * buf and z point at the group's first channel; cnt (a constant where this is
 * inlined) says how many lanes are real. */

#if TMPL_PARTIAL
#define TMPL_GLOAD(p) (cnt == TMPL_W ? TV_LOADU(p) : TV_LOADP(p, cnt))
#define TMPL_GSTORE(p, v) (cnt == TMPL_W ? TV_STOREU(p, v) : TV_STOREP(p, v, cnt))
#else
#define TMPL_GLOAD(p) TV_LOADU(p)
#define TMPL_GSTORE(p, v) TV_STOREU(p, v)
#endif

/* One section at one step: x in, y out, rings X*, Y* for slots t, t-1, t-2. */
#define TMPL_BQ(s, x, y)                                           \
    do {                                                           \
        TV y_ = TV_MUL(b0, x);                                     \
        y_ = TV_ADD(y_, TV_MUL(b1, X1[s]));                        \
        y_ = TV_ADD(y_, TV_MUL(b2, X2[s]));                        \
        y_ = TV_SUB(y_, TV_MUL(a1, Y1[s]));                        \
        y_ = TV_SUB(y_, TV_MUL(a2, Y2[s]));                        \
        X0[s] = (x);                                               \
        Y0[s] = y_;                                                \
        (y) = y_;                                                  \
    } while (0)

static US_ALWAYS_INLINE __attribute__((unused)) TMPL_TGT void TMPL_FN(bq_group)(const us_bq_state *st, float *z, uint32_t ns,
                                                        float *buf, uint32_t frames, uint32_t channels,
                                                        uint32_t cnt) {
    float tmp[4][US_BQ_MAX_SECTIONS][TMPL_W] __attribute__((aligned(32)));
    for (uint32_t s = 0; s < ns; s++)
        for (uint32_t j = 0; j < TMPL_W; j++)
            for (uint32_t k = 0; k < 4; k++) tmp[k][s][j] = j < cnt ? z[((size_t)j * ns + s) * 4 + k] : 0.0f;
    const TV b0 = TV_SET1(st->b0), b1 = TV_SET1(st->b1), b2 = TV_SET1(st->b2);
    const TV a1 = TV_SET1(st->a1), a2 = TV_SET1(st->a2);

    if (ns == 1) {
        /* One section: the history stays in registers. */
        TV x1 = TV_LOADU(tmp[0][0]), x2 = TV_LOADU(tmp[1][0]);
        TV y1 = TV_LOADU(tmp[2][0]), y2 = TV_LOADU(tmp[3][0]);
        float *p = buf;
        for (uint32_t n = 0; n < frames; n++, p += channels) {
            const TV x = TMPL_GLOAD(p);
            TV y = TV_MUL(b0, x);
            y = TV_ADD(y, TV_MUL(b1, x1));
            y = TV_ADD(y, TV_MUL(b2, x2));
            y = TV_SUB(y, TV_MUL(a1, y1));
            y = TV_SUB(y, TV_MUL(a2, y2));
            x2 = x1;
            x1 = x;
            y2 = y1;
            y1 = y;
            TMPL_GSTORE(p, y);
        }
        TV_STOREU(tmp[0][0], x1);
        TV_STOREU(tmp[1][0], x2);
        TV_STOREU(tmp[2][0], y1);
        TV_STOREU(tmp[3][0], y2);
    } else {
        TV xr[3][US_BQ_MAX_SECTIONS], yr[3][US_BQ_MAX_SECTIONS];
        /* Section s starts at step s: its x1, y1 go to slot (s-1)%3 and its
         * x2, y2 to slot (s-2)%3. */
        for (uint32_t s = 0; s < ns; s++) {
            xr[(s + 2) % 3][s] = TV_LOADU(tmp[0][s]);
            xr[(s + 1) % 3][s] = TV_LOADU(tmp[1][s]);
            yr[(s + 2) % 3][s] = TV_LOADU(tmp[2][s]);
            yr[(s + 1) % 3][s] = TV_LOADU(tmp[3][s]);
        }
        TV *X0 = xr[0], *X1 = xr[2], *X2 = xr[1];
        TV *Y0 = yr[0], *Y1 = yr[2], *Y2 = yr[1];
#define TMPL_ROTATE()                 \
    do {                              \
        TV *const x_ = X2, *const y_ = Y2; \
        X2 = X1, X1 = X0, X0 = x_;    \
        Y2 = Y1, Y1 = Y0, Y0 = y_;    \
    } while (0)
        const int64_t F = frames, S = ns;
        int64_t t = 0;
        /* Filling and draining: sections lo..hi have a frame at step t. */
        for (; t < S - 1 && t < F + S - 1; t++) {
            const int64_t lo = t - F + 1 > 0 ? t - F + 1 : 0;
            for (int64_t s = t; s >= lo; s--) {
                TV y; /* in the rings; the last section is not reached yet */
                if (s == 0) {
                    const TV x = TMPL_GLOAD(buf + (size_t)t * channels);
                    TMPL_BQ(0, x, y);
                } else {
                    TMPL_BQ(s, Y1[s - 1], y);
                }
                (void)y;
            }
            TMPL_ROTATE();
        }
        /* Steady: every section busy, the last one's output leaving. */
        for (; t < F; t++) {
            TV y;
            TMPL_BQ(S - 1, Y1[S - 2], y);
            TMPL_GSTORE(buf + (size_t)(t - (S - 1)) * channels, y);
            for (int64_t s = S - 2; s >= 1; s--) TMPL_BQ(s, Y1[s - 1], y);
            const TV x = TMPL_GLOAD(buf + (size_t)t * channels);
            TMPL_BQ(0, x, y);
            TMPL_ROTATE();
        }
        for (; t < F + S - 1; t++) {
            const int64_t lo = t - F + 1 > 0 ? t - F + 1 : 0;
            const int64_t hi = t < S - 1 ? t : S - 1;
            for (int64_t s = hi; s >= lo; s--) {
                TV y;
                if (s == 0) {
                    const TV x = TMPL_GLOAD(buf + (size_t)t * channels);
                    TMPL_BQ(0, x, y);
                } else {
                    TMPL_BQ(s, Y1[s - 1], y);
                }
                if (s == S - 1) TMPL_GSTORE(buf + (size_t)(t - s) * channels, y);
            }
            TMPL_ROTATE();
        }
#undef TMPL_ROTATE
        /* Section s's last step is s + F - 1: x1, y1 there, x2, y2 before. */
        for (uint32_t s = 0; s < ns; s++) {
            const uint32_t last = (uint32_t)(((uint64_t)s + frames + 2) % 3);
            const uint32_t prev = (uint32_t)(((uint64_t)s + frames + 1) % 3);
            TV_STOREU(tmp[0][s], xr[last][s]);
            TV_STOREU(tmp[1][s], xr[prev][s]);
            TV_STOREU(tmp[2][s], yr[last][s]);
            TV_STOREU(tmp[3][s], yr[prev][s]);
        }
    }

    for (uint32_t s = 0; s < ns; s++)
        for (uint32_t j = 0; j < cnt; j++)
            for (uint32_t k = 0; k < 4; k++) z[((size_t)j * ns + s) * 4 + k] = tmp[k][s][j];
}

#undef TMPL_BQ
#undef TMPL_GLOAD
#undef TMPL_GSTORE

/* ---- fir: y[i] = us_fir_dot1(h, taps, w + i) for i < m ----
 *
 * Vectorised across consecutive outputs, not across taps: lane j of an
 * accumulator is output i + j, summed over k in ascending order exactly as
 * us_fir_dot1 does, so the bits are the scalar's. Summing across taps in
 * lanes would need a horizontal add at the end, a different association of
 * the same sum, and results a few ulps off. Four accumulators (two, one for
 * what is left) keep independent add chains in flight. */

static __attribute__((unused)) TMPL_TGT void TMPL_FN(fir_block)(const float *h, uint32_t taps, const float *w, float *y, uint32_t m) {
    const uint32_t half = taps / 2u;
    const float *newest = w + taps - 1u;
    uint32_t i = 0;
    for (; i + 4 * TMPL_W <= m; i += 4 * TMPL_W) {
        TV c0 = TV_ZERO(), c1 = TV_ZERO(), c2 = TV_ZERO(), c3 = TV_ZERO();
        const float *nw = newest + i, *ol = w + i;
        for (uint32_t k = 0; k < half; k++) {
            const TV hk = TV_SET1(h[k]);
            const float *a = nw - k, *b = ol + k;
            c0 = TV_ADD(c0, TV_MUL(hk, TV_ADD(TV_LOADU(a), TV_LOADU(b))));
            c1 = TV_ADD(c1, TV_MUL(hk, TV_ADD(TV_LOADU(a + TMPL_W), TV_LOADU(b + TMPL_W))));
            c2 = TV_ADD(c2, TV_MUL(hk, TV_ADD(TV_LOADU(a + 2 * TMPL_W), TV_LOADU(b + 2 * TMPL_W))));
            c3 = TV_ADD(c3, TV_MUL(hk, TV_ADD(TV_LOADU(a + 3 * TMPL_W), TV_LOADU(b + 3 * TMPL_W))));
        }
        if (taps & 1u) {
            const TV hm = TV_SET1(h[half]);
            const float *b = ol + half;
            c0 = TV_ADD(c0, TV_MUL(hm, TV_LOADU(b)));
            c1 = TV_ADD(c1, TV_MUL(hm, TV_LOADU(b + TMPL_W)));
            c2 = TV_ADD(c2, TV_MUL(hm, TV_LOADU(b + 2 * TMPL_W)));
            c3 = TV_ADD(c3, TV_MUL(hm, TV_LOADU(b + 3 * TMPL_W)));
        }
        TV_STOREU(y + i, c0);
        TV_STOREU(y + i + TMPL_W, c1);
        TV_STOREU(y + i + 2 * TMPL_W, c2);
        TV_STOREU(y + i + 3 * TMPL_W, c3);
    }
    if (i + 2 * TMPL_W <= m) {
        TV c0 = TV_ZERO(), c1 = TV_ZERO();
        const float *nw = newest + i, *ol = w + i;
        for (uint32_t k = 0; k < half; k++) {
            const TV hk = TV_SET1(h[k]);
            const float *a = nw - k, *b = ol + k;
            c0 = TV_ADD(c0, TV_MUL(hk, TV_ADD(TV_LOADU(a), TV_LOADU(b))));
            c1 = TV_ADD(c1, TV_MUL(hk, TV_ADD(TV_LOADU(a + TMPL_W), TV_LOADU(b + TMPL_W))));
        }
        if (taps & 1u) {
            const TV hm = TV_SET1(h[half]);
            c0 = TV_ADD(c0, TV_MUL(hm, TV_LOADU(ol + half)));
            c1 = TV_ADD(c1, TV_MUL(hm, TV_LOADU(ol + half + TMPL_W)));
        }
        TV_STOREU(y + i, c0);
        TV_STOREU(y + i + TMPL_W, c1);
        i += 2 * TMPL_W;
    }
    /* The last vector may run past output m - 1: its extra lanes read the
     * zeroed US_FIR_PAD floats after the chunk and are not stored. */
    for (; i < m; i += TMPL_W) {
        TV c0 = TV_ZERO();
        const float *nw = newest + i, *ol = w + i;
        for (uint32_t k = 0; k < half; k++)
            c0 = TV_ADD(c0, TV_MUL(TV_SET1(h[k]), TV_ADD(TV_LOADU(nw - k), TV_LOADU(ol + k))));
        if (taps & 1u) c0 = TV_ADD(c0, TV_MUL(TV_SET1(h[half]), TV_LOADU(ol + half)));
        if (i + TMPL_W <= m) {
            TV_STOREU(y + i, c0);
        } else {
            float t[TMPL_W] __attribute__((aligned(32)));
            TV_STOREU(t, c0);
            for (uint32_t j = 0; i + j < m; j++) y[i + j] = t[j];
        }
    }
}

#undef TMPL_CAT2
#undef TMPL_CAT
#undef TMPL_FN
