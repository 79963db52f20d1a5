/* Counter-based random numbers (Philox4x32-10, Salmon et al. 2011, "Parallel random numbers:
 * as easy as 1, 2, 3"; the generator of cuRAND and JAX): element i of a draw is a pure function
 * of (seed, i), so any split of [0, n) over threads gives the same numbers, and a draw costs a
 * few cycles per element against torch's single-stream Mersenne twister on CPU.
 * Element i is word i % 4 of Philox block i / 4. Built by textgan/accel/build.py, called by
 * textgan/accel/random.py (textgan/philox.py: the same numbers in numpy). GCC/Clang vector extensions: LANES blocks side by side. */
#include <stdint.h>
#include <string.h>

#include "parallel.h"

#define LANES 8
typedef uint32_t u32v __attribute__((vector_size(4 * LANES)));
typedef uint64_t u64v __attribute__((vector_size(8 * LANES)));
typedef float f32v __attribute__((vector_size(4 * LANES)));

/* The four words w[j] (lane l: block b + l) of LANES consecutive blocks under `seed`. Every
 * word is kept in a 64-bit lane with a zero upper half, which lets the compiler use the 32 x 32
 * -> 64-bit vector multiply. */
static inline void philox_blocks(uint64_t seed, uint64_t b, u32v w[4]) {
  const u64v lo32 = (u64v){0} + 0xFFFFFFFFull;
  u64v c0, c1, c2 = (u64v){0}, c3 = (u64v){0};
  for (int l = 0; l < LANES; l++) c0[l] = b + (uint64_t)l;
  c1 = c0 >> 32;
  c0 &= lo32;
  uint64_t k0 = (uint32_t)seed, k1 = seed >> 32;
  for (int round = 0; round < 10; round++) {
    const u64v p0 = c0 * 0xD2511F53ull, p1 = c2 * 0xCD9E8D57ull;
    const u64v n0 = (p1 >> 32) ^ c1 ^ k0, n2 = (p0 >> 32) ^ c3 ^ k1;
    c1 = p1 & lo32;
    c3 = p0 & lo32;
    c0 = n0;
    c2 = n2;
    k0 = (k0 + 0x9E3779B9u) & 0xFFFFFFFFu;
    k1 = (k1 + 0xBB67AE85u) & 0xFFFFFFFFu;
  }
  w[0] = __builtin_convertvector(c0, u32v); w[1] = __builtin_convertvector(c1, u32v);
  w[2] = __builtin_convertvector(c2, u32v); w[3] = __builtin_convertvector(c3, u32v);
}

/* 23-bit uniforms in the open interval (0, 1): (k + 1/2) / 2^23, k the word's top 23 bits, so
 * the largest is 1 - 2^-24, exactly representable (24 bits would round 1 - 2^-25 up to 1.0 and
 * make the Gumbel noise infinite), and log(u), log(1 - u) are finite. */
static inline f32v open_unit(u32v word) {
  return (__builtin_convertvector(word >> 9, f32v) + 0.5f) * (1.0f / 8388608.0f);
}

/* The same map for one word, so tests can check its extremes. */
float open_unit_scalar(uint32_t word) { return ((float)(word >> 9) + 0.5f) * (1.0f / 8388608.0f); }

/* The 4 * LANES uniforms of blocks b.. b + LANES - 1, in element order. */
static inline void uniform_group(uint64_t seed, int64_t b, float vals[4 * LANES]) {
  u32v w[4];
  philox_blocks(seed, (uint64_t)b, w);
  f32v u[4] = {open_unit(w[0]), open_unit(w[1]), open_unit(w[2]), open_unit(w[3])};
  for (int l = 0; l < LANES; l++)
    for (int j = 0; j < 4; j++) vals[4 * l + j] = u[j][l];
}

/* out[i] = U(0, 1) for i in [4*b0, 4*b1) and i < n. */
static void uniform_range(uint64_t seed, int64_t b0, int64_t b1, int64_t n, float *out) {
  float vals[4 * LANES];
  for (int64_t b = b0; b < b1; b += LANES) {
    uniform_group(seed, b, vals);
    int64_t end = 4 * (b + LANES < b1 ? b + LANES : b1);
    if (end > n) end = n;
    memcpy(out + 4 * b, vals, (size_t)(end - 4 * b) * sizeof(float));
  }
}

/* Dropout's scaled keep mask: out[i] = scale if U(0, 1) >= p else 0, over the same ranges. */
static void keep_mask_range(uint64_t seed, int64_t b0, int64_t b1, int64_t n, float p, float scale,
                            float *out) {
  float vals[4 * LANES];
  for (int64_t b = b0; b < b1; b += LANES) {
    uniform_group(seed, b, vals);
    for (int i = 0; i < 4 * LANES; i++) vals[i] = vals[i] >= p ? scale : 0.0f;
    int64_t end = 4 * (b + LANES < b1 ? b + LANES : b1);
    if (end > n) end = n;
    memcpy(out + 4 * b, vals, (size_t)(end - 4 * b) * sizeof(float));
  }
}

/* out[i] = U(0, 1) for i < n, the blocks split over `threads` threads (any split, same numbers). */
void uniform_f32(uint64_t seed, int64_t n, float *out, int64_t threads) {
  PARALLEL_RANGE(threads, (n + 3) / 4, part, b0, b1, uniform_range(seed, b0, b1, n, out))
}

/* Dropout's scaled keep mask for i < n, split the same way. */
void keep_mask_f32(uint64_t seed, int64_t n, float p, float scale, float *out, int64_t threads) {
  PARALLEL_RANGE(threads, (n + 3) / 4, part, b0, b1, keep_mask_range(seed, b0, b1, n, p, scale, out))
}
