/* The recurrence of a teacher-forced LSTM layer, forward and backward, one vector of batch rows
 * (16 with AVX-512, 8 with AVX2) per block
 * (textgan/accel/lstm.py calls this and does the input projections and the weight
 * gradients with torch's matmuls). Arrays are unit-major, then time, then batch: (F, T, BP) with
 * BP the batch rounded up to 16. One vector holds L rows of one unit at one step, so the gate
 * nonlinearities are vertical vector work and a step's recurrent product is, per unit, a sum of
 * weight scalars times vectors; and every (F, T * BP) array is a plain matrix for torch's
 * products (x W_ih^T for all steps at once, the weight gradients) with no transposing copy. The
 * state arrays have T + 1 steps, step 0 holding h0 and c0, so h_{t-1} of every step is one slice.
 * The rows of a block never meet another block's: the threads take whole blocks and no step waits
 * for another thread. PyTorch's gate order: i, f, g, o.
 *   a = xg_t + W_hh h_{t-1};  i, f, o = sigmoid;  g = tanh
 *   c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)
 * Built by textgan/accel/build.py with the machine's C compiler, with OpenMP where it has it (then on
 * torch's own threads: see parallel.h), and called through ctypes. */
#include <math.h>
#include <stdint.h>

#include "parallel.h"
#include "simd.h"

#ifdef __AVX512F__
#define ACC 16 /* accumulators a matvec keeps in registers: units times vectors per unit */
#else
#define ACC 12 /* 16 registers of 8 floats: 12 accumulators, 2 inputs, a broadcast scalar */
#endif
#define INLINE static inline __attribute__((always_inline))

/* A group is W adjacent blocks (W * L rows) worked together: each weight scalar loaded serves W
 * vectors, which halves the loads per FMA at W = 2 (the products are load-bound at W = 1).
 * out[r] = (init ? init[r] : 0) + sum_k w[r * inner + k] * in[k] for units r in [r0, r0 + N),
 * each unit W vectors; units `is`, `ns` and `os` floats apart in init, in and out. */
INLINE void matvec_block(int n, int wd, const float *init, int64_t is, const float *w, const float *in,
                         int64_t ns, int64_t inner, int64_t r0, float *out, int64_t os) {
  vf acc[ACC];
  UNROLL for (int i = 0; i < n; i++) UNROLL for (int j = 0; j < wd; j++)
    acc[i * wd + j] = init ? LD(init + (r0 + i) * is + j * L) : (vf){0};
  const float *wr = w + r0 * inner;
  for (int64_t k = 0; k < inner; k++) {
    vf x[2];
    UNROLL for (int j = 0; j < wd; j++) x[j] = LD(in + k * ns + j * L);
    UNROLL for (int i = 0; i < n; i++) {
      const float c = wr[i * inner + k];
      UNROLL for (int j = 0; j < wd; j++) acc[i * wd + j] += c * x[j];
    }
  }
  UNROLL for (int i = 0; i < n; i++) UNROLL for (int j = 0; j < wd; j++) ST(out + (r0 + i) * os + j * L, acc[i * wd + j]);
}

INLINE void matvec(int wd, const float *init, int64_t is, const float *w, const float *in, int64_t ns,
                   int64_t rows, int64_t inner, float *out, int64_t os) {
  const int n = ACC / wd;
  int64_t r = 0;
  for (; r + n <= rows; r += n) matvec_block(n, wd, init, is, w, in, ns, inner, r, out, os);
  for (; r < rows; r++) matvec_block(1, wd, init, is, w, in, ns, inner, r, out, os);
}

/* tanh(x): Cephes' odd polynomial below |x| = 0.625 (where 1 - exp(-2|x|) would cancel), else
 * (1 - e) / (1 + e) with e = exp(-2|x|); the sign of x put back. */
