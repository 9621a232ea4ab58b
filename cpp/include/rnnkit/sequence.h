// Helpers shared by the cells: views of batch-major sequences in processing order, and the
// derivative of an activation expressed through its output (haste's d_tanh(tanh_output) habit).
#pragma once

#include <algorithm>
#include <cstdint>

#include "rnnkit/common.h"

namespace rnnkit {

// Input-time index of processing step p (go_backwards reverses the time axis first).
inline index_t time_index(index_t p, index_t steps, bool go_backwards) {
  return go_backwards ? steps - 1 - p : p;
}

// Rows (p, b) of a batch-major sequence `seq` (B, T, F), for processing steps [p0, p0 + n_steps),
// ordered time-major (row = (p - p0) * B + b). A two-level, possibly reversed, view: no copy.
template <class T>
MatView<T> sequence_rows(T* seq, index_t B, index_t T_, index_t F, index_t p0, index_t n_steps,
                         bool go_backwards) {
  const index_t t0 = time_index(p0, T_, go_backwards);
  const index_t dir = go_backwards ? -1 : 1;
  return MatView<T>{seq + t0 * F, Axis::blocked(n_steps * B, B, T_ * F, dir * F), Axis::plain(F, 1)};
}

// Row b (n values) of a batch-major (B, T, n) array in input time order at processing step p;
// null stays null (an optional per-step input, e.g. zoneout keep weights).
template <class T>
const T* row_at_step(const T* a, index_t b, index_t p, index_t steps, index_t n, bool go_backwards) {
  return a ? a + (b * steps + time_index(p, steps, go_backwards)) * n : nullptr;
}

// d act(z) / dz written through y = act(z).
template <class T>
inline T activation_grad_from_output(Activation act, T y) {
  switch (act) {
    case Activation::kTanh: return T(1) - y * y;
    case Activation::kSigmoid: return y * (T(1) - y);
    case Activation::kRelu: return y > T(0) ? T(1) : T(0);
    case Activation::kHardSigmoid: return (y > T(0) && y < T(1)) ? T(1) / T(6) : T(0);
    case Activation::kLinear: default: return T(1);
  }
}

}  // namespace rnnkit
