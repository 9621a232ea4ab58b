// LSTM backpropagation through time on run_backward (recurrent.h). Per step and unit (valid rows):
//   dh = dh_t + d_outputs_t;  tc = act(c_t)
//   do = dh * tc * ract'(o);  dc = dc_carry + dh * o * act'(tc)
//   di = dc * g * ract'(i);   dg = dc * i * act'(g);  df = dc * c_{t-1} * ract'(f);  dc_carry = dc * f
// Masked rows: zero gate gradients, dh and dc_carry pass through.
#include <cstring>

#include "rnnkit/lstm.h"
#include "rnnkit/recurrent.h"

namespace rnnkit {

template <class T>
void lstm_backward(const LstmBackward<T>& a) {
  const SeqShape s{a.batch, a.steps, a.input_size, a.units, 4};
  const index_t B = s.B, T_ = s.T, H = s.H, GH = s.gh();
  if (B == 0 || T_ == 0) {
    empty_sequence_gradients(s, a.d_h_last, a.dx, a.d_kernel, a.d_recurrent_kernel, a.d_bias, GH, a.d_h0);
    for (index_t i = 0; i < B * H; ++i) a.d_c0[i] = a.d_c_last ? a.d_c_last[i] : T(0);
    return;
  }
  const Kernels<T>& ker = kernels<T>();
  const Activation act = a.activation, ract = a.recurrent_activation;
  Buffer<T> dg(T_ * B * GH);  // gate gradients (T, B, 4H)
  // dc_carry lives in d_c0: it holds dc_t while walking back and ends as dc_0.
  T* dc = a.d_c0;
  for (index_t i = 0; i < B * H; ++i) dc[i] = a.d_c_last ? a.d_c_last[i] : T(0);

  // zoneout on h (ZoneoutGrad) and on c: the kc ⊙ dc_t that passes straight to c_{t-1}, per row
  // segment (rows and units are disjoint between threads)
  ZoneoutGrad<T> zoneout_h(a.zoneout_h, B, T_, H, a.go_backwards);
  Buffer<T> dc_pass(a.zoneout_c ? B * H : 1);
  const InputSide<T> input{a.kernel, a.dx, a.go_backwards};
  run_backward<T>(s, a.recurrent_kernel, a.d_h_last, dg.data(),
    [&](index_t p, const T* dh_p, const Slice& sl) {
      const index_t c0 = sl.c0, nc = sl.c1 - sl.c0;
      for (index_t b = sl.b0; b < sl.b1; ++b) {
        T* d = dg.data() + (p * B + b) * GH;
        if (!step_valid(a.mask, b, p, T_, a.go_backwards)) {
          for (int g = 0; g < 4; ++g) std::memset(d + g * H + c0, 0, nc * sizeof(T));
          continue;
        }
        const index_t row = b * H + c0;
        const T* gates = a.gates + (p * B + b) * GH + c0;
        const T* dh_row = dh_p + row;
        const T* dout = a.d_outputs ? a.d_outputs + (b * T_ + p) * H + c0 : nullptr;
        const T* c_cell = a.c_states + (p + 1) * B * H + row;  // c'_t, the cell's own new state
        zoneout_h.cell_input(b, p, c0, nc, dh_row, dout);
        const T* kc = row_at_step(a.zoneout_c, b, p, T_, H, a.go_backwards);
        if (kc) {  // dc' = (1 - kc) dc_t into the cell; kc dc_t passes to c_{t-1}
          c_cell = a.c_cell + p * B * H + row;
          T* dcr = dc + row;
          T* pass = dc_pass.data() + row;
          for (index_t j = 0; j < nc; ++j) {
            pass[j] = kc[c0 + j] * dcr[j];
            dcr[j] -= pass[j];
          }
        }
        ker.lstm_backward_cell(act, ract, nc, gates, gates + H, gates + 2 * H, gates + 3 * H, c_cell,
                               a.c_states + p * B * H + row, dh_row, dout,
                               dc + row, d + c0, d + H + c0, d + 2 * H + c0, d + 3 * H + c0);
        if (kc)
          for (index_t j = 0; j < nc; ++j) dc[row + j] += dc_pass.data()[row + j];
      }
    },
    [&](index_t p, T* dh_prev, const T* dh_p, const Slice& sl) {
      pass_masked_rows(a.mask, s, a.go_backwards, p, dh_prev, dh_p, sl);
      for (index_t b = sl.b0; b < sl.b1 && a.zoneout_h; ++b)  // kh (dh + dout) straight to h_{t-1}
        if (step_valid(a.mask, b, p, T_, a.go_backwards))
          zoneout_h.pass(b, p, sl.c0, sl.c1 - sl.c0, dh_p + b * H + sl.c0,
                         a.d_outputs ? a.d_outputs + (b * T_ + p) * H + sl.c0 : nullptr, dh_prev + b * H + sl.c0);
    },
    a.d_h0, &input);
  weight_gradients(s, a.x, a.h_states, dg.data(), dg.data(), a.go_backwards, a.d_kernel,
                   a.d_recurrent_kernel, a.d_bias);
}

template void lstm_backward<float>(const LstmBackward<float>&);
template void lstm_backward<double>(const LstmBackward<double>&);

}  // namespace rnnkit
