// Every thread-count decision of the core (the constants are in tuning.h).
#include "rnnkit/tuning.h"

#include <algorithm>

#include "rnnkit/settings.h"
#include "rnnkit/threading.h"

namespace rnnkit {

double parallel_min_flops() { return settings().parallel_min_flops; }

namespace {
int threads_for_panels(int threads, index_t units, int nr) {
  const index_t panels = (units + nr - 1) / nr;
  return static_cast<int>(std::min<index_t>(threads, std::max<index_t>(1, panels)));
}
}  // namespace

int recurrent_threads(double step_flops, index_t units, int nr) {
  if (step_flops < parallel_min_flops()) return 1;
  return threads_for_panels(get_num_threads(), units, nr);
}

Partition partition(index_t batch, index_t steps, index_t units, index_t gates, std::size_t elem_size,
                    double step_flops, int nr) {
  const int all = get_num_threads();
  if (all == 1) return Partition{1, false};
  const int forced = settings().recurrent_split;  // RNNKIT_RECURRENT_SPLIT: 0 auto, 1 batch, 2 units
  const double weight_bytes = double(units) * double(gates * units) * double(elem_size);
  const bool batch_worth = double(steps) * step_flops >= kWholeSequenceFactor * parallel_min_flops() &&
                           weight_bytes <= kBatchSplitMaxWeightBytes &&
                           batch >= kBatchSplitMinRowsPerThread * all;
  if (forced == 1 ? batch >= 2 && step_flops > 0 : forced == 0 && batch_worth)
    return Partition{static_cast<int>(std::min<index_t>(all, batch)), true};
  return Partition{recurrent_threads(step_flops, units, nr), false};
}

Partition gemv_partition(double step_bytes, index_t units, int nr) {
  const int all = get_num_threads();
  if (all == 1 || step_bytes < kGemvParallelMinBytes) return Partition{1, false};
  return Partition{threads_for_panels(all, units, nr), false};
}

int gemm_threads(double flops, int requested) { return flops < kGemmParallelMinFlops ? 1 : requested; }

int batch_lane_threads(double sequence_flops, index_t blocks) {
  if (sequence_flops < kWholeSequenceFactor * parallel_min_flops()) return 1;
  return static_cast<int>(std::min<index_t>(get_num_threads(), blocks));
}

}  // namespace rnnkit
