#include "rnnkit/sequence.h"

#include <cstdlib>

#include "rnnkit/threading.h"

namespace rnnkit {

namespace {
// Per-step work below which a recurrence runs serially: a barrier per step costs ~1 µs with hot
// threads, and the second core only pays off once a step is several µs of GEMM.
// RNNKIT_PARALLEL_MIN_FLOPS overrides it (for tuning on other machines).
double parallel_min_flops() {
  static const double v = [] {
    const char* env = std::getenv("RNNKIT_PARALLEL_MIN_FLOPS");
    char* end = nullptr;
    const double parsed = env && *env ? std::strtod(env, &end) : -1.0;
    return (end && *end == '\0' && parsed >= 0) ? parsed : 1.0e6;  // malformed: the default
  }();
  return v;
}
}  // namespace

int recurrent_threads(double step_flops, index_t units, int nr) {
  int nt = get_num_threads();
  if (step_flops < parallel_min_flops()) return 1;
  const index_t panels = (units + nr - 1) / nr;
  if (panels < nt) nt = static_cast<int>(panels > 0 ? panels : 1);
  return nt;
}

}  // namespace rnnkit
