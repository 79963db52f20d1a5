/* Counter-based random numbers (Philox4x32-10, Salmon et al. 2011, "Parallel random numbers:
 * as easy as 1, 2, 3"; the generator of cuRAND and JAX): element i of a draw is a pure function
 * of (seed, i), so any split of [0, n) over threads gives the same numbers, and a draw costs a
 * few cycles per element against torch's single-stream Mersenne twister on CPU.
 * Element i is word i % 4 of Philox block i / 4. Built by textgan/accel/build.py, called by
 * textgan/accel/random.py (textgan/philox.py: the same numbers in numpy). Blocks and uniforms: philox.h. */
#include <stdint.h>
#include <string.h>

#include "parallel.h"

#include "philox.h"

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

/* out[r * n + i] = element start + i of key r's stream, for rows r < rows: the per-sample noise of
 * textgan.draws at one step (start = step * V, n = V), rows split over `threads` threads. */
void uniform_rows_f32(const uint64_t *keys, int64_t rows, int64_t start, int64_t n, float *out, int64_t threads) {
  PARALLEL_RANGE(threads, rows, part, r0, r1, {
    float vals[4 * LANES];
    for (int64_t r = r0; r < r1; r++) {
      for (int64_t b = start / 4; 4 * b < start + n; b += LANES) {
        uniform_group(keys[r], b, vals);
        int64_t lo = 4 * b > start ? 4 * b : start, hi = 4 * (b + LANES) < start + n ? 4 * (b + LANES) : start + n;
        memcpy(out + r * n + (lo - start), vals + (lo - 4 * b), (size_t)(hi - lo) * sizeof(float));
      }
    }
  })
}
