/* The elementwise part of a highway layer (textgan/models/highway_native.py calls this; the torch
 * formula is there too): from p = [h, g] = x W^T + b, each row
 *   y = x + s * (relu(h) - x),  s = sigmoid(g),
 * and going back, from dy,
 *   dh = dy * s * [h > 0],  dg = dy * (relu(h) - x) * s * (1 - s),  dx = dy * (1 - s)
 * (dx only the direct path; the product's is torch's). One pass each way, where torch's ops make
 * five to eight over (N, D) arrays of tens of MB (RelGAN's discriminator: 8,192 rows of 1,200).
 * Rows are split over torch's OpenMP threads; a row's tail past its last whole vector is scalar. */
#include <math.h>
#include <stdint.h>

#include "parallel.h"
#include "simd.h"

static inline float sigmoid1(float x) {
  const float e = expf(-fabsf(x));
  return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

/* p (N, 2D) rows [h, g], x (N, D) -> y (N, D). */
void highway_forward_f32(const float *p, const float *x, int64_t n, int64_t d, float *y, int64_t threads) {
  PARALLEL_RANGE(threads, n, part, lo, hi, {
    const unsigned int csr = denormals_off();
    for (int64_t r = lo; r < hi; r++) {
      const float *h = p + r * 2 * d, *g = h + d, *xr = x + r * d;
      float *yr = y + r * d;
      int64_t j = 0;
      for (; j + L <= d; j += L) {
        const vf xv = LD(xr + j);
        ST(yr + j, xv + vsigmoid(LD(g + j)) * (vmax((vf){0}, LD(h + j)) - xv));
      }
      for (; j < d; j++) yr[j] = xr[j] + sigmoid1(g[j]) * ((h[j] > 0.0f ? h[j] : h[j] != h[j] ? h[j] : 0.0f) - xr[j]);
    }
    denormals_restore(csr);
  })
}

/* dy, p, x as above -> dp (N, 2D) rows [dh, dg], dx (N, D). */
void highway_backward_f32(const float *dy, const float *p, const float *x, int64_t n, int64_t d, float *dp,
                          float *dx, int64_t threads) {
  PARALLEL_RANGE(threads, n, part, lo, hi, {
    const unsigned int csr = denormals_off();
    for (int64_t r = lo; r < hi; r++) {
      const float *h = p + r * 2 * d, *g = h + d, *xr = x + r * d, *dyr = dy + r * d;
      float *dh = dp + r * 2 * d, *dg = dh + d, *dxr = dx + r * d;
      int64_t j = 0;
      for (; j + L <= d; j += L) {
        const vf hv = LD(h + j), s = vsigmoid(LD(g + j)), gy = LD(dyr + j), gs = gy * s;
        ST(dh + j, vselect(hv <= 0.0f, (vf){0}, gs)); /* as torch's relu backward: 0 where h <= 0 */
        ST(dg + j, gs * (1.0f - s) * (vmax((vf){0}, hv) - LD(xr + j)));
        ST(dxr + j, gy - gs);
      }
      for (; j < d; j++) {
        const float s = sigmoid1(g[j]), gs = dyr[j] * s, relu = h[j] > 0.0f ? h[j] : h[j] != h[j] ? h[j] : 0.0f;
        dh[j] = h[j] <= 0.0f ? 0.0f : gs;
        dg[j] = gs * (1.0f - s) * (relu - xr[j]);
        dxr[j] = dyr[j] - gs;
      }
    }
    denormals_restore(csr);
  })
}