static inline vf vtanh(vf x) {
  const vf a = vabs(x), s = a * a;
  const vf small = ((((-5.70498872745e-3f * s + 2.06390887954e-2f) * s - 5.37397155531e-2f) * s +
                     1.33314422036e-1f) * s - 3.33332819422e-1f) * s * a + a;
  const vf e = vexp((vf){0} - 2.0f * a), big = (1.0f - e) * vrcp(1.0f + e);
  const vf t = vselect(a < 0.625f, small, big);
  return (vf)((vi)t | ((vi)x & INT32_MIN)); /* a NaN stays NaN */
}

/* One group of wd blocks (every pointer already offset to its first row), all steps. Gate arrays
 * (xg, act, tcs) have units gs = T * BP floats apart, state arrays (y, cs) ss = (T + 1) * BP. */
INLINE void forward_group(int wd, float *act, const float *whh, int64_t t_len, int64_t hd, int64_t bp,
                          float *tcs, float *y, float *cs) {
  const int64_t g4 = 4 * hd, gs = t_len * bp, ss = gs + bp;
  for (int64_t t = 0; t < t_len; t++) {
    float *a = act + t * bp; /* holds xg_t on entry: pre-activations, then activations, in place */
    matvec(wd, a, gs, whh, y + t * bp, ss, g4, hd, a, gs);
    for (int64_t k = 0; k < hd; k++) {
      UNROLL for (int j = 0; j < wd; j++) {
        float *pi = a + k * gs + j * L, *pf = pi + hd * gs, *pg = pf + hd * gs, *po = pg + hd * gs;
        const vf i = vsigmoid(LD(pi)), f = vsigmoid(LD(pf)), g = vtanh(LD(pg)), o = vsigmoid(LD(po));
        const int64_t sk = k * ss + t * bp + j * L;
        const vf c = f * LD(cs + sk) + i * g, tc = vtanh(c);
        ST(pi, i), ST(pf, f), ST(pg, g), ST(po, o);
        ST(cs + sk + bp, c), ST(tcs + k * gs + t * bp + j * L, tc), ST(y + sk + bp, o * tc);
      }
    }
  }
}

/* Backward through one group. dh and dc hold the running gradients of h_{t-1} and c_{t-1}, from
 * 0 at t = T (no gradient reaches the final cell state; that of the final h is in dy); at the
 * end, those of h0 (plus dy's step 0, where y's slot for h0 was used) and c0. */
INLINE void backward_group(int wd, const float *dy, const float *whh_t, const float *act, const float *tcs,
                           const float *cs, int64_t t_len, int64_t hd, int64_t bp, float *dg, float *dh,
                           float *dc) {
  const int64_t g4 = 4 * hd, gs = t_len * bp, ss = gs + bp;
  for (int64_t k = 0; k < hd; k++) UNROLL for (int j = 0; j < wd; j++)
    ST(dh + k * bp + j * L, (vf){0}), ST(dc + k * bp + j * L, (vf){0});
  for (int64_t t = t_len - 1; t >= 0; t--) {
    const float *a = act + t * bp;
    float *d = dg + t * bp;
    for (int64_t k = 0; k < hd; k++) {
      UNROLL for (int j = 0; j < wd; j++) {
        const int64_t gk = k * gs + j * L, sk = k * ss + t * bp + j * L, hk = k * bp + j * L;
        const vf i = LD(a + gk), f = LD(a + hd * gs + gk), g = LD(a + 2 * hd * gs + gk);
        const vf o = LD(a + 3 * hd * gs + gk), tc = LD(tcs + gk + t * bp);
        const vf dhk = LD(dy + sk + bp) + LD(dh + hk);
        const vf dck = LD(dc + hk) + dhk * o * (1.0f - tc * tc);
        ST(d + gk, dck * g * i * (1.0f - i));
        ST(d + hd * gs + gk, dck * LD(cs + sk) * f * (1.0f - f));
        ST(d + 2 * hd * gs + gk, dck * i * (1.0f - g * g));
        ST(d + 3 * hd * gs + gk, dhk * tc * o * (1.0f - o));
        ST(dc + hk, dck * f);
      }
    }
    matvec(wd, NULL, 0, whh_t, d, gs, hd, g4, dh, bp); /* dh_{t-1} = W_hh^T da_t */
  }
  for (int64_t k = 0; k < hd; k++) UNROLL for (int j = 0; j < wd; j++)
    ST(dh + k * bp + j * L, LD(dh + k * bp + j * L) + LD(dy + k * ss + j * L));
}

