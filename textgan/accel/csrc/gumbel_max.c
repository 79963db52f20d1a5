/* One step of free-running sampling without gradients, fused: token b = argmax_v (logits[b, v] +
 * G[b, v]), G the Gumbel noise -log(-log U) of element step * V + v of row b's Philox stream
 * (textgan/draws.py defines it), made here as it is needed, so the (B, T, V) noise is never written
 * to memory. Called by textgan/accel/sampling.py; built by textgan/accel/build.py.
 *
 * Most of the noise is never needed at all: the largest noise value is -log(-log(1 - 2^-24)) =
 * 16.64, so a token whose logit is more than that below the best perturbed logit so far cannot win,
 * and a cheap upper bound on G from the uniform's bits (no logarithm: below) rules out nearly every
 * other one. Only the few survivors take the two logarithms, with the C library's logf (torch's
 * vectorised log may differ from it in the last bit, which changes a token only where the two best
 * perturbed logits of a row are within a few units in the last place). Ties go to the lowest index,
 * as torch.argmax does; a NaN logit is chosen as torch.argmax chooses it (the first one). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"
#include "philox.h"

#define GMAX 16.64f /* above every noise value: -log(-log(1 - 2^-24)) = 16.6355 */
#define LN2_UP 0.6931472f /* ln 2 rounded up */

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef uint32_t v8u __attribute__((vector_size(32)));

/* The Gumbel noise of one Philox word, as textgan.draws computes it: -log(-log u), u its open-interval uniform. */
static inline float gumbel_of(uint32_t word) {
  const float u = ((float)(word >> 9) + 0.5f) * (1.0f / 8388608.0f);
  return -logf(-logf(u));
}

/* An upper bound on gumbel_of(word) for 8 words, with no logarithm: u = (2k + 1) / 2^24 (k the
 * word's top 23 bits) and 1 - u = j / 2^24 with j = 2^24 - 2k - 1, so -log u >= 1 - u >= 2^(e - 24),
 * e = floor(log2 j) (read from the exponent of j as a float, exact below 2^24), and
 * -log(-log u) <= (24 - e) ln 2. Tight to within ln 2 where it matters (u near 1). */
static inline v8f gumbel_bound(v8u words) {
  const v8i j = (v8i)(0xFFFFFFu - ((words >> 9) << 1));
  const v8i biased = (v8i)__builtin_convertvector(j, v8f) >> 23; /* e + 127 */
  return __builtin_convertvector(151 - biased, v8f) * LN2_UP;
}

/* Where a perturbed logit must reach to be considered: best minus a margin for the float rounding
 * of the sums and logarithms (a few units in the last place; this one is far larger, and costs
 * nothing but a few more exact checks). No pruning where best is infinite. */
static inline float threshold(float best) {
  const float t = best - (1e-3f + 1e-5f * fabsf(best));
  return t == t ? t : -INFINITY;
}

#ifdef __AVX512F__
/* With AVX-512 the row is scanned in whole groups of Philox blocks (below): 1.6x faster than the
 * candidate list of the other builds, which stays theirs (on AVX2 the groups' strided reads made
 * no gain; without AVX they cost a third more). Both give the same token: the definition's. */
#include <immintrin.h>

/* The largest of l[0, V), 8 at a time, and *at the first index holding it; *nan set where one
 * is NaN. Each lane keeps the first index of its own largest (a later equal value is not larger),
 * so the first index of the row's is the least of the lanes' that hold it. */
static float row_top(const float *l, int64_t V, int *nan, int64_t *at) {
  v8f acc = (v8f){0} - INFINITY, x;
  v8i idx = (v8i){0}, bad = (v8i){0};
  const v8i step = (v8i){0} + 8;
  v8i cur = (v8i){0, 1, 2, 3, 4, 5, 6, 7};
  int64_t v = 0;
  for (; v + 8 <= V; v += 8, cur += step) {
    memcpy(&x, l + v, sizeof x);
    const v8i gt = x > acc;
    acc = (v8f)(((v8i)x & gt) | ((v8i)acc & ~gt));
    idx = (cur & gt) | (idx & ~gt);
    bad |= x != x;
  }
  float m = -INFINITY;
  for (int i = 0; i < 8; i++) {
    m = acc[i] > m ? acc[i] : m;
    *nan |= bad[i];
  }
  int64_t first = V;
  for (int i = 0; i < 8; i++)
    if (acc[i] == m && idx[i] < first) first = idx[i];
  for (; v < V; v++) {
    *nan |= l[v] != l[v];
    if (l[v] > m) m = l[v], first = v;
    else if (l[v] == m && v < first) first = v;
  }
  *at = first < V ? first : V - 1; /* (first < V always: every lane starts at index 0) */
  return m;
}

