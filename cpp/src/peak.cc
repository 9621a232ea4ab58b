// Measures the machine's FMA peak (GFLOP/s) with the active ISA's probe (isa_kernels.inc): the
// denominator of every "% of peak" the benchmark prints.
#include <chrono>

#include "rnnkit/kernels.h"
#include "rnnkit/threading.h"

namespace rnnkit {

double measure_peak_gflops(bool dbl, int threads) {
  double (*probe)(long) = dbl ? kernels<double>().fma_probe : kernels<float>().fma_probe;
  const int per_iter = dbl ? kernels<double>().fma_flops_per_iter : kernels<float>().fma_flops_per_iter;
  const long iters = 20000000;
  volatile double sink = probe(iters / 10);  // warm up (clock ramp)
  const auto t0 = std::chrono::steady_clock::now();
  parallel(threads, [&](int, int) { sink = sink + probe(iters); });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return double(per_iter) * double(iters) * threads / secs * 1e-9;
}

}  // namespace rnnkit
