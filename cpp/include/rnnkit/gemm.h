// BLIS-style packed GEMM: C (M x N) = [C +] A (M x K) · B (K x N).
//
// Operands are MatView's, so transposes, strides, negative strides (reversed time) and two-level
// "(b, t) rows" axes are all just views. A and B are copied into the micro-kernel's panel layout
// (packing); C's columns must be contiguous. Results do not depend on the thread count: every
// element of C is summed over k in the same order whatever the split.
#pragma once

#include "rnnkit/common.h"
#include "rnnkit/kernels.h"
#include "rnnkit/tuning.h"

namespace rnnkit {

// Blocking<T> (cache blocking) and kGemvMaxRows: tuning.h.

// B (K x N) packed once for many products, e.g. a recurrent kernel reused at every time step.
// The N columns are `groups` groups of `group_n` columns (the gates of a cell: i|f|c|o); every group
// starts on a panel boundary so a thread can own the same units of every gate.
// Layout: [k block kb][group g][panel q][k in block][nr].
template <class T>
struct PackedB {
  Buffer<T> buf;
  index_t k = 0, group_n = 0, groups = 1, nr = 0, kc = 0, panels = 0;  // panels per group

  index_t num_kblocks() const { return k == 0 ? 0 : (k + kc - 1) / kc; }
  index_t kblock_len(index_t kb) const { return kb * kc + kc <= k ? kc : k - kb * kc; }
  const T* panel(index_t kb, index_t g, index_t q) const {
    return buf.data() + kb * kc * groups * panels * nr + (g * panels + q) * kblock_len(kb) * nr;
  }
};

// Packs B (K x groups*group_n). Threads tid of nt each pack their share (call from every thread of
// a team, then barrier) or call with (0, 1). `prepare` must be called first (single thread).
template <class T>
void packed_b_prepare(PackedB<T>& pb, index_t k, index_t group_n, index_t groups);
template <class T>
void packed_b_fill(PackedB<T>& pb, const MatView<const T>& b, int tid, int nt);

// C[:, g*group_n + cols of panels q0..q1) (+)= A · B for every group g: one thread's share of a
// product with B packed (A is packed here, block by block). `a_work` holds at least
// packed_a_size<T>() elements. Naming: gemm_packed (B packed), gemm_packed_ab (A and B packed),
// gemv_packed (B packed, few rows of A read in place).
// Gate groups [g0, g1) only (g1 < 0: to the last), e.g. a GRU's z and r blocks without its h block.
// A of at most kGemvMaxRows rows with contiguous columns goes to gemv_packed (see below).
template <class T>
void gemm_packed(const MatView<const T>& a, const PackedB<T>& b, index_t q0, index_t q1,
                 const MatView<T>& c, bool accumulate, T* a_work, index_t g0 = 0, index_t g1 = -1);
template <class T>
index_t packed_a_size();
// The calling thread's packed-A workspace (packed_a_size<T>() elements, allocated once per thread).
template <class T>
T* packed_a_workspace();

// A (M x K) in the micro-kernel's panel layout for K blocks of `kc` (the kc of the PackedB it will
// meet), so a recurrence can pack each new state once, column slice by column slice, as the
// threads produce it, instead of every thread repacking the whole state before every step.
template <class T>
struct PackedA {
  Buffer<T> buf;
  index_t m = 0, k = 0, m_pad = 0, mr = 0, kc = 0;
  T* block(index_t kb) const { return buf.data() + kb * kc * m_pad; }
};
// mr: the micro-tile height it will be used with (Kernels::mr or Kernels::mr_small).
template <class T>
void packed_a_prepare(PackedA<T>& pa, index_t m, index_t k, index_t kc, int mr);
// The tile height that pads m rows least (mr_small when it saves rows, counting its tiles as
// slightly less efficient).
template <class T>
int best_tile_rows(index_t m);
// Packs columns [k0, k1) of A (pa.m x pa.k) into pa (other columns untouched).
template <class T>
void packed_a_fill_columns(PackedA<T>& pa, const MatView<const T>& a, index_t k0, index_t k1);
// Like gemm_packed, with A already packed too.
template <class T>
void gemm_packed_ab(const PackedA<T>& a, const PackedB<T>& b, index_t q0, index_t q1,
                    const MatView<T>& c, bool accumulate, index_t g0 = 0, index_t g1 = -1);

// Like gemm_packed for A of at most kGemvMaxRows rows with contiguous columns (a.cols plain,
// stride 1): matrix-vector products streaming each panel of B once, no A packing (the batch-1 and
// small-batch steps of a recurrence, which are bound by reading B).
template <class T>
void gemv_packed(const MatView<const T>& a, const PackedB<T>& b, index_t q0, index_t q1,
                 const MatView<T>& c, bool accumulate, index_t g0 = 0, index_t g1 = -1);
// Whether gemv_packed takes A: few rows, contiguous columns.
template <class T>
bool gemv_fits(const MatView<const T>& a) {
  return a.nrows() <= kGemvMaxRows && a.cols.is_plain() && a.cols.stride == 1;
}

// Splits [0, n) into nt contiguous ranges of whole units (units of `unit` elements); thread tid's.
void split_range(index_t n, index_t unit, int tid, int nt, index_t* begin, index_t* end);

// General C (+)= A · B, parallel on up to `nt` threads (opens its own parallel region).
template <class T>
void gemm(const MatView<const T>& a, const MatView<const T>& b, const MatView<T>& c, bool accumulate,
          int nt);
// One thread's share of gemm() when already inside a team (no barrier inside).
template <class T>
void gemm_team(const MatView<const T>& a, const MatView<const T>& b, const MatView<T>& c,
               bool accumulate, int tid, int nt);

// One product of a group summed over a long shared K (the T·B rows of the weight gradients):
// C (M x N) = A (M x K) · B (K x N).
template <class T>
struct GemmJob {
  MatView<const T> a;
  MatView<const T> b;
  MatView<T> c;
  bool same_b;  // b is the previous job's b: packed once for both (dK and dR of SimpleRNN, LSTM)
  T* col_sums = nullptr;  // (N) out, when not null: B's column sums over K (a bias gradient)
};
// Computes every job of the group. K is cut into gemm_sum_k_parts(K) ranges of whole kc blocks,
// fixed by the shape and not by the thread count; the threads split the ranges (then columns),
// each B k-block is packed once, and the range sums are added in range order, so the result is
// the same for every thread count. For M, N << K, where splitting M or N would have every thread
// pack all of B.
template <class T>
index_t gemm_sum_k_parts(index_t k);
template <class T>
void gemm_sum_k(const GemmJob<T>* jobs, int n_jobs, int nt);

// The naive triple loop (the twin every optimised path is tested against).
template <class T>
void gemm_naive(const MatView<const T>& a, const MatView<const T>& b, const MatView<T>& c,
                bool accumulate);

}  // namespace rnnkit
