/* Cross-entropy of a linear output layer with its gradients, one pass per block of RB rows (32
 * with AVX-512, 16 with AVX2) (textgan/accel/fused_ce.py holds the chunked torch
 * version; textgan/accel/linear_ce.py calls this). The block's logits are kept transposed, (V, RB): two
 * vectors per vocabulary entry holding the RB rows, so the softmax's max, exp and sum are plain
 * vertical vector operations, the logits never leave L2, and each weight scalar loaded in the
 * products serves two vectors (one-vector blocks were load-bound: 14-17 % slower on AVX-512).
 * Per block:
 *   z = h W^T + b  ->  e = exp(z - max)  ->  log p(target) = z_t - max - log sum e
 *   dz = e * scale / sum - scale * onehot(target)
 *   gh = dz W,  gw += dz^T h,  gb += column sums of dz.
 * Built by textgan/accel/build.py with the machine's C compiler, with OpenMP where it has it (then on
 * torch's own threads: see parallel.h), and called through ctypes. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "parallel.h"
#include "simd.h"

#define RV 2          /* vectors of rows per block */
#define RB (L * RV)   /* rows per block: 32 with AVX-512, 16 with AVX2 (the logits of 16 rows stay in L2) */
#define PAD 16        /* gw's rows and gb are padded to whole 64-byte lines (textgan/accel/linear_ce.py) */
#define PADDED(x) (((x) + PAD - 1) / PAD * PAD)
#ifdef __AVX512F__ /* 32 vector registers */
#define VB_Z 12   /* vocabulary entries per logits block (times RV vectors) */
#define KB_GH 8   /* hidden units per gh block (times RV vectors) */
#define VB_GW 8   /* vocabulary entries per gw block (times two vectors of hidden units) */
#else             /* 16 registers: 12 accumulators, 2 inputs and a broadcast scalar */
#define VB_Z 6
#define KB_GH 6
#define VB_GW 6
#endif

/* z[v] (RB rows, RV vectors) = sum_k w[v, k] * ht[k] + b[v] for NB entries from v0; m[j] gets their maxima. */
#define LOGITS(NB)                                                                               \
  static inline void logits_##NB(const float *w, const float *b, const vf *ht, int64_t h,        \
                                 int64_t v0, vf *z, vf *m) {                                     \
    vf acc[NB][RV];                                                                              \
    UNROLL for (int i = 0; i < NB; i++) UNROLL for (int j = 0; j < RV; j++)                      \
      acc[i][j] = (vf){0} + (b ? b[v0 + i] : 0.0f);                                              \
    const float *wv = w + v0 * h;                                                                \
    for (int64_t k = 0; k < h; k++) {                                                            \
      vf x[RV];                                                                                  \
      UNROLL for (int j = 0; j < RV; j++) x[j] = ht[k * RV + j];                                 \
      UNROLL for (int i = 0; i < NB; i++) {                                                      \
        const float c = wv[i * h + k];                                                           \
        UNROLL for (int j = 0; j < RV; j++) acc[i][j] += c * x[j];                               \
      }                                                                                          \
    }                                                                                            \
    UNROLL for (int i = 0; i < NB; i++) UNROLL for (int j = 0; j < RV; j++) z[(v0 + i) * RV + j] = acc[i][j]; \
    UNROLL for (int j = 0; j < RV; j++) {                                                        \
      UNROLL for (int st = 1; st < NB; st *= 2)                                                  \
        UNROLL for (int i = 0; i + st < NB; i += 2 * st) acc[i][j] = vmax(acc[i][j], acc[i + st][j]); \
      m[j] = vmax(m[j], acc[0][j]);                                                              \
    }                                                                                            \
  }
LOGITS(VB_Z)
LOGITS(1)

/* ght[k] (RB rows) = sum_v w[v, k0 + k] * e[v] for KB hidden units from k0. */
#define GRAD_H(KB)                                                                               \
  static inline void grad_h_##KB(const float *w, const vf *e, int64_t h, int64_t v, int64_t k0,  \
                                 vf *ght) {                                                      \
    vf acc[KB][RV];                                                                              \
    UNROLL for (int i = 0; i < KB; i++) UNROLL for (int j = 0; j < RV; j++) acc[i][j] = (vf){0}; \
    for (int64_t u = 0; u < v; u++) {                                                            \
      vf x[RV];                                                                                  \
      UNROLL for (int j = 0; j < RV; j++) x[j] = e[u * RV + j];                                  \
      const float *wu = w + u * h + k0;                                                          \
      UNROLL for (int i = 0; i < KB; i++) UNROLL for (int j = 0; j < RV; j++) acc[i][j] += wu[i] * x[j]; \
    }                                                                                            \
    UNROLL for (int i = 0; i < KB; i++) UNROLL for (int j = 0; j < RV; j++) ght[(k0 + i) * RV + j] = acc[i][j]; \
  }
