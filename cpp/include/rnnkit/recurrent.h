// The machinery every cell runs on (oneDNN's vocabulary: layer GEMM, iteration GEMM, post-GEMM).
// A thread owns a Slice for the whole sequence: either some batch rows with every unit (no
// barrier in the time loop: rows never interact) or every row with some units of every gate
// (one barrier per step publishes h_t); `partition` picks (see Partition).
//
// Forward (run_forward):
//   1. pack kernel (I, G·H) and recurrent_kernel (H, G·H) once
//   2. layer GEMM: pre = x @ kernel for a chunk of steps, one GEMM over (steps·rows) rows
//   3. iteration GEMM per step: pre_t (+)= h_{t-1} @ recurrent_kernel on this thread's slice, with
//      h_{t-1} already packed by the thread(s) that produced it
//   4. post-GEMM: the cell's element-wise step on the slice (bias, activations, state update), then
//      this thread packs its part of h_t
//   5. units split only: one barrier per step.
// Backward (run_backward), reverse time:
//   1. the cell's element-wise backward gives the gate gradients dG_t on this thread's slice
//   2. dh_{t-1} = dG_t @ recurrent_kernel^T on the slice, then the cell adds its pass-through terms;
//      dx_t = dG_t @ kernel^T from the same packed dG_t (InputSide; GRU packs its dGx_t too)
//   3. units split only: one barrier per step. After the loop weight_gradients() computes
//      d_kernel, d_recurrent_kernel and the bias gradients as one gemm_sum_k group over all T·B rows.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "rnnkit/gemm.h"
#include "rnnkit/sequence.h"
#include "rnnkit/tuning.h"
#include "rnnkit/threading.h"
#include "rnnkit/weight_pack.h"