/* Whether any of the 32 values reaches c. */
static inline int any_at_least(const float lv[32], float c) {
  v8i any = (v8i){0};
  for (int q = 0; q < 4; q++) {
    v8f x;
    memcpy(&x, lv + 8 * q, sizeof x);
    any |= x >= c;
  }
  return _mm256_movemask_ps((__m256)any) != 0;
}

/* The sampled token of one row: logits l (V,), noise elements e0 .. e0 + V - 1 of `key`'s stream,
 * read in groups of LANES Philox blocks (32 elements): group g's slot s = 4k + j is word j of block
 * e0 / 4 + 8g + k, token v = 32g + s - o (o = e0 % 4), absent outside [0, V). A group with no
 * logit within GMAX of the threshold needs no noise; in the others only the slots whose bound
 * reaches it take the logarithms. Which tokens are looked at, and in which order, changes nothing
 * but the work: the answer is the largest perturbed logit, ties to the lowest index. Scratch:
 * none (the arguments are the other scan's). */
static int64_t row_argmax(const float *l, int64_t V, uint64_t key, int64_t e0, uint8_t *flag, int32_t *cand) {
  (void)flag, (void)cand;
  int nan = 0;
  int64_t bi;
  row_top(l, V, &nan, &bi);
  if (nan)
    for (int64_t v = 0; v < V; v++)
      if (l[v] != l[v]) return v;
  u32v w[4];
  philox_blocks(key, (uint64_t)((e0 + bi) / 4), w);
  float best = l[bi] + gumbel_of(w[(e0 + bi) % 4][0]); /* a good first best: the largest logit's */
  float thr = threshold(best);
  const int64_t o = e0 % 4, first = e0 / 4, groups = (o + V + 31) / 32;
  for (int64_t g = 0; g < groups; g++) {
    const int64_t v0 = 32 * g - o;
    const int whole = v0 >= 0 && v0 + 32 <= V;
    float lv[32];
    if (whole) memcpy(lv, l + v0, sizeof lv);
    else
      for (int s = 0; s < 32; s++) lv[s] = v0 + s >= 0 && v0 + s < V ? l[v0 + s] : -INFINITY;
    if (!any_at_least(lv, thr - GMAX)) continue;
    philox_blocks(key, (uint64_t)(first + 8 * g), w);
    for (int j = 0; j < 4; j++) {
      v8f x;
      for (int k = 0; k < 8; k++) x[k] = lv[4 * k + j];
      const v8i hit = (x + gumbel_bound(w[j])) >= thr;
      if (!_mm256_movemask_ps((__m256)hit)) continue;
      for (int k = 0; k < 8; k++) {
        const int64_t v = v0 + 4 * k + j;
        if (!hit[k] || v < 0 || v >= V) continue;
        const float p = x[k] + gumbel_of(w[j][k]);
        if (p > best || (p == best && v < bi)) {
          best = p;
          bi = v;
          thr = threshold(best);
        }
      }
    }
  }
  return bi;
}

#else
/* The largest of l[0, V), 8 at a time; *nan set where one is NaN. */
static float row_max(const float *l, int64_t V, int *nan) {
  v8f acc = (v8f){0} - INFINITY, x;
  v8i bad = (v8i){0};
  int64_t v = 0;
  for (; v + 8 <= V; v += 8) {
    memcpy(&x, l + v, sizeof x);
    const v8i gt = x > acc;
    acc = (v8f)(((v8i)x & gt) | ((v8i)acc & ~gt));
    bad |= x != x;
  }
  float m = -INFINITY;
  for (int i = 0; i < 8; i++) {
    m = acc[i] > m ? acc[i] : m;
    *nan |= bad[i];
  }
  for (; v < V; v++) {
    m = l[v] > m ? l[v] : m;
    *nan |= l[v] != l[v];
  }
  return m;
}

/* Whether any of l[lo, hi) plus the bound of its word (words[v - base]) reaches thr. */
static int any_candidate(const float *l, const uint32_t *words, int64_t base, int64_t lo, int64_t hi, float thr) {
  if (hi - lo == 4 * LANES) {
    v8i any = (v8i){0};
    for (int q = 0; q < 4; q++) {
      v8f x;
      v8u w;
      memcpy(&x, l + lo + 8 * q, sizeof x);
      memcpy(&w, words + (lo - base) + 8 * q, sizeof w);
      any |= (x + gumbel_bound(w)) >= thr;
    }
    int hit = 0;
    for (int i = 0; i < 8; i++) hit |= any[i];
    return hit;
  }
  for (int64_t v = lo; v < hi; v++) {
    v8u w = (v8u){0} + words[v - base];
    if (l[v] + gumbel_bound(w)[0] >= thr) return 1;
  }
  return 0;
}

