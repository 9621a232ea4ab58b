// Every tuning constant of the core and every thread-count decision built on them, in one place.
// The constants were tuned on the development machines (docs/PERFORMANCE.md §6: the techniques);
// RNNKIT_PARALLEL_MIN_FLOPS and RNNKIT_RECURRENT_SPLIT override the two that matter most per machine.
#pragma once

#include <cstddef>

#include "rnnkit/common.h"

namespace rnnkit {

// ---- cache blocking of the packed GEMM (elements). The micro-kernel broadcasts A and streams B as
// vectors, so the roles of BLIS's A and B swap: an A micro-panel (kc x mr) stays in L1 while the B
// block (kc x nc) it meets stays in L2, and the A block (mc x kc) is the large, L3-sized one.
//   kc: depth of one packed block;  nc: columns of B per L2 block;  mc: rows of A packed at once.
template <class T> struct Blocking;
template <> struct Blocking<float> { static constexpr index_t kc = 384, nc = 256, mc = 1536; };
template <> struct Blocking<double> { static constexpr index_t kc = 256, nc = 192, mc = 1536; };

// ---- path choices
// Rows up to which a product against packed weights runs as matrix-vector products (Kernels::gemv)
// instead of packed-A micro-tiles: a step of batch <= 4 is bound by reading the weights.
constexpr index_t kGemvMaxRows = 4;
// Columns (G·H) up to which the batch-lane path (batch_lane.h) can hold a cell's gates in vectors.
constexpr index_t kBatchLaneMaxColumns = 32;

// ---- thread counts
// Per-step work (FLOPs) below which a recurrence runs serially: a barrier per step costs ~1 µs with
// hot threads, and the second core only pays off once a step is several µs of GEMM. The default of
// RNNKIT_PARALLEL_MIN_FLOPS (settings.h).
constexpr double kParallelMinFlopsDefault = 1.0e6;
// A region without barriers (batch split, batch lanes) pays off once the whole sequence is worth
// this many per-step thresholds (tens of µs of GEMM).
constexpr double kWholeSequenceFactor = 20.0;
// A batch split makes every thread stream all of recurrent_kernel each step: chosen while that is
// at most this many bytes (near L2 size) and every thread gets at least this many rows.
constexpr double kBatchSplitMaxWeightBytes = 2.0 * 1024 * 1024;
constexpr index_t kBatchSplitMinRowsPerThread = 16;
// A matrix-vector step reads its weights from L2 at tens of bytes per cycle: 256 KiB is ~5 µs on
// one core, against ~1 µs for the barrier a split by units adds per step.
constexpr double kGemvParallelMinBytes = 256.0 * 1024;
// A single (non-recurrent) GEMM below ~0.1 ms of work runs on one thread: the region costs more.
constexpr double kGemmParallelMinFlops = 2.0e5;

// RNNKIT_PARALLEL_MIN_FLOPS (default kParallelMinFlopsDefault).
double parallel_min_flops();

// Threads used for a recurrence whose per-step GEMM work (forward: layer + iteration GEMM,
// 2·B·G·H·(I+H); backward: 2·B·G·H·H) is `step_flops`: serial below parallel_min_flops(), else
// every thread, at most one per nr-column panel of the units.
int recurrent_threads(double step_flops, index_t units, int nr);

// How a recurrence is spread over threads. Batch rows never interact, so the cheapest split gives
// each thread a slice of the batch: no barrier at all inside the time loop, at the price of every
// thread streaming all of recurrent_kernel each step (chosen while that is near L2 size).
// Otherwise threads own the same units of every gate and one barrier per step publishes h_t.
// RNNKIT_RECURRENT_SPLIT=batch|units forces one (tests, tuning).
struct Partition {
  int threads = 1;
  bool by_batch = false;
};
Partition partition(index_t batch, index_t steps, index_t units, index_t gates, std::size_t elem_size,
                    double step_flops, int nr);
// The split for steps of at most kGemvMaxRows rows (matrix-vector products bound by reading
// `step_bytes` of packed weights per step): by units, on every thread once a step reads at least
// kGemvParallelMinBytes, else serial.
Partition gemv_partition(double step_bytes, index_t units, int nr);

// Threads for one GEMM of `flops` work that may use up to `requested` threads.
int gemm_threads(double flops, int requested);

// Threads for the batch-lane path over `blocks` independent blocks of rows, the whole sequence
// being `sequence_flops` of work (no barriers: the whole-sequence rule of the batch split).
int batch_lane_threads(double sequence_flops, index_t blocks);

}  // namespace rnnkit
