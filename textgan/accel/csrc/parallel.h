/* Kernels on threads: PARALLEL, BARRIER and PARALLEL_RANGE below. Built with OpenMP (textgan/accel/build.py asks for it), the
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
/* PARALLEL(threads, part, parts, ...): the statements on up to `threads` threads, each with its
 * index `part` and the count `parts` that actually run. */
#define PARALLEL(threads, part, parts, ...)                                                      \
  {                                                                                              \
    const int parallel_threads_ = (int)(threads); /* a pragma cannot name a macro argument */    \
    _Pragma("omp parallel num_threads(parallel_threads_)") {                                     \
      const int64_t part = omp_get_thread_num(), parts = omp_get_num_threads();                 \
      (void)part, (void)parts;                                                                   \
      __VA_ARGS__;                                                                               \
    }                                                                                            \
  }
#define BARRIER _Pragma("omp barrier") /* inside PARALLEL: every thread has got here */
#else
#define PARALLEL(threads, part, parts, ...)                                                      \
  {                                                                                              \
    const int64_t part = 0, parts = 1;                                                           \
    (void)(threads), (void)part, (void)parts;                                                    \
    __VA_ARGS__;                                                                                 \
  }
#define BARRIER
#endif
#define PARALLEL_RANGE(threads, n, part, lo, hi, ...)                                            \
  PARALLEL(threads, part, parts_, const int64_t lo = (n) * part / parts_,                        \
           hi = (n) * (part + 1) / parts_; __VA_ARGS__)
#endif