static void forward_1(float *act, const float *whh, int64_t t_len, int64_t hd, int64_t bp, float *tcs, float *y,
                      float *cs) { forward_group(1, act, whh, t_len, hd, bp, tcs, y, cs); }
static void forward_2(float *act, const float *whh, int64_t t_len, int64_t hd, int64_t bp, float *tcs, float *y,
                      float *cs) { forward_group(2, act, whh, t_len, hd, bp, tcs, y, cs); }
static void backward_1(const float *dy, const float *whh_t, const float *act, const float *tcs, const float *cs,
                       int64_t t_len, int64_t hd, int64_t bp, float *dg, float *dh, float *dc) {
  backward_group(1, dy, whh_t, act, tcs, cs, t_len, hd, bp, dg, dh, dc);
}
static void backward_2(const float *dy, const float *whh_t, const float *act, const float *tcs, const float *cs,
                       int64_t t_len, int64_t hd, int64_t bp, float *dg, float *dh, float *dc) {
  backward_group(2, dy, whh_t, act, tcs, cs, t_len, hd, bp, dg, dh, dc);
}

/* act (4H, T, BP): on entry the input projections plus both biases, on return the gate
 * activations; whh (4H, H); y and cs (H, T + 1, BP) with h0 and c0 in step 0. Out: tcs (H, T, BP)
 * the cell states' tanh, y and cs steps 1..T. BP: a multiple of 16. Each thread takes a range of
 * blocks, in pairs. */
void lstm_forward_f32(float *act, const float *whh, int64_t t_len, int64_t hd, int64_t bp, float *tcs,
                      float *y, float *cs, int64_t threads) {
  PARALLEL_RANGE(threads, bp / L, part, lo, hi, {
    const unsigned int csr = denormals_off();
    int64_t b = lo;
    for (; b + 2 <= hi; b += 2) forward_2(act + b * L, whh, t_len, hd, bp, tcs + b * L, y + b * L, cs + b * L);
    if (b < hi) forward_1(act + b * L, whh, t_len, hd, bp, tcs + b * L, y + b * L, cs + b * L);
    denormals_restore(csr);
  })
}

/* dy (H, T + 1, BP): the gradient of y; whh_t (H, 4H) the recurrent weight transposed; act, tcs
 * and cs as the forward left them. Out: dg (4H, T, BP) the gradient of the pre-activations (from
 * which torch's products give the weights' and the inputs'), dh0 and dc0 (H, BP). */
void lstm_backward_f32(const float *dy, const float *whh_t, const float *act, const float *tcs,
                       const float *cs, int64_t t_len, int64_t hd, int64_t bp, float *dg, float *dh0,
                       float *dc0, int64_t threads) {
  PARALLEL_RANGE(threads, bp / L, part, lo, hi, {
    const unsigned int csr = denormals_off();
    int64_t b = lo;
    for (; b + 2 <= hi; b += 2) {
      const int64_t r = b * L;
      backward_2(dy + r, whh_t, act + r, tcs + r, cs + r, t_len, hd, bp, dg + r, dh0 + r, dc0 + r);
    }
    if (b < hi) {
      const int64_t r = b * L;
      backward_1(dy + r, whh_t, act + r, tcs + r, cs + r, t_len, hd, bp, dg + r, dh0 + r, dc0 + r);
    }
    denormals_restore(csr);
  })
}