GRAD_H(KB_GH)
GRAD_H(1)

/* gw[v0 + i, k0 : k0 + L * NK] += sum_r dz[v0 + i, r] * hs[r, k0 : ...] for NB entries, over the
 * block's RB rows (dz: RB floats per entry). */
#define GRAD_W(NB, NK)                                                                           \
  static inline void grad_w_##NB##_##NK(const float *dz, const float *hs, int64_t hp, int64_t v0, \
                                        int64_t k0, float *gw) {                                 \
    vf acc[NB][NK];                                                                              \
    UNROLL for (int i = 0; i < NB; i++)                                                                 \
      UNROLL for (int c = 0; c < NK; c++) acc[i][c] = (vf){0};                                          \
    for (int r = 0; r < RB; r++) {                                                               \
      vf y[NK];                                                                                  \
      UNROLL for (int c = 0; c < NK; c++) y[c] = *(const vf *)(hs + r * hp + k0 + c * L);               \
      UNROLL for (int i = 0; i < NB; i++) {                                                             \
        const float d = dz[(v0 + i) * RB + r];                                                   \
        UNROLL for (int c = 0; c < NK; c++) acc[i][c] += d * y[c];                                      \
      }                                                                                          \
    }                                                                                            \
    UNROLL for (int i = 0; i < NB; i++)                                                                 \
      UNROLL for (int c = 0; c < NK; c++) {                                                             \
        vf *g = (vf *)(gw + (v0 + i) * hp + k0 + c * L);                                         \
        *g += acc[i][c];                                                                         \
      }                                                                                          \
  }
GRAD_W(VB_GW, 2)
GRAD_W(VB_GW, 1)
GRAD_W(1, 2)
GRAD_W(1, 1)

/* The butterfly's step at half-width h: lane i of the result sums lanes i and i + h of its
 * h-lane group in p (groups of even index) or q (odd), the groups packed in order. */
#define PAIR_LANE(h, i) ((i) / (2 * (h)) * 2 * (h) + (i) % (h) + (i) / (h) % 2 * L)
#define PAIR_LANES8(h, o) PAIR_LANE(h, o), PAIR_LANE(h, o + 1), PAIR_LANE(h, o + 2), PAIR_LANE(h, o + 3), \
  PAIR_LANE(h, o + 4), PAIR_LANE(h, o + 5), PAIR_LANE(h, o + 6), PAIR_LANE(h, o + 7)
static inline vf pair_sum(vf p, vf q, int h) {
#if L == 16
  const vi m = {PAIR_LANES8(h, 0), PAIR_LANES8(h, 8)}; /* written out: a constant mask, not a permute per call */
#else
  const vi m = {PAIR_LANES8(h, 0)};
#endif
  return __builtin_shuffle(p, q, m) + __builtin_shuffle(p, q, m + h);
}

/* i with its log2(L) bits reversed */
static inline int bit_reversed(int i) {
  int r = 0;
  for (int m = 1; m < L; m <<= 1) r = 2 * r + ((i & m) != 0);
  return r;
}

/* lane j = sum over the L lanes of x[j * stride] * y: L horizontal sums in log2(L) butterfly
 * levels (L - 1 adds and 2 (L - 1) two-source shuffles) instead of L separate reductions. Inputs
 * are taken in bit-reversed order, which puts each sum in its own lane. */
static inline vf sum_lanes(const vf *x, int64_t stride, vf y) {
  vf a[L / 2];
  UNROLL for (int i = 0; i < L / 2; i++)
    a[i] = pair_sum(x[bit_reversed(2 * i) * stride] * y, x[bit_reversed(2 * i + 1) * stride] * y, L / 2);
  UNROLL for (int h = L / 4; h >= 1; h /= 2)
    UNROLL for (int i = 0; i < h; i++) a[i] = pair_sum(a[2 * i], a[2 * i + 1], h);
  return a[0];
}

static void grad_w(const float *dz, const float *hs, int64_t hp, int64_t v, float *gw) {
  int64_t v0 = 0;
  for (; v0 + VB_GW <= v; v0 += VB_GW) {
    int64_t k0 = 0;
    for (; k0 + 2 * L <= hp; k0 += 2 * L) grad_w_VB_GW_2(dz, hs, hp, v0, k0, gw);
    if (k0 < hp) grad_w_VB_GW_1(dz, hs, hp, v0, k0, gw);
  }
  for (; v0 < v; v0++) {
    int64_t k0 = 0;
    for (; k0 + 2 * L <= hp; k0 += 2 * L) grad_w_1_2(dz, hs, hp, v0, k0, gw);
    if (k0 < hp) grad_w_1_1(dz, hs, hp, v0, k0, gw);
  }
}

