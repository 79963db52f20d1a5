/* The vectors and the vector math the kernels share (GCC/Clang vector extensions): one AVX-512
 * register of 16 floats where the build has AVX-512, else one AVX2 register of 8. Wider GCC
 * vectors than the target's registers are split into pairs that the compiler keeps on the stack:
 * the 16-float vectors built for AVX2 made the cross-entropy kernel 9.5x slower than torch
 * (BENCHMARKS.md, 2026-12-01). Included by linear_ce.c, lstm.c, highway.c, convmax.c and fpenv.c;
 * textgan/accel/build.py keys its build cache on the headers too. */
#ifndef TEXTGAN_SIMD_H
#define TEXTGAN_SIMD_H
#include <stdint.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#ifdef __AVX512F__
#define L 16 /* floats per vector: 64 bytes */
#else
#define L 8 /* floats per vector: 32 bytes */
#endif
typedef float vf __attribute__((vector_size(4 * L)));
typedef int32_t vi __attribute__((vector_size(4 * L)));

#define UNROLL _Pragma("GCC unroll 32") /* the block loops: accumulators stay in registers */

typedef float vfu __attribute__((vector_size(4 * L), aligned(4))); /* an unaligned vector in memory */
#define LD(p) ((vf)(*(const vfu *)(p)))
#define ST(p, x) (*(vfu *)(p) = (vfu)(x))

/* vselect(m, a, b): a in the lanes where m is all ones, b where it is zero */
static inline vf vselect(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }

static inline vf vabs(vf x) { return (vf)((vi)x & 0x7fffffff); }

/* vmax(a, b): the larger; b where either is NaN, so a NaN logit propagates */
#ifdef __AVX512F__
static inline vf vmax(vf a, vf b) { return (vf)_mm512_max_ps((__m512)a, (__m512)b); }
#else
static inline vf vmax(vf a, vf b) { return vselect(a > b, a, b); }
#endif

/* exp(x) for x <= 0 to 3 ulp: x = n ln2 + r with |r| <= ln2/2, exp(r) by a degree-5 polynomial
 * minimax in relative error (fitted for this file: 1.1e-7 exact, 1.7e-7 in float; Cephes' expf
 * form costs three operations more, 2 % of the cross-entropy kernel), times 2^n; 0 far below (a
 * -1e9 or -inf logit), NaN for NaN. AVX-512 scales by 2^n in one instruction (vscalefps, which
 * underflows to 0 by itself); elsewhere n goes into the exponent bits, x is clamped at -87 so
 * that stays a normal number, and the lanes below -87 are zeroed after (a softmax term under
 * 1e-38 changes nothing). */
static inline vf vexp(vf x) {
#ifdef __AVX512F__
  x = vmax((vf){0} - 104.0f, x); /* exp(-104) is 0 in float; keeps -1e9 or -inf logits finite */
  const vf n = (vf)_mm512_roundscale_ps((__m512)(x * 1.44269504088896341f), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
  const vi low = x < -87.0f, nan = x != x;
  x = vmax((vf){0} - 87.0f, x);
  const vf big = (vf){0} + 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
  const vf t = x * 1.44269504088896341f + big;
  const vf n = t - big;
#endif
  const vf r = x - n * 0.693359375f + n * 2.12194440e-4f;
  vf p = r * 8.3124796e-3f + 4.1901249e-2f;
  p = p * r + 1.6667284e-1f;
  p = p * r + 4.9999121e-1f;
  p = p * r + 9.9999982e-1f;
  p = p * r + 1.0f;
#ifdef __AVX512F__
  return (vf)_mm512_scalef_ps((__m512)p, (__m512)n);
#else
  const vi e = ((vi)p + (((vi)t - (vi)big) << 23)) & ~low;
  return (vf)((e & ~nan) | ((vi)x & nan));
#endif
}

/* 1 / x: AVX-512's 14-bit estimate refined by one Newton step (vdivps is ~4x slower), else a
 * division. */
static inline vf vrcp(vf x) {
#ifdef __AVX512F__
  const vf r = (vf)_mm512_rcp14_ps((__m512)x);
  return r * (2.0f - x * r);
#else
  return 1.0f / x;
#endif
}

/* sigmoid(x) = 1 / (1 + e) for x >= 0, e / (1 + e) below, with e = exp(-|x|) <= 1: no overflow,
 * no cancellation. */
static inline vf vsigmoid(vf x) {
  const vf e = vexp((vf){0} - vabs(x)), r = vrcp(1.0f + e);
  return vselect(x >= 0.0f, r, e * r);
}

/* Denormal inputs and results flushed to zero (FTZ | DAZ in MXCSR) on this thread, or (flush = 0)
 * kept; returns the previous state for denormals_restore. An FMA that touches a denormal takes a
 * microcode assist costing ~100 cycles. Elsewhere than x86 nothing changes. */
static inline unsigned int denormals_flush(int flush) {
#if defined(__x86_64__) || defined(__i386__)
  const unsigned int csr = _mm_getcsr();
  _mm_setcsr(flush ? (csr | 0x8040u) : (csr & ~0x8040u));
  return csr;
#else
  (void)flush;
  return 0;
#endif
}

static inline unsigned int denormals_off(void) { return denormals_flush(1); }

static inline void denormals_restore(unsigned int csr) {
#if defined(__x86_64__) || defined(__i386__)
  _mm_setcsr(csr);
#else
  (void)csr;
#endif
}
#endif
