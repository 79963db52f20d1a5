/* Convolution over time, then max over time with its position, for RelGAN's discriminator
 * (textgan/models/convmax.py holds the definition; convmax_native.py calls this and the torch version).
 * One pass per row over time: the (T', F) convolution output is never stored, only each
 * filter's running maximum and where it was reached. Built by textgan/native.py with the
 * machine's C compiler and called through ctypes, which releases the GIL, so Python threads
 * run disjoint row ranges [n0, n1) at once.
 *
 * x: (N, T, D) rows (N = batch * representations); wt: (K*D, F) the filters transposed,
 * k-major, F a multiple of the vector width L; out, arg: (N, F). The weight layout in the
 * backward is (F, K*D). GCC/Clang vector extensions: 64-byte vectors (one AVX-512 register,
 * two AVX2 ones). */
#include <math.h>
#include <stdint.h>

#include "parallel.h"

#define DEFINE(T, SUF, L, I)                                                                     \
typedef T vec_##SUF __attribute__((vector_size(64), aligned(sizeof(T))));                       \
typedef I ivec_##SUF __attribute__((vector_size(64), aligned(sizeof(T))));                      \
                                                                                                 \
/* out[n, f] = max over t of sum_j wt[j, f] * x[n, t*D + j]; arg[n, f] = the last t reaching it  \
 * (arg may be NULL). */                                                                         \
static void forward_rows_##SUF(const T *x, const T *wt, int64_t n0, int64_t n1, int64_t len,         \
                           int64_t d, int64_t k, int64_t f, T *out, int32_t *arg) {              \
  const int64_t kd = k * d, steps = len - k + 1;                                                 \
  for (int64_t n = n0; n < n1; n++) {                                                            \
    const T *xn = x + n * len * d;                                                               \
    int64_t f0 = 0;                                                                              \
    for (; f0 + 2 * L <= f; f0 += 2 * L) { /* two vectors of filters share each window load */   \
      vec_##SUF best0 = (vec_##SUF){0} - (T)INFINITY, best1 = best0;                             \
      ivec_##SUF at0 = (ivec_##SUF){0}, at1 = at0;                                               \
      for (int64_t t = 0; t < steps; t++) {                                                      \
        vec_##SUF acc0 = (vec_##SUF){0}, acc1 = acc0;                                            \
        const T *win = xn + t * d;                                                               \
        for (int64_t j = 0; j < kd; j++) {                                                       \
          acc0 += win[j] * *(const vec_##SUF *)(wt + j * f + f0);                                \
          acc1 += win[j] * *(const vec_##SUF *)(wt + j * f + f0 + L);                            \
        }                                                                                        \
        const ivec_##SUF tv = (ivec_##SUF){0} + (I)t, ge0 = acc0 >= best0, ge1 = acc1 >= best1;  \
        best0 = (vec_##SUF)(((ivec_##SUF)acc0 & ge0) | ((ivec_##SUF)best0 & ~ge0));              \
        best1 = (vec_##SUF)(((ivec_##SUF)acc1 & ge1) | ((ivec_##SUF)best1 & ~ge1));              \
        at0 = (at0 & ~ge0) | (tv & ge0);                                                         \
        at1 = (at1 & ~ge1) | (tv & ge1);                                                         \
      }                                                                                          \
      *(vec_##SUF *)(out + n * f + f0) = best0;                                                  \
      *(vec_##SUF *)(out + n * f + f0 + L) = best1;                                              \
      if (arg)                                                                                   \
        for (int i = 0; i < L; i++) {                                                            \
          arg[n * f + f0 + i] = (int32_t)at0[i];                                                 \
          arg[n * f + f0 + L + i] = (int32_t)at1[i];                                             \
        }                                                                                        \
    }                                                                                            \
    for (; f0 < f; f0 += L) {                                                                    \
      vec_##SUF best = (vec_##SUF){0} - (T)INFINITY;                                             \
      ivec_##SUF at = (ivec_##SUF){0};                                                           \
      for (int64_t t = 0; t < steps; t++) {                                                      \
        vec_##SUF acc = (vec_##SUF){0};                                                          \
        const T *win = xn + t * d;                                                               \
        for (int64_t j = 0; j < kd; j++) acc += win[j] * *(const vec_##SUF *)(wt + j * f + f0);  \
        ivec_##SUF ge = acc >= best;                                                             \
        best = (vec_##SUF)(((ivec_##SUF)acc & ge) | ((ivec_##SUF)best & ~ge));                   \
        at = (at & ~ge) | (((ivec_##SUF){0} + (I)t) & ge);                                       \
      }                                                                                          \
      *(vec_##SUF *)(out + n * f + f0) = best;                                                   \
      if (arg)                                                                                   \
        for (int i = 0; i < L; i++) arg[n * f + f0 + i] = (int32_t)at[i];                        \
    }                                                                                            \
  }                                                                                              \
}                                                                                                \
                                                                                                 \
/* Gradients through the maxima: each (n, f) sends g[n, f] to its argmax window only.          \
 * gx (N, T, D) and gw (F, K*D) are accumulated into; either may be NULL. */                     \
static void backward_rows_##SUF(const T *x, const T *w, const T *g, const int32_t *arg, int64_t n0,  \
                            int64_t n1, int64_t len, int64_t d, int64_t k, int64_t f, T *gx,     \
                            T *gw) {                                                             \
  const int64_t kd = k * d;                                                                      \
  for (int64_t n = n0; n < n1; n++) {                                                            \
    const T *xn = x + n * len * d;                                                               \
    T *gxn = gx ? gx + n * len * d : 0;                                                          \
    for (int64_t c = 0; c < f; c++) {                                                            \
      const T gv = g[n * f + c];                                                                 \
      if (gv == 0) continue;                                                                     \
      const T *wc = w + c * kd, *xw = xn + arg[n * f + c] * d;                                   \
      if (gxn)                                                                                   \
        for (int64_t j = 0; j < kd; j++) gxn[arg[n * f + c] * d + j] += gv * wc[j];              \
      if (gw)                                                                                    \
        for (int64_t j = 0; j < kd; j++) gw[c * kd + j] += gv * xw[j];                           \
    }                                                                                            \
  }                                                                                              \
}                                                                                                \
                                                                                                 \
/* Both over rows [0, n) split over `threads` threads; in the backward each thread accumulates    \
 * into its own gw, gw + part * F * K*D (the caller sums the parts). */                           \
void convmax_forward_##SUF(const T *x, const T *wt, int64_t n, int64_t len, int64_t d, int64_t k,\
                           int64_t f, T *out, int32_t *arg, int64_t threads) {                   \
  PARALLEL_RANGE(threads, n, part, n0, n1, forward_rows_##SUF(x, wt, n0, n1, len, d, k, f, out, arg)) \
}                                                                                                \
void convmax_backward_##SUF(const T *x, const T *w, const T *g, const int32_t *arg, int64_t n,   \
                            int64_t len, int64_t d, int64_t k, int64_t f, T *gx, T *gw,          \
                            int64_t threads) {                                                   \
  PARALLEL_RANGE(threads, n, part, n0, n1,                                                       \
                 backward_rows_##SUF(x, w, g, arg, n0, n1, len, d, k, f, gx, gw ? gw + part * f * k * d : 0)) \
}

DEFINE(float, f32, 16, int32_t)
DEFINE(double, f64, 8, int64_t)
