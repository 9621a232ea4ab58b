// The batch-lane forward's driver (batch_lane.h): path choice and the split of row blocks over
// threads. The per-ISA loops are in isa_batch_lane.inc.
#include "rnnkit/batch_lane.h"

#include <algorithm>
#include <atomic>

#include "rnnkit/gemm.h"
#include "rnnkit/kernels.h"
#include "rnnkit/tuning.h"
#include "rnnkit/settings.h"
#include "rnnkit/threading.h"

namespace rnnkit {

namespace {
std::atomic<int>& mode_slot() {
  static std::atomic<int> mode{settings().batch_lanes};  // RNNKIT_BATCH_LANES: 0 auto, 1 on, 2 off
  return mode;
}
}  // namespace

template <class T>
bool use_batch_lanes(CellKind cell, index_t batch, index_t steps, index_t units) {
  const int mode = mode_slot().load(std::memory_order_relaxed);
  if (mode != 0) return mode == 1;
  const index_t lanes = kernels<T>().lanes;
  return gates_of(cell) * units <= kBatchLaneMaxColumns && (2 * batch >= lanes || batch * steps <= lanes);
}

int set_batch_lanes(int mode) { return mode_slot().exchange(mode); }

template <class T>
void batch_lane_forward(const BatchLaneForward<T>& a) {
  if (a.batch == 0) return;
  const Kernels<T>& ker = kernels<T>();
  const index_t G = gates_of(a.cell);
  const index_t blocks = (a.batch + ker.lanes - 1) / ker.lanes;
  // Blocks never interact: no barrier, threads once the whole sequence is worth a region.
  const double flops = 2.0 * a.batch * a.steps * G * a.units * (a.input_size + a.units);
  const int nt = batch_lane_threads(flops, blocks);
  const index_t per_thread = batch_lane_scratch(a, ker.lanes);
  Buffer<T> scratch(nt * per_thread);  // per_thread is whole vectors: every slice stays aligned
  parallel(nt, [&](int tid, int n_threads) {
    index_t k0, k1;
    split_range(blocks, 1, tid, n_threads, &k0, &k1);
    const index_t b0 = std::min(a.batch, k0 * ker.lanes), b1 = std::min(a.batch, k1 * ker.lanes);
    if (b1 > b0) ker.batch_lane_rows(a, b0, b1, scratch.data() + tid * per_thread);
  });
}

template bool use_batch_lanes<float>(CellKind, index_t, index_t, index_t);
template bool use_batch_lanes<double>(CellKind, index_t, index_t, index_t);
template void batch_lane_forward<float>(const BatchLaneForward<float>&);
template void batch_lane_forward<double>(const BatchLaneForward<double>&);

}  // namespace rnnkit
