// Thread-count decisions for the recurrences (serial threshold, batch vs units split).
#include "rnnkit/recurrent.h"
#include "rnnkit/sequence.h"

#include <algorithm>

#include "rnnkit/settings.h"
#include "rnnkit/threading.h"

namespace rnnkit {

double parallel_min_flops() { return settings().parallel_min_flops; }

int recurrent_threads(double step_flops, index_t units, int nr) {
  int nt = get_num_threads();
  if (step_flops < parallel_min_flops()) return 1;
  const index_t panels = (units + nr - 1) / nr;
  if (panels < nt) nt = static_cast<int>(panels > 0 ? panels : 1);
  return nt;
}

Partition partition(index_t batch, index_t steps, index_t units, index_t gates, std::size_t elem_size,
                    double step_flops, int nr) {
  const int all = get_num_threads();
  if (all == 1) return Partition{1, false};
  const int forced = settings().recurrent_split;  // RNNKIT_RECURRENT_SPLIT: 0 auto, 1 batch, 2 units
  // A batch split has no barrier in the time loop: it pays off once the whole sequence is worth a
  // parallel region (20x the per-step threshold: tens of µs of GEMM), while every thread streams
  // all of recurrent_kernel each step (so while that stays near L2 size) and gets >= 16 rows.
  const double weight_bytes = double(units) * double(gates * units) * double(elem_size);
  const bool batch_worth = double(steps) * step_flops >= 20.0 * parallel_min_flops() &&
                           weight_bytes <= 2.0 * 1024 * 1024 && batch >= 16 * all;
  if (forced == 1 ? batch >= 2 && step_flops > 0 : forced == 0 && batch_worth)
    return Partition{static_cast<int>(std::min<index_t>(all, batch)), true};
  return Partition{recurrent_threads(step_flops, units, nr), false};
}

}  // namespace rnnkit

namespace rnnkit {

// A matrix-vector step reads its weights from L2 at tens of bytes per cycle: 256 KiB is ~5 µs on
// one core, against ~1 µs for the barrier a split by units adds per step.
Partition gemv_partition(double step_bytes, index_t units, int nr) {
  constexpr double kGemvParallelMinBytes = 256.0 * 1024;
  const int all = get_num_threads();
  if (all == 1 || step_bytes < kGemvParallelMinBytes) return Partition{1, false};
  const index_t panels = (units + nr - 1) / nr;
  return Partition{static_cast<int>(std::min<index_t>(all, std::max<index_t>(1, panels))), false};
}

}  // namespace rnnkit
