// Dense (fully connected) layer: y = act(x @ kernel + bias), with its backward.
// Forward: one packed GEMM, then the bias + activation epilogue on each row (rows split over
// threads). Backward: dz = dy * act'(y) (written through y), dx = dz @ kernel^T, and d_kernel = x^T dz
// with d_bias = column sums of dz as one gemm_sum_k job (the bias from the packed panels).
#pragma once

#include "rnnkit/common.h"

namespace rnnkit {

template <class T>
struct DenseForward {
  index_t rows = 0, input_size = 0, units = 0;  // N, I, U
  const T* x = nullptr;       // (N, I)
  const T* kernel = nullptr;  // (I, U)
  const T* bias = nullptr;    // (U) or null
  Activation activation = Activation::kLinear;
  T* y = nullptr;             // (N, U) out
};

template <class T>
struct DenseBackward {
  index_t rows = 0, input_size = 0, units = 0;  // N, I, U
  const T* d_y = nullptr;     // (N, U)
  const T* x = nullptr;       // (N, I) from forward
  const T* kernel = nullptr;  // (I, U)
  const T* y = nullptr;       // (N, U) from forward (act' is written through y)
  Activation activation = Activation::kLinear;
  // outputs (overwritten):
  T* dx = nullptr;        // (N, I)
  T* d_kernel = nullptr;  // (I, U)
  T* d_bias = nullptr;    // (U) or null
  T* dz = nullptr;        // (N, U) scratch for the pre-activation gradient (unused when linear;
                          // the naive twin always needs it)
};

template <class T> void dense_forward(const DenseForward<T>& args);
template <class T> void dense_backward(const DenseBackward<T>& args);
// The naive twins (loops, scalar activations) the tests compare against.
template <class T> void dense_forward_naive(const DenseForward<T>& args);
template <class T> void dense_backward_naive(const DenseBackward<T>& args);

}  // namespace rnnkit
