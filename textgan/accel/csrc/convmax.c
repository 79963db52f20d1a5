/* Convolution over time, then max over time with its position, for RelGAN's discriminator
 * (textgan/models/discriminator.py holds the definition; textgan/accel/convmax.py calls this).
 * One pass per row over time: the (T', F) convolution output is never stored, only each
 * filter's running maximum and where it was reached. Built by textgan/accel/build.py with the
 * machine's C compiler and called through ctypes; the rows are split over torch's OpenMP threads
 * (parallel.h).
 *
 * x: (N, T, D) rows (N = batch * representations); wt: (K*D, F) the filters transposed,
 * k-major, F a multiple of 64 bytes of filters; out, arg: (N, F). The weight layout in the
 * backward is (F, K*D). GCC/Clang vector extensions of one register: 64 bytes with AVX-512, else
 * 32. */
#include <math.h>
#include <stdint.h>

#include "parallel.h"
#include "simd.h"

#define VBYTES (4 * L) /* one vector register: 64 bytes with AVX-512, 32 with AVX2 (simd.h) */
#ifdef __AVX512F__
#define NV 2 /* vectors of filters per window pass (as measured on the Xeon) */
#else
#define NV 4 /* vectors of filters per window pass: 3 * NV + 3 of the 16 registers */
#endif

/* out[n, f0 + i] = max over t of sum_j wt[j, f0 + i] * x[n, t*D + j] for NB vectors of filters
 * from f0; arg[n, f0 + i] = the last t reaching it (arg may be NULL). Every window value loaded
 * serves NB vectors of filters. */
#define CHUNK(T, SUF, I, NB)                                                                     \
static inline void chunk_##SUF##_##NB(const T *xn, const T *wt, int64_t steps, int64_t d, int64_t kd, \
                                      int64_t f, int64_t f0, T *outn, int32_t *argn) {           \
  enum { W = VBYTES / (int)sizeof(T) };                                                          \
  vec_##SUF best[NB], acc[NB];                                                                   \
  ivec_##SUF at[NB];                                                                             \
  UNROLL for (int v = 0; v < NB; v++) best[v] = (vec_##SUF){0} - (T)INFINITY, at[v] = (ivec_##SUF){0}; \
  for (int64_t t = 0; t < steps; t++) {                                                          \
    UNROLL for (int v = 0; v < NB; v++) acc[v] = (vec_##SUF){0};                                 \
    const T *win = xn + t * d;                                                                   \
    for (int64_t j = 0; j < kd; j++) {                                                           \
      const T c = win[j];                                                                        \
      UNROLL for (int v = 0; v < NB; v++) acc[v] += c * *(const vec_##SUF *)(wt + j * f + f0 + v * W); \
    }                                                                                            \
    const ivec_##SUF tv = (ivec_##SUF){0} + (I)t;                                                \
    UNROLL for (int v = 0; v < NB; v++) {                                                        \
      const ivec_##SUF ge = acc[v] >= best[v];                                                   \
      best[v] = (vec_##SUF)(((ivec_##SUF)acc[v] & ge) | ((ivec_##SUF)best[v] & ~ge));            \
      at[v] = (at[v] & ~ge) | (tv & ge);                                                         \
    }                                                                                            \
  }                                                                                              \
  UNROLL for (int v = 0; v < NB; v++) {                                                          \
    *(vec_##SUF *)(outn + f0 + v * W) = best[v];                                                 \
    if (argn)                                                                                    \
      for (int i = 0; i < W; i++) argn[f0 + v * W + i] = (int32_t)at[v][i];                      \
  }                                                                                              \
}

#define DEFINE(T, SUF, I)                                                                        \
typedef T vec_##SUF __attribute__((vector_size(VBYTES), aligned(sizeof(T))));                   \
typedef I ivec_##SUF __attribute__((vector_size(VBYTES), aligned(sizeof(T))));                  \
CHUNK(T, SUF, I, NV)                                                                             \
CHUNK(T, SUF, I, 1)                                                                              \
                                                                                                 \
/* out[n, f] = max over t of sum_j wt[j, f] * x[n, t*D + j]; arg[n, f] = the last t reaching it  \
 * (arg may be NULL). */                                                                         \
static void forward_rows_##SUF(const T *x, const T *wt, int64_t n0, int64_t n1, int64_t len,     \
                               int64_t d, int64_t k, int64_t f, T *out, int32_t *arg) {          \
  enum { W = VBYTES / (int)sizeof(T) };                                                          \
  const int64_t kd = k * d, steps = len - k + 1;                                                 \
  for (int64_t n = n0; n < n1; n++) {                                                            \
    const T *xn = x + n * len * d;                                                               \
    T *outn = out + n * f;                                                                       \
    int32_t *argn = arg ? arg + n * f : 0;                                                       \
    int64_t f0 = 0;                                                                              \
    for (; f0 + NV * W <= f; f0 += NV * W) chunk_##SUF##_##NV(xn, wt, steps, d, kd, f, f0, outn, argn); \
    for (; f0 < f; f0 += W) chunk_##SUF##_1(xn, wt, steps, d, kd, f, f0, outn, argn);           \
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

DEFINE(float, f32, int32_t)
DEFINE(double, f64, int64_t)
