#include "rnnkit/threading.h"

#include <stdexcept>
#include <string>
#include <thread>

#if defined(RNNKIT_HAVE_OMP_PAUSE) && defined(__unix__)
#include <pthread.h>
#endif

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

#if defined(RNNKIT_HAVE_OMP_PAUSE) && defined(__unix__)
// Fork safety. GNU libgomp keeps a pool of worker threads per thread that opened a parallel region
// (in that thread's TLS). fork() copies only the calling thread, so a child would find its pool
// bookkeeping intact, wake workers that do not exist and wait for them forever at the next
// region; calling omp_pause_resource_all in the child hangs the same way (it waits for those
// workers to exit). So the pool is released *before* fork, in the forking thread, while its
// workers still exist: omp_pause_resource_all (GCC 12: the calling thread's pool only, its
// workers joined; -1, doing nothing, inside a parallel region; no device code runs) leaves the
// forking thread without a pool, and the child creates a fresh one on its first multi-threaded
// call and uses as many threads as the parent's setting. The kernels' call path is untouched; the
// cost falls on fork() (the pool's workers are joined) and on the parent's next multi-threaded
// call (the workers are created again, as on the first call). Other threads' pools do not reach
// the child and stay as they are. LLVM's libomp re-initialises in the child by itself; for it the
// pause is only a soft pause (threads sleep until the next region).
void release_pool_before_fork() { omp_pause_resource_all(omp_pause_soft); }
const int g_fork_handler = pthread_atfork(release_pool_before_fork, nullptr, nullptr);
#endif
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