/* What the threads of one call share: each thread's row maxima and exp sums over its columns,
 * the target logits (found by the thread that owns the target), and each thread's part of gh. */
typedef struct {
  vf *m, *s; /* (threads, RV) */
  float *zt; /* (RB) */
  vf *ght;   /* (threads, H, RV) */
} shared_t;

/* One thread's share of the call: all n rows, RB at a time, against vocabulary columns [c0, c1).
 * Two barriers a block: after the softmax statistics, and after the parts of gh. */
static void columns_f32(const float *h, const float *w, const float *b, const int64_t *t, int64_t n,
                        int64_t hd, int64_t c0, int64_t c1, float scale, float *logp, float *gh,
                        float *gw, float *gb, float *work, shared_t sh, int64_t p, int64_t np) {
  const int64_t hp = PADDED(hd), v = c1 - c0;
  vf *z = (vf *)work;               /* (c1 - c0, RV) vectors: logits, then exp */
  vf *ht = z + v * RV;              /* (H, RV): the block's hidden states, transposed */
  float *hs = (float *)(ht + hd * RV); /* (RB, HP): the block's hidden states times inv, padded */
  const float *zf = (const float *)z;
  const float *wc = w + c0 * hd, *bc = b ? b + c0 : 0;
  float *gwc = gw ? gw + c0 * hp : 0, *gbc = gb ? gb + c0 : 0;
  const int backward = gh != 0;
  for (int64_t r0 = 0; r0 < n; r0 += RB) {
    const int cnt = n - r0 < RB ? (int)(n - r0) : RB;
    for (int64_t k = 0; k < hd; k++)
      for (int r = 0; r < RB; r++) ((float *)ht)[k * RB + r] = r < cnt ? h[(r0 + r) * hd + k] : 0.0f;
    vf m[RV];
    UNROLL for (int j = 0; j < RV; j++) m[j] = (vf){0} - INFINITY;
    int64_t u = 0;
    for (; u + VB_Z <= v; u += VB_Z) logits_VB_Z(wc, bc, ht, hd, u, z, m);
    for (; u < v; u++) logits_1(wc, bc, ht, hd, u, z, m);
    for (int r = 0; r < cnt; r++) {
      const int64_t tr = t[r0 + r];
      if (tr >= c0 && tr < c1) sh.zt[r] = zf[(tr - c0) * RB + r];
    }
    vf s[RV];
    UNROLL for (int j = 0; j < RV; j++) s[j] = (vf){0};
    for (u = 0; u < v; u++)
      UNROLL for (int j = 0; j < RV; j++) {
        const vf e = vexp(z[u * RV + j] - m[j]);
        z[u * RV + j] = e;
        s[j] += e;
      }
    UNROLL for (int j = 0; j < RV; j++) sh.m[p * RV + j] = m[j], sh.s[p * RV + j] = s[j];
    BARRIER
    vf mall[RV], sall[RV], inv[RV];
    UNROLL for (int j = 0; j < RV; j++) {
      mall[j] = sh.m[j];
      for (int64_t q = 1; q < np; q++) mall[j] = vmax(mall[j], sh.m[q * RV + j]);
      sall[j] = (vf){0};
      for (int64_t q = 0; q < np; q++) sall[j] += sh.s[q * RV + j] * vexp(sh.m[q * RV + j] - mall[j]);
    }
    if (p == 0)
      for (int r = 0; r < cnt; r++)
        logp[r0 + r] = sh.zt[r] - ((const float *)mall)[r] - logf(((const float *)sall)[r]);
    if (!backward) {
      BARRIER /* sh.zt, sh.m and sh.s are rewritten by the next block */
      continue;
    }
    UNROLL for (int j = 0; j < RV; j++) {
      const vf rescale = vexp(m[j] - mall[j]);
      for (int l = 0; l < L; l++) inv[j][l] = j * L + l < cnt ? scale * rescale[l] / sall[j][l] : 0.0f;
    }
    const float *invf = (const float *)inv;
    for (u = 0; u + L <= v; u += L) {
      vf acc = sum_lanes(z + u * RV, RV, inv[0]);
      UNROLL for (int j = 1; j < RV; j++) acc += sum_lanes(z + u * RV + j, RV, inv[j]);
      *(vf *)(gbc + u) += acc;
    }
    for (; u < v; u++)
      for (int r = 0; r < RB; r++) gbc[u] += zf[u * RB + r] * invf[r];
    vf *ght = sh.ght + p * hd * RV; /* this share's part of gh = dz W */
    int64_t k0 = 0;
    for (; k0 + KB_GH <= hd; k0 += KB_GH) grad_h_KB_GH(wc, z, hd, v, k0, ght);
    for (; k0 < hd; k0++) grad_h_1(wc, z, hd, v, k0, ght);
    for (int64_t k = 0; k < hd; k++) UNROLL for (int j = 0; j < RV; j++) ght[k * RV + j] *= inv[j];
    memset(hs, 0, sizeof(float) * RB * hp); /* gw += e^T (h * inv) */
    for (int r = 0; r < cnt; r++)
      for (int64_t k = 0; k < hd; k++) hs[r * hp + k] = h[(r0 + r) * hd + k] * invf[r];
    grad_w(zf, hs, hp, v, gwc);
    for (int r = 0; r < cnt; r++) { /* the one-hot part of dz, by the target's owner */
      const int64_t tr = t[r0 + r];
      if (tr < c0 || tr >= c1) continue;
      for (int64_t k = 0; k < hd; k++) gw[tr * hp + k] -= scale * h[(r0 + r) * hd + k];
      gb[tr] -= scale;
    }
    BARRIER
    for (int r = (int)p; r < cnt; r += (int)np) { /* gh: the shares' parts in thread order */
      const int64_t row = r0 + r, tr = t[row];
      for (int64_t k = 0; k < hd; k++) {
        float acc = 0.0f;
        for (int64_t q = 0; q < np; q++) acc += ((const float *)(sh.ght + q * hd * RV))[k * RB + r];
        gh[row * hd + k] = acc - scale * w[tr * hd + k];
      }
    }
  }
}