/* The sampled token of one row: logits l (V,), noise elements e0 .. e0 + V - 1 of `key`'s stream.
 * Block k of the row (Philox block e0 / 4 + k) holds v in [4k - o, 4k - o + 4), o = e0 % 4, cut to
 * [0, V). Scratch: flag (V + 8 bytes), cand (V / 4 + 2 ints). */
static int64_t row_argmax(const float *l, int64_t V, uint64_t key, int64_t e0, uint8_t *flag, int32_t *cand) {
  int nan = 0;
  const float top = row_max(l, V, &nan);
  if (nan)
    for (int64_t v = 0; v < V; v++)
      if (l[v] != l[v]) return v;
  int64_t bi = 0;
  while (bi < V - 1 && l[bi] != top) bi++;
  u32v w[4];
  philox_blocks(key, (uint64_t)((e0 + bi) / 4), w);
  float best = l[bi] + gumbel_of(w[(e0 + bi) % 4][0]); /* a good first best: the largest logit's */
  float thr = threshold(best);
  /* the blocks with a logit that some noise value could lift to the best: the rest need no noise */
  const int64_t o = e0 % 4, blocks = (o + V + 3) / 4, first = e0 / 4;
  const float cut = thr - GMAX;
  memset(flag, 0, (size_t)(4 * blocks));
  for (int64_t v = 0; v < V; v++) flag[o + v] = l[v] >= cut;
  int64_t n = 0;
  for (int64_t k = 0; k < blocks; k++) {
    uint32_t any;
    memcpy(&any, flag + 4 * k, sizeof any);
    cand[n] = (int32_t)k;
    n += any != 0;
  }
  float lv[4 * LANES];
  uint32_t words[4 * LANES];
  int64_t at[4 * LANES]; /* each slot's v, or -1 */
  for (int64_t i = 0; i < n; i += LANES) {
    u64v ids;
    for (int k = 0; k < LANES; k++) ids[k] = (uint64_t)(first + cand[i + k < n ? i + k : n - 1]);
    philox_lanes(key, ids, w);
    for (int k = 0; k < LANES; k++)
      for (int j = 0; j < 4; j++) {
        const int64_t v = 4 * (int64_t)(ids[k] - (uint64_t)first) + j - o;
        const int ok = i + k < n && v >= 0 && v < V;
        at[4 * k + j] = ok ? v : -1;
        lv[4 * k + j] = ok ? l[v] : -INFINITY;
        words[4 * k + j] = w[j][k];
      }
    if (!any_candidate(lv, words, 0, 0, 4 * LANES, thr)) continue;
    for (int s = 0; s < 4 * LANES; s++) {
      v8u wv = (v8u){0} + words[s];
      if (at[s] < 0 || !(lv[s] + gumbel_bound(wv)[0] >= thr)) continue;
      const float p = lv[s] + gumbel_of(words[s]);
      if (p > best || (p == best && at[s] < bi)) {
        best = p;
        bi = at[s];
        thr = threshold(best);
      }
    }
  }
  return bi;
}

#endif

/* out[b] = argmax_v (logits[b * stride + v] + G(keys[b], step * V + v)) for b < rows, the rows split
 * over `threads` threads (each row alone: any split, the same tokens). */
void gumbel_argmax_f32(const float *logits, int64_t rows, int64_t V, int64_t stride, const uint64_t *keys,
                       int64_t step, int64_t *out, int64_t threads) {
  PARALLEL_RANGE(threads, rows, part, r0, r1, {
    uint8_t *flag = malloc((size_t)V + 8);
    int32_t *cand = malloc(sizeof(int32_t) * (size_t)(V / 4 + 2));
    for (int64_t r = r0; r < r1; r++) out[r] = row_argmax(logits + r * stride, V, keys[r], step * V, flag, cand);
    free(flag);
    free(cand);
  })
}

/* out[b] = argmax_v (logits[b * stride + v] + G(keys[b], starts[b] + v)): each row its own key and
 * its own first element (rollouts whose rows share one draw's key, row r at r * V). */
void gumbel_argmax_at_f32(const float *logits, int64_t rows, int64_t V, int64_t stride, const uint64_t *keys,
                          const int64_t *starts, int64_t *out, int64_t threads) {
  PARALLEL_RANGE(threads, rows, part, r0, r1, {
    uint8_t *flag = malloc((size_t)V + 8);
    int32_t *cand = malloc(sizeof(int32_t) * (size_t)(V / 4 + 2));
    for (int64_t r = r0; r < r1; r++) out[r] = row_argmax(logits + r * stride, V, keys[r], starts[r], flag, cand);
    free(flag);
    free(cand);
  })
}
