// SimpleRNN forward over a sequence.
//
// 1. pack kernel and recurrent_kernel once (panel layout of the micro-kernel)
// 2. input projection for a chunk of steps: P = x_chunk @ kernel, one GEMM over (steps x B) rows
// 3. per step: P_t += h_{t-1} @ recurrent_kernel (GEMM on this thread's columns), then the fused
//    epilogue on the same columns: h_t = act(P_t + bias), masked rows keep h_{t-1}, output row
// 4. one barrier per step publishes h_t; a thread owns the same columns for the whole sequence.
#include <algorithm>
#include <cstring>
#include <vector>

#include "rnnkit/gemm.h"
#include "rnnkit/sequence.h"
#include "rnnkit/simple_rnn.h"
#include "rnnkit/threading.h"

namespace rnnkit {

template <class T>
void simple_rnn_forward(const SimpleRnnForward<T>& a) {
  const index_t B = a.batch, T_ = a.steps, I = a.input_size, H = a.units;
  if (B == 0) return;
  if (T_ == 0) {
    for (index_t i = 0; i < B * H; ++i) a.h_last[i] = a.h0 ? a.h0[i] : T(0);
    if (a.states)
      for (index_t i = 0; i < B * H; ++i) a.states[i] = a.h0 ? a.h0[i] : T(0);
    return;
  }
  const Kernels<T>& ker = kernels<T>();
  const int nt = recurrent_threads(2.0 * B * H * (H + I), H, ker.nr);

  // Workspaces, sized once: packed weights, one chunk of projections, ping-pong states.
  PackedB<T> kernel_p, recurrent_p;
  packed_b_prepare(kernel_p, I, H, 1);
  packed_b_prepare(recurrent_p, H, H, 1);
  const index_t chunk = std::max<index_t>(1, std::min<index_t>(T_, (512 + B - 1) / B));
  Buffer<T> proj(chunk * B * H);
  Buffer<T> pingpong(a.states ? 1 : 2 * B * H);
  T* state0 = a.states ? a.states : pingpong.data();
  if (a.h0)
    std::memcpy(state0, a.h0, B * H * sizeof(T));
  else
    std::memset(state0, 0, B * H * sizeof(T));
  auto state = [&](index_t p) -> T* {  // state after p steps
    return a.states ? a.states + p * B * H : pingpong.data() + (p & 1) * B * H;
  };

  const MatView<const T> kernel_v = row_major(a.kernel, I, H, H);
  const MatView<const T> recurrent_v = row_major(a.recurrent_kernel, H, H, H);

  parallel(nt, [&](int tid, int n_threads) {
    packed_b_fill(kernel_p, kernel_v, tid, n_threads);
    packed_b_fill(recurrent_p, recurrent_v, tid, n_threads);
    barrier();
    index_t q0, q1;
    split_range(recurrent_p.panels, 1, tid, n_threads, &q0, &q1);
    const index_t c0 = std::min(H, q0 * ker.nr), c1 = std::min(H, q1 * ker.nr), nc = c1 - c0;
    T* a_work = packed_a_workspace<T>();

    for (index_t p0 = 0; p0 < T_; p0 += chunk) {
      const index_t steps = std::min(chunk, T_ - p0);
      // 2. P[(p - p0) * B + b, :] = x[b, t(p), :] @ kernel   (this thread's columns)
      const MatView<const T> xs = sequence_rows(a.x, B, T_, I, p0, steps, a.go_backwards);
      gemm_packed(xs, kernel_p, q0, q1, row_major(proj.data(), steps * B, H, H), false,
                  a_work);
      for (index_t p = p0; p < p0 + steps; ++p) {
        T* pre = proj.data() + (p - p0) * B * H;
        const T* h_prev = state(p);
        T* h_next = state(p + 1);
        // 3. pre += h_{t-1} @ recurrent_kernel
        gemm_packed(row_major<const T>(h_prev, B, H, H), recurrent_p, q0, q1,
                    row_major(pre, B, H, H), true, a_work);
        // epilogue on columns [c0, c1): h_t = act(pre + bias); masked rows carry the state
        const index_t t = time_index(p, T_, a.go_backwards);
        for (index_t b = 0; b < B && nc > 0; ++b) {
          T* z = pre + b * H + c0;
          T* h = h_next + b * H + c0;
          const bool valid = !a.mask || a.mask[b * T_ + t];
          if (valid) {
            if (a.bias)
              for (index_t j = 0; j < nc; ++j) z[j] += a.bias[c0 + j];
            ker.activation(a.activation, z, h, nc);
          } else {
            std::memcpy(h, h_prev + b * H + c0, nc * sizeof(T));
          }
          if (a.outputs) {
            T* o = a.outputs + (b * T_ + p) * H + c0;
            if (valid)
              std::memcpy(o, h, nc * sizeof(T));
            else
              std::memset(o, 0, nc * sizeof(T));
          }
        }
        barrier();  // 4. publish h_t
      }
    }
  });
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
