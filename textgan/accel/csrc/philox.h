/* Philox4x32-10 blocks and their open-interval uniforms, shared by philox.c (the streams) and
 * gumbel_max.c (the fused sampling step): textgan/philox.py is the same definition in numpy.
 * GCC/Clang vector extensions: LANES blocks side by side. */
#ifndef TEXTGAN_PHILOX_H
#define TEXTGAN_PHILOX_H
#include <stdint.h>

#define LANES 8
typedef uint32_t u32v __attribute__((vector_size(4 * LANES)));
typedef uint64_t u64v __attribute__((vector_size(8 * LANES)));
typedef float f32v __attribute__((vector_size(4 * LANES)));

/* The four words w[j] (lane l: block blocks[l]) of LANES blocks under `seed`. Every word is kept
 * in a 64-bit lane with a zero upper half, which lets the compiler use the 32 x 32 -> 64-bit
 * vector multiply. */
static inline void philox_lanes(uint64_t seed, u64v blocks, u32v w[4]) {
  const u64v lo32 = (u64v){0} + 0xFFFFFFFFull;
  u64v c0 = blocks & lo32, c1 = blocks >> 32, c2 = (u64v){0}, c3 = (u64v){0};
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

/* The same for LANES consecutive blocks b, b + 1, ... */
static inline void philox_blocks(uint64_t seed, uint64_t b, u32v w[4]) {
  u64v blocks;
  for (int l = 0; l < LANES; l++) blocks[l] = b + (uint64_t)l;
  philox_lanes(seed, blocks, w);
}

/* 23-bit uniforms in the open interval (0, 1): (k + 1/2) / 2^23, k the word's top 23 bits, so
 * the largest is 1 - 2^-24, exactly representable (24 bits would round 1 - 2^-25 up to 1.0 and
 * make the Gumbel noise infinite), and log(u), log(1 - u) are finite. */
static inline f32v open_unit(u32v word) {
  return (__builtin_convertvector(word >> 9, f32v) + 0.5f) * (1.0f / 8388608.0f);
}

#endif
