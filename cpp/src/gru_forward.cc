// GRU forward, both variants on run_forward. reset_after=True: the iteration GEMM writes h@R to its
// own buffer (r multiplies only the recurrent part of the candidate). reset_after=False needs r
// before the candidate's recurrent product, so each step has two GEMM phases (run_forward's
// MidPhase; with threads owning units, a barrier after each):
//   1. pre_zr += h_{t-1} @ R_zr; z, r; rh = r * h_{t-1}
//   2. rec_h = rh @ R_h; hh = act(pre_h + bias_h + rec_h); h_t
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
      zoneout_blend(row_at_step(a.zoneout_h, b, p, T_, H, a.go_backwards), c0, h_prev + row, h_next + row, nc);
      if (out) std::memcpy(out, h_next + row, nc * sizeof(T));
    }
  }, a.pack);
}

// Two GEMM phases per step on run_forward (MidPhase): h_{t-1} @ R over the z | r groups, then
// (r * h_{t-1}) @ R over the h group.
template <class T>
void gru_forward_reset_before(const GruForward<T>& a, const SeqShape& s, Buffer<T>& pingpong) {
  const index_t B = s.B, T_ = s.T, H = s.H, GH = s.gh();
  const Kernels<T>& ker = kernels<T>();
  auto state = [&](index_t p) -> T* {
    return a.states ? a.states + p * B * H : pingpong.data() + (p & 1) * B * H;
  };
  Buffer<T> rh_step(a.extra ? 1 : B * H);  // r * h_{t-1} of the step (training: a.extra keeps every step's)
  auto rh = [&](index_t p) -> T* { return a.extra ? a.extra + p * B * H : rh_step.data(); };
  // phase 1 done: z, r = ract(pre + bias) and rh = r * h_{t-1} on the slice (every row: a masked
  // row's rh is never used)
  auto finish_zr = [&](index_t p, T* pre, const Slice& sl) {
    const index_t c0 = sl.c0, nc = sl.c1 - sl.c0;
    const T* h_prev = state(p);
    T* rh_p = rh(p);
    for (index_t b = sl.b0; b < sl.b1; ++b) {
      for (int g = 0; g < 2; ++g) {
        T* zg = pre + b * GH + g * H + c0;
        if (a.bias)
          for (index_t j = 0; j < nc; ++j) zg[j] += a.bias[g * H + c0 + j];
        ker.activation(a.recurrent_activation, zg, zg, nc);
      }
      const T* r = pre + b * GH + H + c0;
      const T* hp = h_prev + b * H + c0;
      T* out = rh_p + b * H + c0;
      for (index_t j = 0; j < nc; ++j) out[j] = r[j] * hp[j];
    }
  };
  run_forward<T>(s, a.x, a.kernel, a.recurrent_kernel, a.go_backwards, a.gates, false,
                 [&](index_t p) { return state(p); },
                 [&](index_t p, T* pre, T* rec, const Slice& sl) {  // hh = act(xh + bias_h + rh @ R_h), h_t
    const index_t c0 = sl.c0, nc = sl.c1 - sl.c0;
    const T* h_prev = state(p);
    T* h_next = state(p + 1);
    for (index_t b = sl.b0; b < sl.b1; ++b) {
      const index_t row = b * H + c0;
      T* out = a.outputs ? a.outputs + (b * T_ + p) * H + c0 : nullptr;
      if (!step_valid(a.mask, b, p, T_, a.go_backwards)) {
        carry_state(h_prev + row, h_next + row, out, nc);
        continue;
      }
      T* hh = pre + b * GH + 2 * H + c0;
      const T* rc = rec + b * GH + 2 * H + c0;
      const T* bh = a.bias ? a.bias + 2 * H + c0 : nullptr;
      for (index_t j = 0; j < nc; ++j) hh[j] += rc[j] + (bh ? bh[j] : T(0));
      ker.activation(a.activation, hh, hh, nc);
      gru_update(pre + b * GH + c0, hh, h_prev + row, h_next + row, nc);
      zoneout_blend(row_at_step(a.zoneout_h, b, p, T_, H, a.go_backwards), c0, h_prev + row, h_next + row, nc);
      if (out) std::memcpy(out, h_next + row, nc * sizeof(T));
    }
  }, a.pack, mid_phase<T>(2, rh, finish_zr));
}

}  // namespace

template <class T>
void gru_forward(const GruForward<T>& a) {
  const SeqShape s{a.batch, a.steps, a.input_size, a.units, 3};
  const index_t B = s.B, H = s.H;
  if (B == 0) return;
  if (!a.zoneout_h && use_batch_lanes<T>(CellKind::kGru, B, s.T, H)) {  // (no zoneout there)
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
