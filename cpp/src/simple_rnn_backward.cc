// SimpleRNN backpropagation through time.
//
// Reverse loop (serial in time, parallel over this thread's columns of H):
//   1. g = dh_t + d_outputs_t (valid rows);  dZ_t = g * act'(h_t)  (zero at masked steps)
//   2. dh_{t-1} = dZ_t @ recurrent_kernel^T  (GEMM on this thread's columns; masked rows pass dh_t)
//   3. one barrier per step: the next GEMM reads every column of dZ_{t-1}
// After the loop, three GEMMs over all (T x B) rows and one column sum:
//   d_kernel = X^T dZ,  d_recurrent_kernel = H_prev^T dZ,  dx = dZ kernel^T,  d_bias = sum dZ.
#include <algorithm>
#include <cstring>
#include <vector>

#include "rnnkit/gemm.h"
#include "rnnkit/sequence.h"
#include "rnnkit/simple_rnn.h"
#include "rnnkit/threading.h"

namespace rnnkit {

template <class T>
void simple_rnn_backward(const SimpleRnnBackward<T>& a) {
  const index_t B = a.batch, T_ = a.steps, I = a.input_size, H = a.units;
  const int nt_all = get_num_threads();
  if (B == 0 || T_ == 0) {
    std::fill(a.dx, a.dx + B * T_ * I, T(0));
    std::fill(a.d_kernel, a.d_kernel + I * H, T(0));
    std::fill(a.d_recurrent_kernel, a.d_recurrent_kernel + H * H, T(0));
    if (a.d_bias) std::fill(a.d_bias, a.d_bias + H, T(0));
    for (index_t i = 0; i < B * H; ++i) a.d_h0[i] = a.d_h_last ? a.d_h_last[i] : T(0);
    return;
  }
  const Kernels<T>& ker = kernels<T>();
  const int nt = recurrent_threads(2.0 * B * H * H, H, ker.nr);

  PackedB<T> recurrent_t;  // recurrent_kernel^T (H x H), packed once
  packed_b_prepare(recurrent_t, H, H, 1);
  Buffer<T> dz(T_ * B * H);       // dZ, time-major (T, B, H), processing order
  Buffer<T> dh(2 * B * H);        // ping-pong dh_t
  const MatView<const T> recurrent_tv = row_major(a.recurrent_kernel, H, H, H).t();

  // 1. for processing step p and columns [c0, c1): dz_p from dh (gradient w.r.t. h_p).
  auto pointwise = [&](index_t p, const T* dh_p, index_t c0, index_t c1) {
    const index_t t = time_index(p, T_, a.go_backwards);
    const T* h = a.states + (p + 1) * B * H;
    T* z = dz.data() + p * B * H;
    for (index_t b = 0; b < B; ++b) {
      const bool valid = !a.mask || a.mask[b * T_ + t];
      T* zr = z + b * H;
      if (!valid) {
        std::fill(zr + c0, zr + c1, T(0));
        continue;
      }
      const T* g = dh_p + b * H;
      const T* dout = a.d_outputs ? a.d_outputs + (b * T_ + p) * H : nullptr;
      const T* hr = h + b * H;
      for (index_t j = c0; j < c1; ++j)
        zr[j] = (g[j] + (dout ? dout[j] : T(0))) * activation_grad_from_output(a.activation, hr[j]);
    }
  };

  parallel(nt, [&](int tid, int n_threads) {
    packed_b_fill(recurrent_t, recurrent_tv, tid, n_threads);
    index_t q0, q1;
    split_range(recurrent_t.panels, 1, tid, n_threads, &q0, &q1);
    const index_t c0 = std::min(H, q0 * ker.nr), c1 = std::min(H, q1 * ker.nr);
    T* a_work = packed_a_workspace<T>();
    T* dh_cur = dh.data();
    T* dh_next = dh.data() + B * H;
    for (index_t b = 0; b < B; ++b)
      for (index_t j = c0; j < c1; ++j) dh_cur[b * H + j] = a.d_h_last ? a.d_h_last[b * H + j] : T(0);
    pointwise(T_ - 1, dh_cur, c0, c1);
    barrier();
    for (index_t p = T_ - 1; p >= 0; --p) {
      // 2. dh_{p-1} = dz_p @ R^T on this thread's columns
      gemm_packed(row_major<const T>(dz.data() + p * B * H, B, H, H), recurrent_t, q0, q1,
                  row_major(dh_next, B, H, H), false, a_work);
      if (a.mask) {
        const index_t t = time_index(p, T_, a.go_backwards);
        for (index_t b = 0; b < B; ++b)
          if (!a.mask[b * T_ + t])
            std::memcpy(dh_next + b * H + c0, dh_cur + b * H + c0, (c1 - c0) * sizeof(T));
      }
      if (p > 0) pointwise(p - 1, dh_next, c0, c1);
      std::swap(dh_cur, dh_next);
      barrier();  // 3.
    }
    for (index_t b = 0; b < B; ++b)
      std::memcpy(a.d_h0 + b * H + c0, dh_cur + b * H + c0, (c1 - c0) * sizeof(T));
  });

  // After the loop: the big GEMMs over all T*B rows.
  const MatView<const T> dz_all = row_major<const T>(dz.data(), T_ * B, H, H);
  const MatView<const T> x_rows = sequence_rows(a.x, B, T_, I, 0, T_, a.go_backwards);
  const MatView<const T> h_prev = row_major(a.states, T_ * B, H, H);
  gemm<T>(x_rows.t(), dz_all, row_major(a.d_kernel, I, H, H), false, nt_all);
  gemm<T>(h_prev.t(), dz_all, row_major(a.d_recurrent_kernel, H, H, H), false, nt_all);
  T* dx_base = a.dx;
  std::fill(a.dx, a.dx + B * T_ * I, T(0));  // fully overwritten; cleared for I == 0 paths
  gemm<T>(dz_all, row_major(a.kernel, I, H, H).t(), sequence_rows(dx_base, B, T_, I, 0, T_, a.go_backwards),
          false, nt_all);
  if (a.d_bias) column_sums(dz.data(), T_ * B, H, a.d_bias);
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
