// SimpleRNN backpropagation through time on run_backward (recurrent.h):
//   1. dZ_t = (dh_t + d_outputs_t) * act'(h_t) on valid rows, zero at masked steps
//   2. dh_{t-1} = dZ_t @ recurrent_kernel^T, masked rows pass dh_t through
// then d_kernel = X^T dZ, d_recurrent_kernel = H_prev^T dZ, dx = dZ kernel^T, d_bias = sum dZ.
#include <algorithm>
#include <cstring>
#include <vector>

#include "rnnkit/recurrent.h"
#include "rnnkit/simple_rnn.h"

namespace rnnkit {

template <class T>
void simple_rnn_backward(const SimpleRnnBackward<T>& a) {
  const SeqShape s{a.batch, a.steps, a.input_size, a.units, 1};
  const index_t B = s.B, T_ = s.T, H = s.H;
  if (B == 0 || T_ == 0) {
    empty_sequence_gradients(s, a.d_h_last, a.dx, a.d_kernel, a.d_recurrent_kernel, a.d_bias, H, a.d_h0);
    return;
  }
  const Kernels<T>& ker = kernels<T>();
  Buffer<T> dz(T_ * B * H);  // dZ: (T, B, H) time-major, processing order
  ZoneoutGrad<T> zoneout(a.zoneout_h, B, T_, H, a.go_backwards);
  const InputSide<T> input{a.kernel, a.dx, a.go_backwards};
  run_backward<T>(s, a.recurrent_kernel, a.d_h_last, dz.data(),
    // 1. dZ_p = (dh_p + d_outputs_p) * act'(h_p) on valid rows, zero on masked rows
    [&](index_t p, const T* dh_p, const Slice& sl) {
      const index_t c0 = sl.c0, nc = sl.c1 - sl.c0;
      const T* h = a.y_cell ? a.y_cell + p * B * H : a.states + (p + 1) * B * H;  // the cell's own y_t
      T* z = dz.data() + p * B * H;
      for (index_t b = sl.b0; b < sl.b1; ++b) {
        T* zr = z + b * H + c0;
        if (!step_valid(a.mask, b, p, T_, a.go_backwards)) {
          std::fill(zr, zr + nc, T(0));
          continue;
        }
        const T* dh_row = dh_p + b * H + c0;
        const T* dout = a.d_outputs ? a.d_outputs + (b * T_ + p) * H + c0 : nullptr;
        zoneout.cell_input(b, p, c0, nc, dh_row, dout);
        ker.simple_rnn_backward_cell(a.activation, nc, h + b * H + c0, dh_row, dout, zr);
      }
    },
    // 2. masked rows pass dh_p through unchanged; zoneout passes kh (dh + dout) straight to h_{t-1}
    [&](index_t p, T* dh_prev, const T* dh_p, const Slice& sl) {
      pass_masked_rows(a.mask, s, a.go_backwards, p, dh_prev, dh_p, sl);
      for (index_t b = sl.b0; b < sl.b1 && a.zoneout_h; ++b)
        if (step_valid(a.mask, b, p, T_, a.go_backwards))
          zoneout.pass(b, p, sl.c0, sl.c1 - sl.c0, dh_p + b * H + sl.c0,
                       a.d_outputs ? a.d_outputs + (b * T_ + p) * H + sl.c0 : nullptr, dh_prev + b * H + sl.c0);
    },
    a.d_h0, &input);
  weight_gradients(s, a.x, a.states, dz.data(), dz.data(), a.go_backwards, a.d_kernel,
                   a.d_recurrent_kernel, a.d_bias);
}

template <class T>
void simple_rnn_backward_naive(const SimpleRnnBackward<T>& a) {
  const index_t B = a.batch, T_ = a.steps, I = a.input_size, H = a.units;
  std::fill(a.dx, a.dx + B * T_ * I, T(0));
  std::fill(a.d_kernel, a.d_kernel + I * H, T(0));
  std::fill(a.d_recurrent_kernel, a.d_recurrent_kernel + H * H, T(0));
  if (a.d_bias) std::fill(a.d_bias, a.d_bias + H, T(0));
  std::vector<T> dh(B * H), dz(H), next(B * H);
  for (index_t i = 0; i < B * H; ++i) dh[i] = a.d_h_last ? a.d_h_last[i] : T(0);
  for (index_t p = T_ - 1; p >= 0; --p) {
    const index_t t = time_index(p, T_, a.go_backwards);
    const T* h = a.states + (p + 1) * B * H;
    const T* hp = a.states + p * B * H;
    for (index_t b = 0; b < B; ++b) {
      if (a.mask && !a.mask[b * T_ + t]) {
        for (index_t j = 0; j < H; ++j) next[b * H + j] = dh[b * H + j];
        continue;
      }
      for (index_t j = 0; j < H; ++j) {
        T g = dh[b * H + j] + (a.d_outputs ? a.d_outputs[(b * T_ + p) * H + j] : T(0));
        dz[j] = g * activation_grad_from_output(a.activation, h[b * H + j]);
      }
      for (index_t k = 0; k < H; ++k) {
        T s = 0;
        for (index_t j = 0; j < H; ++j) s += dz[j] * a.recurrent_kernel[k * H + j];
        next[b * H + k] = s;
      }
      for (index_t i = 0; i < I; ++i) {
        T s = 0;
        for (index_t j = 0; j < H; ++j) {
          a.d_kernel[i * H + j] += a.x[(b * T_ + t) * I + i] * dz[j];
          s += dz[j] * a.kernel[i * H + j];
        }
        a.dx[(b * T_ + t) * I + i] = s;
      }
      for (index_t k = 0; k < H; ++k)
        for (index_t j = 0; j < H; ++j) a.d_recurrent_kernel[k * H + j] += hp[b * H + k] * dz[j];
      if (a.d_bias)
        for (index_t j = 0; j < H; ++j) a.d_bias[j] += dz[j];
    }
    dh.swap(next);
  }
  std::copy(dh.begin(), dh.end(), a.d_h0);
}

template void simple_rnn_backward<float>(const SimpleRnnBackward<float>&);
template void simple_rnn_backward<double>(const SimpleRnnBackward<double>&);
template void simple_rnn_backward_naive<float>(const SimpleRnnBackward<float>&);
template void simple_rnn_backward_naive<double>(const SimpleRnnBackward<double>&);

}  // namespace rnnkit
