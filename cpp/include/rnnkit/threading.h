// Thread count used by every parallel region of the core (OpenMP when available, else serial).
#pragma once

namespace rnnkit {

int get_num_threads();         // current setting (default: number of cores)
void set_num_threads(int n);   // 1 <= n <= max_threads(); throws std::invalid_argument otherwise
int max_threads();             // 4 x the number of cores
bool have_openmp();

// Runs fn(tid, nt) on nt threads inside one parallel region (nt == 1: inline, no OpenMP at all).
// fn may call barrier(); every thread must reach the same number of barriers.
template <class Fn>
void parallel(int nt, Fn&& fn);
void barrier();

}  // namespace rnnkit

#ifdef _OPENMP
#include <omp.h>
#endif

namespace rnnkit {

template <class Fn>
void parallel(int nt, Fn&& fn) {
#ifdef _OPENMP
  if (nt > 1) {
#pragma omp parallel num_threads(nt)
    { fn(omp_get_thread_num(), omp_get_num_threads()); }
    return;
  }
#endif
  fn(0, 1);
}

inline void barrier() {
#ifdef _OPENMP
  if (omp_in_parallel()) {
#pragma omp barrier
  }
#endif
}

}  // namespace rnnkit
