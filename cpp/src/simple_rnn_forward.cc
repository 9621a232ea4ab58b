// SimpleRNN forward over a sequence: run_forward (recurrent.h) does the GEMMs and the time loop;
// the post-GEMM below is h_t = act(pre_t + bias), masked rows keep h_{t-1}, zero output rows.
#include <algorithm>
#include <cstring>
#include <vector>

#include "rnnkit/batch_lane.h"
#include "rnnkit/recurrent.h"
#include "rnnkit/simple_rnn.h"

namespace rnnkit {

template <class T>
void simple_rnn_forward(const SimpleRnnForward<T>& a) {
  const SeqShape s{a.batch, a.steps, a.input_size, a.units, 1};
  const index_t B = s.B, T_ = s.T, H = s.H;
  if (B == 0) return;
  if (!a.zoneout_h && use_batch_lanes<T>(CellKind::kSimpleRnn, B, T_, H)) {  // (no zoneout there)
    BatchLaneForward<T> f = batch_lane_args<T>(CellKind::kSimpleRnn, a);
    f.h_states = a.states;
    batch_lane_forward(f);
    return;
  }
  const Kernels<T>& ker = kernels<T>();
  // States: the training cache (T+1, B, H), or a ping-pong pair when nothing is kept.
  Buffer<T> pingpong(a.states ? 1 : 2 * B * H);
  auto state = [&](index_t p) -> T* {  // the state after p steps
    return a.states ? a.states + p * B * H : pingpong.data() + (p & 1) * B * H;
  };
  if (a.h0)
    std::memcpy(state(0), a.h0, B * H * sizeof(T));
  else
    std::memset(state(0), 0, B * H * sizeof(T));

  run_forward<T>(s, a.x, a.kernel, a.recurrent_kernel, a.go_backwards, nullptr, false,
                 [&](index_t p) { return state(p); },
                 [&](index_t p, T* pre, T*, const Slice& sl) {
    // post-GEMM on rows [b0, b1) x units [c0, c1): h_t = act(pre + bias); masked rows carry h_{t-1}
    const index_t t = time_index(p, T_, a.go_backwards), c0 = sl.c0, nc = sl.c1 - sl.c0;
    const T* h_prev = state(p);
    T* h_next = state(p + 1);
    for (index_t b = sl.b0; b < sl.b1; ++b) {
      T* h = h_next + b * H + c0;
      T* o = a.outputs ? a.outputs + (b * T_ + p) * H + c0 : nullptr;
      if (!a.mask || a.mask[b * T_ + t]) {
        ker.simple_rnn_forward_cell(a.activation, nc, pre + b * H + c0, a.bias ? a.bias + c0 : nullptr, h, o);
        if (const T* kh = row_at_step(a.zoneout_h, b, p, T_, H, a.go_backwards)) {  // zoneout (y_t kept)
          if (a.y_cell) std::memcpy(a.y_cell + (p * B + b) * H + c0, h, nc * sizeof(T));
          zoneout_blend(kh, c0, h_prev + b * H + c0, h, nc);
          if (o) std::memcpy(o, h, nc * sizeof(T));
        }
      } else {
        std::memcpy(h, h_prev + b * H + c0, nc * sizeof(T));
        if (o) std::memset(o, 0, nc * sizeof(T));
      }
    }
  }, a.pack);
  std::memcpy(a.h_last, state(T_), B * H * sizeof(T));
}

template <class T>
void simple_rnn_forward_naive(const SimpleRnnForward<T>& a) {
  const index_t B = a.batch, T_ = a.steps, I = a.input_size, H = a.units;
  std::vector<T> h(B * H), z(H);
  for (index_t i = 0; i < B * H; ++i) h[i] = a.h0 ? a.h0[i] : T(0);
  if (a.states) std::copy(h.begin(), h.end(), a.states);
  for (index_t p = 0; p < T_; ++p) {
    const index_t t = time_index(p, T_, a.go_backwards);
    std::vector<T> next = h;
    for (index_t b = 0; b < B; ++b) {
      const bool valid = !a.mask || a.mask[b * T_ + t];
      for (index_t j = 0; j < H; ++j) {
        T s = a.bias ? a.bias[j] : T(0);
        for (index_t i = 0; i < I; ++i) s += a.x[(b * T_ + t) * I + i] * a.kernel[i * H + j];
        for (index_t k = 0; k < H; ++k) s += h[b * H + k] * a.recurrent_kernel[k * H + j];
        z[j] = s;
      }
      kernels<T>().activation(a.activation, z.data(), z.data(), H);
      for (index_t j = 0; j < H; ++j) {
        if (valid) next[b * H + j] = z[j];
        if (a.outputs) a.outputs[(b * T_ + p) * H + j] = valid ? z[j] : T(0);
      }
    }
    h.swap(next);
    if (a.states) std::copy(h.begin(), h.end(), a.states + (p + 1) * B * H);
  }
  std::copy(h.begin(), h.end(), a.h_last);
}

template void simple_rnn_forward<float>(const SimpleRnnForward<float>&);
template void simple_rnn_forward<double>(const SimpleRnnForward<double>&);
template void simple_rnn_forward_naive<float>(const SimpleRnnForward<float>&);
template void simple_rnn_forward_naive<double>(const SimpleRnnForward<double>&);

}  // namespace rnnkit
