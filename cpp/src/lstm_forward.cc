// LSTM forward on run_forward (recurrent.h). The post-GEMM (one fused vector pass per row,
// Kernels::lstm_forward_cell) turns the four gate blocks of this thread's units into activated
// gates in place, then updates c and h.
#include <cstring>

#include "rnnkit/lstm.h"
#include "rnnkit/batch_lane.h"
#include "rnnkit/recurrent.h"

namespace rnnkit {

template <class T>
void lstm_forward(const LstmForward<T>& a) {
  const SeqShape s{a.batch, a.steps, a.input_size, a.units, 4};
  const index_t B = s.B, T_ = s.T, H = s.H, GH = s.gh();
  if (B == 0) return;
  const bool zoneout = a.zoneout_h || a.zoneout_c;
  if (!zoneout && use_batch_lanes<T>(CellKind::kLstm, B, T_, H)) {  // (no zoneout there)
    BatchLaneForward<T> f = batch_lane_args<T>(CellKind::kLstm, a);
    f.c0 = a.c0, f.recurrent_activation = a.recurrent_activation, f.c_last = a.c_last;
    f.h_states = a.h_states, f.c_states = a.c_states, f.gates = a.gates;
    batch_lane_forward(f);
    return;
  }
  const Kernels<T>& ker = kernels<T>();
  const bool training = a.gates != nullptr;
  Buffer<T> pingpong(training ? 1 : 4 * B * H);  // h and c ping-pong pairs when nothing is kept
  auto h_state = [&](index_t p) -> T* {
    return training ? a.h_states + p * B * H : pingpong.data() + (p & 1) * B * H;
  };
  auto c_state = [&](index_t p) -> T* {
    return training ? a.c_states + p * B * H : pingpong.data() + (2 + (p & 1)) * B * H;
  };
  for (auto [dst, src] : {std::pair<T*, const T*>{h_state(0), a.h0}, {c_state(0), a.c0}}) {
    if (src)
      std::memcpy(dst, src, B * H * sizeof(T));
    else
      std::memset(dst, 0, B * H * sizeof(T));
  }

  run_forward<T>(s, a.x, a.kernel, a.recurrent_kernel, a.go_backwards, a.gates, false,
                 [&](index_t p) { return h_state(p); },
                 [&](index_t p, T* pre, T*, const Slice& sl) {
    const index_t c0 = sl.c0, nc = sl.c1 - sl.c0;
    const T *h_prev = h_state(p), *c_prev = c_state(p);
    T *h_next = h_state(p + 1), *c_next = c_state(p + 1);
    for (index_t b = sl.b0; b < sl.b1; ++b) {
      const index_t row = b * H + c0;
      const bool valid = step_valid(a.mask, b, p, T_, a.go_backwards);
      if (!valid) {  // carry both states, zero output
        carry_state(h_prev + row, h_next + row, a.outputs ? a.outputs + (b * T_ + p) * H + c0 : nullptr, nc);
        carry_state<T>(c_prev + row, c_next + row, nullptr, nc);
        continue;
      }
      T* z = pre + b * GH + c0;
      const T* bias = a.bias ? a.bias + c0 : nullptr;
      T* h = h_next + row;
      ker.lstm_forward_cell(a.activation, a.recurrent_activation, nc, z, z + H, z + 2 * H, z + 3 * H,
                            bias, bias ? bias + H : nullptr, bias ? bias + 2 * H : nullptr,
                            bias ? bias + 3 * H : nullptr, c_prev + row, c_next + row, h);
      if (zoneout) {  // blend the new states with the previous ones (c' kept for backward)
        const T* kh = row_at_step(a.zoneout_h, b, p, T_, H, a.go_backwards);
        const T* kc = row_at_step(a.zoneout_c, b, p, T_, H, a.go_backwards);
        if (kc && a.c_cell) std::memcpy(a.c_cell + p * B * H + row, c_next + row, nc * sizeof(T));
        zoneout_blend(kc, c0, c_prev + row, c_next + row, nc);
        zoneout_blend(kh, c0, h_prev + row, h, nc);
      }
      if (a.outputs) std::memcpy(a.outputs + (b * T_ + p) * H + c0, h, nc * sizeof(T));
    }
  }, a.pack);
  std::memcpy(a.h_last, h_state(T_), B * H * sizeof(T));
  std::memcpy(a.c_last, c_state(T_), B * H * sizeof(T));
}

template void lstm_forward<float>(const LstmForward<float>&);
template void lstm_forward<double>(const LstmForward<double>&);

}  // namespace rnnkit
