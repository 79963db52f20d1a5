/* Denormal floats flushed to zero (FTZ and DAZ in MXCSR) on every OpenMP thread torch runs on:
 * the setting is per thread, torch.set_flush_denormal reaches only the calling one, and threads
 * inherit it only when created after it. Built by textgan/accel/build.py; textgan/accel/fpenv.py calls it.
 * Elsewhere than x86 it changes nothing. */
#include <stdint.h>

#include "parallel.h"
#include "simd.h"

/* Flushing set (on != 0) or cleared on up to `threads` threads (those of torch's OpenMP team,
 * which later parallel regions of that size reuse); returns how many threads ran. */
int64_t set_flush_denormals(int64_t on, int64_t threads) {
  int64_t reached = 0;
  PARALLEL(threads, part, parts, {
    denormals_flush((int)on);
    if (part == 0) reached = parts;
  })
  return reached;
}
