// GRU forward. reset_after=True runs on run_forward with the iteration GEMM writing h@R to its own
// buffer (r multiplies only the recurrent part of the candidate). reset_after=False needs r before
// the candidate's recurrent product, so each step has two GEMM phases and two barriers (both take
// the layer's WeightPack and run as matrix-vector products for few rows, as run_forward does):
//   1. pre_zr += h_{t-1} @ R_zr; z, r; rh = r * h_{t-1}        barrier
//   2. rec_h = rh @ R_h; hh = act(pre_h + bias_h + rec_h); h_t  barrier
#include <cstring>

#include "rnnkit/gru.h"
#include "rnnkit/batch_lane.h"
#include "rnnkit/recurrent.h"

namespace rnnkit {
namespace {

// h_t = z * h_{t-1} + (1 - z) * hh on one row segment, and the output row.
template <class T>
void gru_update(const T* z, const T* hh, const T* h_prev, T* h, index_t n) {
  for (index_t j = 0; j < n; ++j) h[j] = z[j] * h_prev[j] + (T(1) - z[j]) * hh[j];
}

template <class T>
void gru_forward_reset_after(const GruForward<T>& a, const SeqShape& s, Buffer<T>& pingpong) {
  const index_t B = s.B, T_ = s.T, H = s.H, GH = s.gh();
  const Kernels<T>& ker = kernels<T>();
  auto state = [&](index_t p) -> T* {
    return a.states ? a.states + p * B * H : pingpong.data() + (p & 1) * B * H;
  };
  const T* b_in = a.bias;
  const T* b_rec = a.bias ? a.bias + GH : nullptr;
  run_forward<T>(s, a.x, a.kernel, a.recurrent_kernel, a.go_backwards, a.gates, true,
                 [&](index_t p) { return state(p); },
                 [&](index_t p, T* pre, T* rec, const Slice& sl) {
    const index_t c0 = sl.c0, nc = sl.c1 - sl.c0;
    const T* h_prev = state(p);
    T* h_next = state(p + 1);
    // without a training cache mh is written back over the recurrent product (not needed later)
    auto m3_scratch = [&](index_t b) { return rec + b * GH + 2 * H + c0; };
    for (index_t b = sl.b0; b < sl.b1; ++b) {
      const index_t row = b * H + c0;
      T* out = a.outputs ? a.outputs + (b * T_ + p) * H + c0 : nullptr;
      if (!step_valid(a.mask, b, p, T_, a.go_backwards)) {
        carry_state(h_prev + row, h_next + row, out, nc);
        continue;
      }
      T* x3 = pre + b * GH + c0;  // xz | xr | xh, becomes z | r | hh (the training cache)
      const T* m3 = rec + b * GH + c0;  // mz | mr | mh
      const T* bx = b_in ? b_in + c0 : nullptr;
      const T* bm = b_rec ? b_rec + c0 : nullptr;
      T* mh_out = a.extra ? a.extra + (p * B + b) * H + c0 : m3_scratch(b);
      ker.gru_forward_cell(a.activation, a.recurrent_activation, nc, x3, x3 + H, x3 + 2 * H, m3, m3 + H,
                           m3 + 2 * H, bx, bx ? bx + H : nullptr, bx ? bx + 2 * H : nullptr, bm,
                           bm ? bm + H : nullptr, bm ? bm + 2 * H : nullptr, h_prev + row, mh_out,
                           h_next + row);
      if (out) std::memcpy(out, h_next + row, nc * sizeof(T));
    }
  }, a.pack);
}

template <class T>
void gru_forward_reset_before(const GruForward<T>& a, const SeqShape& s, Buffer<T>& pingpong) {
  const index_t B = s.B, T_ = s.T, I = s.I, H = s.H, GH = s.gh();
  const Kernels<T>& ker = kernels<T>();
  auto state = [&](index_t p) -> T* {
    return a.states ? a.states + p * B * H : pingpong.data() + (p & 1) * B * H;
  };
  // At most kGemvMaxRows rows: both phases as matrix-vector products on the packed weights.
  const bool few_rows = B <= kGemvMaxRows;
  const int nt = few_rows ? gemv_partition((T_ == 1 ? I + H : H) * GH * sizeof(T), H, ker.nr).threads
                          : recurrent_threads(2.0 * B * GH * (H + I), H, ker.nr);
  // kernel (I, 3H) and recurrent_kernel (H, 3H) as three gate groups z | r | h on panel
  // boundaries: phase 1 multiplies by groups [0, 2), phase 2 by group 2. From the layer's
  // WeightPack when it has one (inference), else packed here.
  const std::shared_ptr<const PackedWeights<T>> prepacked = a.pack ? a.pack->get(3) : nullptr;
  PackedB<T> own_kernel, own_recurrent;
  if (!prepacked) {
    packed_b_prepare(own_kernel, I, H, 3);
    packed_b_prepare(own_recurrent, H, H, 3);
  }
  const PackedB<T>& kernel_p = prepacked ? prepacked->kernel : own_kernel;
  const PackedB<T>& rec_p = prepacked ? prepacked->recurrent : own_recurrent;
  const index_t chunk = a.gates ? T_ : std::max<index_t>(1, std::min<index_t>(T_, (512 + B - 1) / B));
  Buffer<T> scratch(a.gates ? 1 : chunk * B * GH);
  Buffer<T> rh_step(a.extra ? 1 : B * H), rec(B * GH);  // rec: columns [2H, 3H) = rh @ R_h
  T* pre_all = a.gates ? a.gates : scratch.data();
  const MatView<const T> kernel_v = row_major(a.kernel, I, GH, GH);
  const MatView<const T> rec_v = row_major(a.recurrent_kernel, H, GH, GH);

  parallel(nt, [&](int tid, int n_threads) {
    if (!prepacked) {
      packed_b_fill(own_kernel, kernel_v, tid, n_threads);
      packed_b_fill(own_recurrent, rec_v, tid, n_threads);
      barrier();
    }
    const Slice u = thread_slice(Partition{n_threads, false}, rec_p, B, H, tid, n_threads);
    const index_t c0 = u.c0, nc = u.c1 - u.c0;
    T* a_work = packed_a_workspace<T>();
    for (index_t p0 = 0; p0 < T_; p0 += chunk) {
      const index_t steps = std::min(chunk, T_ - p0);
      T* pre_chunk = a.gates ? pre_all + p0 * B * GH : pre_all;
      gemm_packed(sequence_rows(a.x, B, T_, I, p0, steps, a.go_backwards), kernel_p, u.q0, u.q1,
                  row_major(pre_chunk, steps * B, GH, GH), false, a_work);
      for (index_t p = p0; p < p0 + steps; ++p) {
        T* pre = pre_chunk + (p - p0) * B * GH;
        const T* h_prev = state(p);
        T* h_next = state(p + 1);
        T* rh = a.extra ? a.extra + p * B * H : rh_step.data();
        // 1. z, r and rh = r * h_{t-1}
        gemm_packed(row_major<const T>(h_prev, B, H, H), rec_p, u.q0, u.q1, row_major(pre, B, GH, GH), true,
                    a_work, 0, 2);
        for (index_t b = 0; b < B && nc > 0; ++b) {
          for (int g = 0; g < 2; ++g) {
            T* zg = pre + b * GH + g * H + c0;
            if (a.bias)
              for (index_t j = 0; j < nc; ++j) zg[j] += a.bias[g * H + c0 + j];
            ker.activation(a.recurrent_activation, zg, zg, nc);
          }
          const T* r = pre + b * GH + H + c0;
          for (index_t j = 0; j < nc; ++j) rh[b * H + c0 + j] = r[j] * h_prev[b * H + c0 + j];
        }
        barrier();
        // 2. hh = act(xh + bias_h + rh @ R_h), h_t
        gemm_packed(row_major<const T>(rh, B, H, H), rec_p, u.q0, u.q1, row_major(rec.data(), B, GH, GH), false,
                    a_work, 2, 3);
        for (index_t b = 0; b < B && nc > 0; ++b) {
          const index_t row = b * H + c0;
          T* out = a.outputs ? a.outputs + (b * T_ + p) * H + c0 : nullptr;
          if (!step_valid(a.mask, b, p, T_, a.go_backwards)) {
            carry_state(h_prev + row, h_next + row, out, nc);
            continue;
          }
          T* hh = pre + b * GH + 2 * H + c0;
          const T* rc = rec.data() + b * GH + 2 * H + c0;
          for (index_t j = 0; j < nc; ++j) hh[j] += rc[j] + (a.bias ? a.bias[2 * H + c0 + j] : T(0));
          ker.activation(a.activation, hh, hh, nc);
          gru_update(pre + b * GH + c0, hh, h_prev + row, h_next + row, nc);
          if (out) std::memcpy(out, h_next + row, nc * sizeof(T));
        }
        if (p + 1 < T_) barrier();  // the region's end joins after the last step
      }
    }
  });
}

}  // namespace

template <class T>
void gru_forward(const GruForward<T>& a) {
  const SeqShape s{a.batch, a.steps, a.input_size, a.units, 3};
  const index_t B = s.B, H = s.H;
  if (B == 0) return;
  if (use_batch_lanes<T>(CellKind::kGru, B, s.T, H)) {
    BatchLaneForward<T> f = batch_lane_args<T>(CellKind::kGru, a);
    f.recurrent_bias = a.reset_after && a.bias ? a.bias + 3 * H : nullptr;
    f.reset_after = a.reset_after, f.recurrent_activation = a.recurrent_activation;
    f.h_states = a.states, f.gates = a.gates, f.extra = a.extra;
    batch_lane_forward(f);
    return;
  }
  Buffer<T> pingpong(a.states ? 1 : 2 * B * H);
  T* state0 = a.states ? a.states : pingpong.data();
  if (a.h0)
    std::memcpy(state0, a.h0, B * H * sizeof(T));
  else
    std::memset(state0, 0, B * H * sizeof(T));
  if (a.reset_after)
    gru_forward_reset_after(a, s, pingpong);
  else
    gru_forward_reset_before(a, s, pingpong);
  const T* last = a.states ? a.states + s.T * B * H : pingpong.data() + (s.T & 1) * B * H;
  std::memcpy(a.h_last, last, B * H * sizeof(T));
}

template void gru_forward<float>(const GruForward<float>&);
template void gru_forward<double>(const GruForward<double>&);

}  // namespace rnnkit
