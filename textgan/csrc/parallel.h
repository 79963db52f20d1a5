/* A kernel's range split over threads. Built with OpenMP (textgan/native.py asks for it), the
 * threads are those of the OpenMP runtime torch has loaded (the same libgomp, by soname), so a
 * kernel runs on torch's own threads: Python threads beside them lost much of their speed to
 * torch's threads spinning after each op. Without OpenMP the range runs on the calling thread.
 *
 * PARALLEL_RANGE(threads, n, part, lo, hi, ...) runs the statements `...` on up to `threads`
 * threads, each with its index `part` and its piece [lo, hi) of [0, n): contiguous, in order,
 * and depending only on n and the thread count, so per-part sums come out the same every time. */
#ifndef TEXTGAN_PARALLEL_H
#define TEXTGAN_PARALLEL_H
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#define PARALLEL_RANGE(threads, n, part, lo, hi, ...)                                            \
  _Pragma("omp parallel num_threads((int)(threads))") {                                          \
    const int64_t part = omp_get_thread_num(), parts_ = omp_get_num_threads();                  \
    const int64_t lo = (n) * part / parts_, hi = (n) * (part + 1) / parts_;                      \
    (void)part;                                                                                  \
    __VA_ARGS__;                                                                                 \
  }
#else
#define PARALLEL_RANGE(threads, n, part, lo, hi, ...)                                            \
  {                                                                                              \
    const int64_t part = 0, lo = 0, hi = (n);                                                    \
    (void)(threads), (void)part;                                                                 \
    __VA_ARGS__;                                                                                 \
  }
#endif
#endif
