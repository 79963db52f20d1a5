/* The elementwise part of a highway layer (textgan/accel/highway.py calls this; the torch
 * formula is there too): from p = x W^T and the bias b, [h, g] = p + b, each row
 *   y = x + s * (relu(h) - x),  s = sigmoid(g),
 * and going back, from dy,
 *   dh = dy * s * [h > 0],  dg = dy * (relu(h) - x) * s * (1 - s),  dx = dy * (1 - s)
 * (dx only the direct path; the product's is torch's). shared != 0: one product is both, g = h
 * (p and b of width D, not 2D; TextGAN-PyTorch's RelGAN discriminator), and dp = dh + dg.
 * m, where not NULL, is the dropout mask that follows the layer (N, D): y is written times m and
 * dy read times m, saving the two passes of a separate multiply over the (N, D) arrays. One pass each way, where torch's ops make
 * five to eight over (N, D) arrays of tens of MB (RelGAN's discriminator: 8,192 rows of 1,200),
 * plus one more where the product broadcasts the bias into its output first.
 * Rows are split over torch's OpenMP threads; a row's tail past its last whole vector is scalar. */
#include <math.h>
#include <stdint.h>

#include "parallel.h"
#include "simd.h"

static inline float relu1(float x) { return x > 0.0f || x != x ? x : 0.0f; } /* NaN stays NaN */

static inline float sigmoid1(float x) {
  const float e = expf(-fabsf(x));
  return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

/* p (N, 2D), b (2D), x (N, D), m (N, D) or NULL -> y (N, D); shared: p (N, D), b (D). */
void highway_forward_f32(const float *p, const float *b, const float *x, const float *m, int64_t n, int64_t d,
                         float *y, int64_t shared, int64_t threads) {
  const int64_t width = shared ? d : 2 * d, goff = shared ? 0 : d;
  PARALLEL_RANGE(threads, n, part, lo, hi, {
    const unsigned int csr = denormals_off();
    for (int64_t r = lo; r < hi; r++) {
      const float *ph = p + r * width, *pg = ph + goff, *bg = b + goff, *xr = x + r * d, *mr = m ? m + r * d : 0;
      float *yr = y + r * d;
      int64_t j = 0;
      for (; j + L <= d; j += L) {
        const vf xv = LD(xr + j), h = LD(ph + j) + LD(b + j), g = LD(pg + j) + LD(bg + j);
        const vf yv = xv + vsigmoid(g) * (vmax((vf){0}, h) - xv);
        ST(yr + j, mr ? yv * LD(mr + j) : yv);
      }
      for (; j < d; j++) {
        const float h = ph[j] + b[j], g = pg[j] + bg[j];
        const float yv = xr[j] + sigmoid1(g) * (relu1(h) - xr[j]);
        yr[j] = mr ? yv * mr[j] : yv;
      }
    }
    denormals_restore(csr);
  })
}

/* dy, p, b, x, m as above -> dp (N, 2D) rows [dh, dg], dx (N, D); shared: dp (N, D) = dh + dg. */
void highway_backward_f32(const float *dy, const float *p, const float *b, const float *x, const float *m,
                          int64_t n, int64_t d, float *dp, float *dx, int64_t shared, int64_t threads) {
  const int64_t width = shared ? d : 2 * d, goff = shared ? 0 : d;
  PARALLEL_RANGE(threads, n, part, lo, hi, {
    const unsigned int csr = denormals_off();
    for (int64_t r = lo; r < hi; r++) {
      const float *ph = p + r * width, *pg = ph + goff, *bg = b + goff, *xr = x + r * d, *dyr = dy + r * d;
      const float *mr = m ? m + r * d : 0;
      float *dh = dp + r * width, *dg = dh + d, *dxr = dx + r * d;
      int64_t j = 0;
      for (; j + L <= d; j += L) {
        const vf hv = LD(ph + j) + LD(b + j), s = vsigmoid(LD(pg + j) + LD(bg + j));
        const vf gy = mr ? LD(dyr + j) * LD(mr + j) : LD(dyr + j), gs = gy * s;
        const vf vh = vselect(hv <= 0.0f, (vf){0}, gs); /* as torch's relu backward: 0 where h <= 0 */
        const vf vg = gs * (1.0f - s) * (vmax((vf){0}, hv) - LD(xr + j));
        if (shared) {
          ST(dh + j, vh + vg);
        } else {
          ST(dh + j, vh);
          ST(dg + j, vg);
        }
        ST(dxr + j, gy - gs);
      }
      for (; j < d; j++) {
        const float h = ph[j] + b[j], s = sigmoid1(pg[j] + bg[j]), gy = mr ? dyr[j] * mr[j] : dyr[j], gs = gy * s;
        const float sh = h <= 0.0f ? 0.0f : gs, sg = gs * (1.0f - s) * (relu1(h) - xr[j]);
        if (shared) {
          dh[j] = sh + sg;
        } else {
          dh[j] = sh;
          dg[j] = sg;
        }
        dxr[j] = gy - gs;
      }
    }
    denormals_restore(csr);
  })
}