/* Floats of scratch: the shared part (see shared_t), then one work area per thread (see
 * columns_f32), each a whole number of vectors so every slice stays vector-aligned (the scratch is
 * 64-byte aligned). */
static int64_t shared_floats(int64_t hd, int64_t parts) { return (parts * RV * (2 + hd) + RV) * L; }
static int64_t work_floats(int64_t hd, int64_t v) { return (v + hd) * RV * L + RB * PADDED(hd) + L; }

int64_t linear_ce_scratch(int64_t hd, int64_t v, int64_t parts) {
  return shared_floats(hd, parts) + parts * work_floats(hd, v);
}

/* One thread's part: its vocabulary range (whole vectors of columns, so gb's vector stores stay
 * aligned), its gw and gb zeroed, then its columns, with denormals flushed to zero: exp of logits
 * 87-104 below the row's maximum is denormal, and every FMA touching one takes a microcode assist.
 * Such terms are below 1e-38 of the sum. */
static void part_f32(const float *h, const float *w, const float *b, const int64_t *t, int64_t n,
                     int64_t hd, int64_t v, float scale, float *logp, float *gh, float *gw, float *gb,
                     float *work, shared_t sh, int64_t p, int64_t np) {
  const unsigned int csr = denormals_off();
  const int64_t hp = PADDED(hd), groups = (v + L - 1) / L;
  const int64_t c0 = groups * p / np * L, c1e = groups * (p + 1) / np * L, c1 = c1e < v ? c1e : v;
  if (gh) {
    memset(gw + c0 * hp, 0, sizeof(float) * (c1 - c0) * hp);
    memset(gb + c0, 0, sizeof(float) * (c1e - c0));
  }
  columns_f32(h, w, b, t, n, hd, c0, c1, scale, logp, gh, gw, gb, work, sh, p, np);
  denormals_restore(csr);
}

/* h (N, H), w (V, H), b (V) or NULL, t (N) targets; logp (N) out, log p(target). With gh
 * (N, H) also the gradients of scale * sum(-log p): gh, gw (V, HP) and gb (VP) (HP, VP = H, V
 * rounded up to 16; gw's padding columns come out 0). Each thread takes a range of the vocabulary
 * for all rows, so it reads only its part of w and writes only its part of gw and gb (no partial
 * sums to add up, and a per-thread working set half the size). scratch: 64-byte aligned,
 * linear_ce_scratch(H, V, parts) floats for up to `parts` threads. */
void linear_ce_f32(const float *h, const float *w, const float *b, const int64_t *t, int64_t n,
                   int64_t hd, int64_t v, float scale, float *logp, float *gh, float *gw, float *gb,
                   float *scratch, int64_t parts) {
  shared_t sh = {(vf *)scratch, (vf *)scratch + parts * RV, (float *)((vf *)scratch + 2 * parts * RV),
                 (vf *)scratch + 2 * parts * RV + RV};
  float *work0 = scratch + shared_floats(hd, parts);
  PARALLEL(parts, p, np,
           part_f32(h, w, b, t, n, hd, v, scale, logp, gh, gw, gb, work0 + p * work_floats(hd, v), sh, p, np))
}
