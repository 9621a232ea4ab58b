#include "rnnkit/threading.h"

#include <stdexcept>
#include <string>
#include <thread>

namespace rnnkit {
namespace {
int default_threads() {
#ifdef _OPENMP
  return omp_get_num_procs() > 0 ? omp_get_num_procs() : 1;
#else
  return 1;
#endif
}
int g_threads = 0;
}  // namespace

int get_num_threads() {
  if (g_threads <= 0) g_threads = default_threads();
  return g_threads;
}

int max_threads() {
  // More threads than cores only adds barrier stalls to the per-step loops; far more would make
  // the OpenMP runtime abort when it cannot create them.
  return 4 * default_threads();
}

void set_num_threads(int n) {
  if (n < 1 || n > max_threads())
    throw std::invalid_argument("n (number of threads) must be between 1 and " +
                                std::to_string(max_threads()) + ", got " + std::to_string(n));
  g_threads = n;
}

bool have_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace rnnkit