namespace rnnkit {

struct SeqShape {
  index_t B, T, I, H;  // batch, steps, input features, units
  int G;               // gates per cell
  index_t gh() const { return G * H; }
};

// Partition, partition(), gemv_partition(): tuning.h.

// The rows [b0, b1) and units [c0, c1) (panels [q0, q1) of every gate block) one thread handles.
struct Slice {
  index_t b0, b1, c0, c1, q0, q1;
  index_t rows() const { return b1 - b0; }
};

template <class T>
Slice thread_slice(const Partition& part, const PackedB<T>& packed, index_t B, index_t H, int tid, int nt) {
  Slice sl{0, B, 0, H, 0, packed.panels};
  if (part.by_batch) {
    split_range(B, 1, tid, nt, &sl.b0, &sl.b1);
  } else {
    split_range(packed.panels, 1, tid, nt, &sl.q0, &sl.q1);
    sl.c0 = std::min(H, sl.q0 * packed.nr);
    sl.c1 = std::min(H, sl.q1 * packed.nr);
  }
  return sl;
}

// A second GEMM phase inside every step (GRU reset_after=False, whose candidate multiplies
// r ⊙ h_{t-1}, known only once r is): the iteration GEMM then covers gate groups [0, split) only;
// finish(p, pre_t, slice) completes those gates on the slice and writes the phase's input on it,
// input(p) (B, H); after a barrier (units split) input(p) @ recurrent_kernel over groups [split, G)
// lands in the separate (B, G·H) buffer handed to step. No second phase: NoMidPhase.
struct NoMidPhase {
  static constexpr bool active = false;
  index_t split = -1;
  float* input(index_t) const { return nullptr; }
};
template <class T, class Input, class Finish>
struct MidPhase {
  static constexpr bool active = true;
  index_t split;  // gate groups of the first phase
  Input input;    // input(p) -> T*: (B, H)
  Finish finish;  // finish(p, pre_t, slice)
};
template <class T, class Input, class Finish>
MidPhase<T, Input, Finish> mid_phase(index_t split, Input input, Finish finish) {
  return MidPhase<T, Input, Finish>{split, input, finish};
}

// pre:       (rows, G·H) scratch the layer GEMM writes for a chunk of steps, or the whole sequence
//            when `keep_all` (training: the cell turns it into its cache of activated gates).
// separate:  the iteration GEMM writes h@R into its own (B, G·H) buffer instead of accumulating
//            into pre (GRU reset_after, where r multiplies only the recurrent part).
// h_prev(p): the (B, H) state read by step p's iteration GEMM.
// step(p, pre_t, rec_t, slice): the cell's post-GEMM on rows [b0, b1) x units [c0, c1) of every
//            gate; pre_t / rec_t point at row 0 of the step's (B, G·H) block.
// pack:      kernel and recurrent_kernel already packed (inference calls reusing a WeightPack), or
//            null: packed here. With at most kGemvMaxRows batch rows the steps are matrix-vector
//            products on the packed weights (gemv_packed): no state packing at all.
// mid:       a second GEMM phase per step (MidPhase above), or NoMidPhase.
template <class T, class HPrev, class Step, class Mid = NoMidPhase>
void run_forward(const SeqShape& s, const T* x, const T* kernel, const T* recurrent_kernel,
                 bool go_backwards, T* keep_all, bool separate, HPrev h_prev, Step step,
                 const WeightPack<T>* pack = nullptr, Mid mid = Mid{}) {
  const index_t B = s.B, T_ = s.T, I = s.I, H = s.H, GH = s.gh();
  const Kernels<T>& ker = kernels<T>();
  const bool few_rows = B <= kGemvMaxRows;
  const Partition part = few_rows ? gemv_partition((T_ == 1 ? I + H : H) * GH * sizeof(T), H, ker.nr)
                                  : partition(B, T_, H, s.G, sizeof(T), 2.0 * B * GH * (H + I), ker.nr);
  const int nt = part.threads;
  // Threads owning units, and a second phase (a subset of the gates), need each gate block to start
  // on a panel boundary; otherwise the gates are packed side by side (no per-gate padding: matters
  // for small H).
  const index_t groups = (Mid::active || (nt > 1 && !part.by_batch)) ? s.G : 1;
  const index_t split = Mid::active ? mid.split : -1;  // the first phase's gate groups (-1: all)
  const bool two_buffers = separate || Mid::active;    // the step gets a separate recurrent product
  const std::shared_ptr<const PackedWeights<T>> prepacked = pack ? pack->get(groups) : nullptr;
  PackedB<T> own_kernel, own_recurrent;
  if (!prepacked) {
    packed_b_prepare(own_kernel, I, GH / groups, groups);
    packed_b_prepare(own_recurrent, H, GH / groups, groups);
  }
  const PackedB<T>& kernel_p = prepacked ? prepacked->kernel : own_kernel;
  const PackedB<T>& recurrent_p = prepacked ? prepacked->recurrent : own_recurrent;
  // matrix-vector steps: every thread reads all B (<= 4) rows of h_{t-1} directly
  const bool gemv_steps = few_rows && !part.by_batch;
  const index_t chunk = keep_all ? T_ : std::max<index_t>(1, std::min<index_t>(T_, (512 + B - 1) / B));
  Buffer<T> scratch(keep_all ? 1 : chunk * B * GH);
  Buffer<T> rec(two_buffers ? B * GH : 1);
  // h_{t-1} packed for the iteration GEMM, ping-pong: shared when threads own units, one pair
  // per thread (its rows) when they own batch rows.
  std::vector<PackedA<T>> state_p(gemv_steps ? 0 : part.by_batch ? 2 * nt : 2);
  // the second phase's input packed (one per owner: the end-of-step barrier orders its reuse)
  std::vector<PackedA<T>> mid_p(gemv_steps || !Mid::active ? 0 : part.by_batch ? nt : 1);
  T* pre_all = keep_all ? keep_all : scratch.data();
  const MatView<const T> kernel_v = row_major(kernel, I, GH, GH);
  const MatView<const T> recurrent_v = row_major(recurrent_kernel, H, GH, GH);

  parallel(nt, [&](int tid, int n_threads) {
    if (!prepacked) {
      packed_b_fill(own_kernel, kernel_v, tid, n_threads);
      packed_b_fill(own_recurrent, recurrent_v, tid, n_threads);
    }
    const Slice sl = thread_slice(part, recurrent_p, B, H, tid, n_threads);
    const index_t nb = sl.rows();
    PackedA<T>* sp = gemv_steps ? nullptr : state_p.data() + (part.by_batch ? 2 * tid : 0);
    PackedA<T>* mp = mid_p.empty() ? nullptr : mid_p.data() + (part.by_batch ? tid : 0);
    if (!gemv_steps && (part.by_batch || tid == 0)) {
      const index_t rows = part.by_batch ? nb : B;
      for (int i = 0; i < 2; ++i) packed_a_prepare(sp[i], rows, H, recurrent_p.kc, best_tile_rows<T>(rows));
      if (mp) packed_a_prepare(*mp, rows, H, recurrent_p.kc, best_tile_rows<T>(rows));
    }
    if (!prepacked || !gemv_steps) barrier();
    T* a_work = packed_a_workspace<T>();
    // each thread packs what it produced: its units of h_t (all rows), or all units of its rows
    auto pack_state = [&](index_t p) {
      if (gemv_steps) return;
      const T* h = h_prev(p) + (part.by_batch ? sl.b0 * H : 0);
      packed_a_fill_columns(sp[p & 1], row_major<const T>(h, part.by_batch ? nb : B, H, H), sl.c0, sl.c1);
    };
    pack_state(0);
    if (!part.by_batch && !gemv_steps) barrier();
    for (index_t p0 = 0; p0 < T_ && nb > 0; p0 += chunk) {
      const index_t steps = std::min(chunk, T_ - p0);
      T* pre_chunk = keep_all ? pre_all + p0 * B * GH : pre_all;
      // 2. layer GEMM on this thread's slice: rows (t, b) for b in [b0, b1)
      const MatView<const T> x_rows = sequence_rows(x + sl.b0 * T_ * I, nb, T_, I, p0, steps, go_backwards);
      const MatView<T> pre_rows{pre_chunk + sl.b0 * GH, Axis::blocked(steps * nb, nb, GH, B * GH),
                                Axis::plain(GH, 1)};
      gemm_packed(x_rows, kernel_p, sl.q0, sl.q1, pre_rows, false, a_work);  // gemv for few rows
      for (index_t p = p0; p < p0 + steps; ++p) {
        T* pre = pre_chunk + (p - p0) * B * GH;
        T* target = separate ? rec.data() : pre;
        // 3. iteration GEMM (matrix-vector products when few rows)
        if (gemv_steps)
          gemv_packed(row_major<const T>(h_prev(p), B, H, H), recurrent_p, sl.q0, sl.q1,
                      row_major(target, B, GH, GH), !separate, 0, split);
        else
          gemm_packed_ab(sp[p & 1], recurrent_p, sl.q0, sl.q1, row_major(target + sl.b0 * GH, nb, GH, GH),
                         !separate, 0, split);
        if constexpr (Mid::active) {  // the second phase: finish the first gates, then input(p) @ R
          if (sl.c1 > sl.c0) mid.finish(p, pre, sl);
          T* in = mid.input(p);
          if (mp)
            packed_a_fill_columns(*mp, row_major<const T>(in + (part.by_batch ? sl.b0 * H : 0), part.by_batch ? nb : B, H, H),
                                  sl.c0, sl.c1);
          if (!part.by_batch) barrier();
          if (gemv_steps)
            gemv_packed(row_major<const T>(in, B, H, H), recurrent_p, sl.q0, sl.q1, row_major(rec.data(), B, GH, GH),
                        false, split);
          else
            gemm_packed_ab(*mp, recurrent_p, sl.q0, sl.q1, row_major(rec.data() + sl.b0 * GH, nb, GH, GH), false,
                           split);
        }
        // 4. post-GEMM, then pack this thread's part of h_t for the next step
        if (sl.c1 > sl.c0) step(p, pre, two_buffers ? rec.data() : nullptr, sl);
        if (p + 1 < T_) pack_state(p + 1);
        if (!part.by_batch && p + 1 < T_) barrier();  // 5. (the region's end joins after the last)
      }
    }
  });
}

// The input side for run_backward, which then computes dx_t = dG_t @ kernel^T inside the reverse
// loop from the dG_t it packs anyway, instead of a T·B-row GEMM that packs all of dG again (faster
// at every benchmark size, the large one included: benchmarks/RESULTS.md, "What moved").
template <class T>
struct InputSide {
  const T* kernel;  // (I, G·H)
  T* dx;            // (B, T, I) out
  bool go_backwards;
  // (T, B, G·H) the input side's gate gradients when they differ from the recurrent side's dgm
  // (GRU reset_after), packed per step next to them; null: dgm serves both (SimpleRNN, LSTM)
  const T* dgx = nullptr;
};
// The backward of a MidPhase forward (GRU reset_after=False): the gate gradients of groups
// [split, G) (dhh) multiply their recurrent_kernel columns into out (B, H) (d(r ⊙ h_{t-1})), from
// which finish(p, out, slice) completes the gradients of the first groups (dr) on the slice; only
// groups [0, split) then multiply recurrent_kernel^T into dh_{t-1} (`after` adds the rest).
struct NoMidBackward {
  static constexpr bool active = false;
  index_t split = -1;
  float* out = nullptr;
};
template <class T, class Finish>
struct MidBackward {
  static constexpr bool active = true;
  index_t split;  // gate groups of the first phase
  T* out;         // (B, H)
  Finish finish;  // finish(p, out, slice)
};
template <class T, class Finish>
MidBackward<T, Finish> mid_backward(index_t split, T* out, Finish finish) {
  return MidBackward<T, Finish>{split, out, finish};
}

// d_h_last: (B, H) or null. dgm: (T, B, G·H) gate gradients on the recurrent side (the A of the
// iteration GEMM). pointwise(p, dh_p, slice) fills dG_p on the slice from dh_p (gradient w.r.t.
// h_p, output gradient not yet added). after(p, dh_prev, dh_p, slice) adds the cell's
// pass-through terms to dh_prev = dG_p @ R^T (masked rows, GRU's z·dh). d_h0: (B, H) out.
// mid: MidBackward for a two-phase cell, else NoMidBackward.
template <class T, class Pointwise, class After, class Mid = NoMidBackward>
void run_backward(const SeqShape& s, const T* recurrent_kernel, const T* d_h_last, const T* dgm,
                  Pointwise pointwise, After after, T* d_h0, const InputSide<T>* input = nullptr,
                  Mid mid = Mid{}) {
  const index_t B = s.B, T_ = s.T, H = s.H, GH = s.gh();
  const Kernels<T>& ker = kernels<T>();
  const Partition part = partition(B, T_, H, s.G, sizeof(T), 2.0 * B * GH * H, ker.nr);
  const int nt = part.threads;
  // the gate groups whose gradients multiply recurrent_kernel^T into dh_{t-1}: all, or the first phase's
  const index_t g_main = Mid::active ? mid.split : s.G;
  const index_t k_main = g_main * H;
  PackedB<T> recurrent_t;  // recurrent_kernel[:, :k_main]^T (k_main, H)
  packed_b_prepare(recurrent_t, k_main, H, 1);
  PackedB<T> mid_t;        // recurrent_kernel[:, k_main:]^T ((G - split)·H, H) for the second phase
  if (Mid::active) packed_b_prepare(mid_t, GH - k_main, H, 1);
  Buffer<T> dh(2 * B * H);
  const MatView<const T> recurrent_tv{recurrent_kernel, Axis::plain(k_main, 1), Axis::plain(H, GH)};
  const MatView<const T> mid_tv{recurrent_kernel + k_main, Axis::plain(GH - k_main, 1), Axis::plain(H, GH)};
  std::vector<PackedA<T>> dg_p(part.by_batch ? 2 * nt : 2);  // dG_t packed (ping-pong), as in forward
  // the input side's gate gradients packed on their own when they differ from dgm, or when the
  // recurrent side uses only the first groups
  const T* dgx = input ? (input->dgx ? input->dgx : Mid::active ? dgm : nullptr) : nullptr;
  std::vector<PackedA<T>> dgx_p(dgx ? dg_p.size() : 0);
  std::vector<PackedA<T>> mid_p(Mid::active ? (part.by_batch ? nt : 1) : 0);  // groups [split, G) of dG_t
  PackedB<T> kernel_t;  // kernel^T (G·H, I) when dx_t is computed in the loop
  if (input) packed_b_prepare(kernel_t, GH, s.I, 1);

  parallel(nt, [&](int tid, int n_threads) {
    packed_b_fill(recurrent_t, recurrent_tv, tid, n_threads);
    if (Mid::active) packed_b_fill(mid_t, mid_tv, tid, n_threads);
    if (input) packed_b_fill(kernel_t, row_major(input->kernel, s.I, GH, GH).t(), tid, n_threads);
    const Slice sl = thread_slice(part, recurrent_t, B, H, tid, n_threads);
    const index_t nb = sl.rows(), c0 = sl.c0, c1 = sl.c1;
    PackedA<T>* dp = dg_p.data() + (part.by_batch ? 2 * tid : 0);
    PackedA<T>* xp = dgx ? dgx_p.data() + (part.by_batch ? 2 * tid : 0) : dp;
    PackedA<T>* mp = Mid::active ? mid_p.data() + (part.by_batch ? tid : 0) : nullptr;
    if (part.by_batch || tid == 0) {
      const index_t rows = part.by_batch ? nb : B;
      for (int i = 0; i < 2; ++i) {
        packed_a_prepare(dp[i], rows, k_main, recurrent_t.kc, best_tile_rows<T>(rows));
        if (dgx) packed_a_prepare(xp[i], rows, GH, kernel_t.kc, best_tile_rows<T>(rows));
      }
      if (mp) packed_a_prepare(*mp, rows, GH - k_main, mid_t.kc, best_tile_rows<T>(rows));
    }
    barrier();
    const index_t r0 = part.by_batch ? sl.b0 : 0, n_rows = part.by_batch ? nb : B;
    auto pack_dg = [&](index_t p) {  // this thread's part of every gate block of dG_p
      const MatView<const T> dg_v = row_major(dgm + (p * B + r0) * GH, n_rows, GH, GH);
      for (index_t g = 0; g < g_main; ++g) packed_a_fill_columns(dp[p & 1], dg_v, g * H + c0, g * H + c1);
      if (!dgx) return;
      const MatView<const T> dgx_v = row_major(dgx + (p * B + r0) * GH, n_rows, GH, GH);
      for (int g = 0; g < s.G; ++g) packed_a_fill_columns(xp[p & 1], dgx_v, g * H + c0, g * H + c1);
    };
    // dG_p on the slice, then (two phases) its last groups @ recurrent_kernel^T and the first groups'
    // completion, then packed. Every thread calls it (the second phase has a barrier).
    auto prepare = [&](index_t p, const T* dh_p) {
      if (c1 > c0 && nb > 0) pointwise(p, dh_p, sl);
      if constexpr (Mid::active) {
        const MatView<const T> last_v{dgm + (p * B + r0) * GH + k_main, Axis::plain(n_rows, GH),
                                      Axis::plain(GH - k_main, 1)};
        for (index_t g = 0; g < s.G - g_main; ++g) packed_a_fill_columns(*mp, last_v, g * H + c0, g * H + c1);
        if (!part.by_batch) barrier();
        if (nb > 0) {
          gemm_packed_ab(*mp, mid_t, sl.q0, sl.q1, row_major(mid.out + sl.b0 * H, nb, H, H), false);
          if (c1 > c0) mid.finish(p, mid.out, sl);
        }
      }
      pack_dg(p);
    };
    T* dh_cur = dh.data();
    T* dh_next = dh.data() + B * H;
    for (index_t b = sl.b0; b < sl.b1; ++b)
      for (index_t j = c0; j < c1; ++j) dh_cur[b * H + j] = d_h_last ? d_h_last[b * H + j] : T(0);
    prepare(T_ - 1, dh_cur);
    if (!part.by_batch) barrier();
    for (index_t p = T_ - 1; p >= 0 && nb > 0; --p) {
      // 2. dh_{p-1} = dG_p @ R^T
      gemm_packed_ab(dp[p & 1], recurrent_t, sl.q0, sl.q1, row_major(dh_next + sl.b0 * H, nb, H, H), false);
      if (input) {  // dx_p = dG_p @ kernel^T: rows (b, t) of dx (B, T, I), columns split when units are
        index_t q0 = 0, q1 = kernel_t.panels;
        if (!part.by_batch) split_range(kernel_t.panels, 1, tid, n_threads, &q0, &q1);
        const index_t t = time_index(p, T_, input->go_backwards);
        gemm_packed_ab(xp[p & 1], kernel_t, q0, q1,
                       MatView<T>{input->dx + (sl.b0 * T_ + t) * s.I, Axis::plain(nb, T_ * s.I), Axis::plain(s.I, 1)},
                       false);
      }
      if (c1 > c0) after(p, dh_next, dh_cur, sl);
      if (p > 0) prepare(p - 1, dh_next);  // 1. for the next step
      std::swap(dh_cur, dh_next);
      if (!part.by_batch) barrier();  // 3.
    }
    for (index_t b = sl.b0; b < sl.b1; ++b)
      std::memcpy(d_h0 + b * H + c0, dh_cur + b * H + c0, (c1 - c0) * sizeof(T));
  });
}

// After run_backward computed dx, the weights' side as one gemm_sum_k group over the T·B
// rows (each k block of the gate gradients packed once, once for both when dgm == dgx):
//   d_kernel = X^T dgx,  d_recurrent_kernel = H_prev^T dgm,
//   d_bias_x = column sums of dgx and d_bias_m = those of dgm when not null (from the packed blocks)
// dgx, dgm: (T, B, G·H) gate gradients on the input and recurrent sides; states (T+1, B, H) with
// states[p] the state entering step p.
template <class T>
void weight_gradients(const SeqShape& s, const T* x, const T* states, const T* dgx, const T* dgm,
                      bool go_backwards, T* d_kernel, T* d_recurrent_kernel, T* d_bias_x,
                      T* d_bias_m = nullptr) {
  const index_t B = s.B, T_ = s.T, I = s.I, H = s.H, GH = s.gh();
  const GemmJob<T> jobs[2] = {
      {sequence_rows(x, B, T_, I, 0, T_, go_backwards).t(), row_major(dgx, T_ * B, GH, GH),
       row_major(d_kernel, I, GH, GH), false, d_bias_x},
      {row_major(states, T_ * B, H, H).t(), row_major(dgm, T_ * B, GH, GH),
       row_major(d_recurrent_kernel, H, GH, GH), dgm == dgx, d_bias_m}};
  gemm_sum_k(jobs, 2, get_num_threads());
}

// A masked step for one row segment: the state is carried over, the output row (if any) is zero.
template <class T>
void carry_state(const T* prev, T* next, T* out, index_t n) {
  std::memcpy(next, prev, n * sizeof(T));
  if (out) std::memset(out, 0, n * sizeof(T));
}

// Whether row b is used at processing step p (no mask: every step).
inline bool step_valid(const std::uint8_t* mask, index_t b, index_t p, index_t steps, bool go_backwards) {
  return !mask || mask[b * steps + time_index(p, steps, go_backwards)];
}

// Masked rows pass the state gradient through a step unchanged: dh_prev[b] = dh_p[b] on [c0, c1).
template <class T>
void pass_masked_rows(const std::uint8_t* mask, const SeqShape& s, bool go_backwards, index_t p,
                      T* dh_prev, const T* dh_p, const Slice& sl) {
  if (!mask) return;
  for (index_t b = sl.b0; b < sl.b1; ++b)
    if (!step_valid(mask, b, p, s.T, go_backwards))
      std::memcpy(dh_prev + b * s.H + sl.c0, dh_p + b * s.H + sl.c0, (sl.c1 - sl.c0) * sizeof(T));
}

// Zoneout: keep weights k (B, T, n) of the forward, input time order (null: none). The forward's
// state is k ⊙ previous + (1 − k) ⊙ the cell's own new state (zoneout_blend: units [c0, c0 + n)
// of a row, k_row the row's keep weights from row_at_step, prev / next at c0);
// backward (ZoneoutGrad), the cell sees (1 − k)(dh + dout) and k (dh + dout) goes straight to the
// previous state's gradient.
template <class T>
void zoneout_blend(const T* k_row, index_t c0, const T* prev, T* next, index_t n) {
  if (!k_row) return;
  const T* k = k_row + c0;
  for (index_t j = 0; j < n; ++j) next[j] = k[j] * prev[j] + (T(1) - k[j]) * next[j];
}

template <class T>
class ZoneoutGrad {
 public:
  ZoneoutGrad(const T* keep, index_t batch, index_t steps, index_t n, bool go_backwards)
      : keep_(keep), steps_(steps), n_(n), go_backwards_(go_backwards), cell_(keep ? batch * n : 1) {}
  // The keep weights of row b at processing step p (the whole row), or null without zoneout.
  const T* row(index_t b, index_t p) const { return row_at_step(keep_, b, p, steps_, n_, go_backwards_); }
  // On units [c0, c0 + nc) of row b (dh, dout at c0; dout may be null): with zoneout, dh becomes the
  // cell's gradient (1 − k)(dh + dout), kept in a scratch row (disjoint between threads), and dout null.
  void cell_input(index_t b, index_t p, index_t c0, index_t nc, const T*& dh, const T*& dout) {
    const T* k = row(b, p);
    if (!k) return;
    T* out = cell_.data() + b * n_ + c0;
    for (index_t j = 0; j < nc; ++j) out[j] = (T(1) - k[c0 + j]) * (dh[j] + (dout ? dout[j] : T(0)));
    dh = out;
    dout = nullptr;
  }
  // The cell's gradient of row b from unit c0 (what cell_input wrote for this step).
  const T* cell_row(index_t b, index_t c0) const { return cell_.data() + b * n_ + c0; }
  // d_prev += k (dh + dout) on units [c0, c0 + nc) of row b (dh, dout, d_prev at c0); no-op without zoneout.
  void pass(index_t b, index_t p, index_t c0, index_t nc, const T* dh, const T* dout, T* d_prev) const {
    const T* k = row(b, p);
    if (!k) return;
    for (index_t j = 0; j < nc; ++j) d_prev[j] += k[c0 + j] * (dh[j] + (dout ? dout[j] : T(0)));
  }

 private:
  const T* keep_;
  index_t steps_, n_;
  bool go_backwards_;
  Buffer<T> cell_;
};

// Zero gradients for an empty sequence (T == 0 or B == 0): d_h0 = d_h_last.
template <class T>
void empty_sequence_gradients(const SeqShape& s, const T* d_h_last, T* dx, T* d_kernel,
                              T* d_recurrent_kernel, T* d_bias, index_t bias_size, T* d_h0) {
  std::fill(dx, dx + s.B * s.T * s.I, T(0));
  std::fill(d_kernel, d_kernel + s.I * s.gh(), T(0));
  std::fill(d_recurrent_kernel, d_recurrent_kernel + s.H * s.gh(), T(0));
  if (d_bias) std::fill(d_bias, d_bias + bias_size, T(0));
  for (index_t i = 0; i < s.B * s.H; ++i) d_h0[i] = d_h_last ? d_h_last[i] : T(0);
}

}  // namespace rnnkit
