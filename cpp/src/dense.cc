// Dense forward / backward (dense.h) and their naive twins.
#include "rnnkit/dense.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "rnnkit/gemm.h"
#include "rnnkit/kernels.h"
#include "rnnkit/sequence.h"
#include "rnnkit/threading.h"
#include "rnnkit/tuning.h"

namespace rnnkit {

template <class T>
void dense_forward(const DenseForward<T>& a) {
  const index_t N = a.rows, I = a.input_size, U = a.units;
  if (N == 0 || U == 0) return;
  const int nt = gemm_threads(2.0 * double(N) * double(I) * double(U), get_num_threads());
  gemm<T>(row_major(a.x, N, I, I), row_major(a.kernel, I, U, U), row_major(a.y, N, U, U), false, nt);
  if (!a.bias && a.activation == Activation::kLinear) return;
  // the epilogue on each row, rows split over the threads (a pass over y, while it is in cache)
  const Kernels<T>& ker = kernels<T>();
  const int nt_rows = gemm_threads(8.0 * double(N) * double(U), get_num_threads());
  parallel(static_cast<int>(std::min<index_t>(nt_rows, N)), [&](int tid, int n_threads) {
    index_t r0, r1;
    split_range(N, 1, tid, n_threads, &r0, &r1);
    for (index_t i = r0; i < r1; ++i) {
      T* row = a.y + i * U;
      if (a.bias)
        for (index_t j = 0; j < U; ++j) row[j] += a.bias[j];
      if (a.activation != Activation::kLinear) ker.activation(a.activation, row, row, U);
    }
  });
}

template <class T>
void dense_backward(const DenseBackward<T>& a) {
  const index_t N = a.rows, I = a.input_size, U = a.units;
  // dz = dy * act'(y)
  const T* dz = a.d_y;
  if (a.activation != Activation::kLinear) {
    for (index_t e = 0; e < N * U; ++e) a.dz[e] = a.d_y[e] * activation_grad_from_output(a.activation, a.y[e]);
    dz = a.dz;
  }
  const int nt = get_num_threads();
  if (N == 0) {
    std::fill(a.d_kernel, a.d_kernel + I * U, T(0));
    if (a.d_bias) std::fill(a.d_bias, a.d_bias + U, T(0));
    return;
  }
  // dx = dz @ kernel^T
  gemm<T>(row_major(dz, N, U, U), row_major(a.kernel, I, U, U).t(), row_major(a.dx, N, I, I), false,
          gemm_threads(2.0 * double(N) * double(I) * double(U), nt));
  // d_kernel = x^T dz and d_bias = column sums of dz, summed over the N rows in one pass
  const GemmJob<T> job{row_major(a.x, N, I, I).t(), row_major(dz, N, U, U), row_major(a.d_kernel, I, U, U),
                       false, a.d_bias};
  gemm_sum_k(&job, 1, nt);
}

namespace {
template <class T>
T activate_naive(Activation act, T v) {
  switch (act) {
    case Activation::kTanh: return std::tanh(v);
    case Activation::kSigmoid: return T(1) / (T(1) + std::exp(-v));
    case Activation::kRelu: return v > T(0) ? v : T(0);
    case Activation::kHardSigmoid: return std::min(T(1), std::max(T(0), v / T(6) + T(0.5)));
    case Activation::kLinear: default: return v;
  }
}
}  // namespace

template <class T>
void dense_forward_naive(const DenseForward<T>& a) {
  for (index_t i = 0; i < a.rows; ++i)
    for (index_t j = 0; j < a.units; ++j) {
      T s = a.bias ? a.bias[j] : T(0);
      for (index_t k = 0; k < a.input_size; ++k) s += a.x[i * a.input_size + k] * a.kernel[k * a.units + j];
      a.y[i * a.units + j] = activate_naive(a.activation, s);
    }
}

template <class T>
void dense_backward_naive(const DenseBackward<T>& a) {
  const index_t N = a.rows, I = a.input_size, U = a.units;
  for (index_t e = 0; e < N * U; ++e) a.dz[e] = a.d_y[e] * activation_grad_from_output(a.activation, a.y[e]);
  for (index_t i = 0; i < N; ++i)
    for (index_t k = 0; k < I; ++k) {
      T s = 0;
      for (index_t j = 0; j < U; ++j) s += a.dz[i * U + j] * a.kernel[k * U + j];
      a.dx[i * I + k] = s;
    }
  for (index_t k = 0; k < I; ++k)
    for (index_t j = 0; j < U; ++j) {
      T s = 0;
      for (index_t i = 0; i < N; ++i) s += a.x[i * I + k] * a.dz[i * U + j];
      a.d_kernel[k * U + j] = s;
    }
  if (a.d_bias)
    for (index_t j = 0; j < U; ++j) {
      T s = 0;
      for (index_t i = 0; i < N; ++i) s += a.dz[i * U + j];
      a.d_bias[j] = s;
    }
}

template void dense_forward<float>(const DenseForward<float>&);
template void dense_forward<double>(const DenseForward<double>&);
template void dense_backward<float>(const DenseBackward<float>&);
template void dense_backward<double>(const DenseBackward<double>&);
template void dense_forward_naive<float>(const DenseForward<float>&);
template void dense_forward_naive<double>(const DenseForward<double>&);
template void dense_backward_naive<float>(const DenseBackward<float>&);
template void dense_backward_naive<double>(const DenseBackward<double>&);

}  // namespace rnnkit
