// SimpleRNN (Elman) cell: h_t = act(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel).
// Forward and BPTT over a whole sequence; math as in docs/SPEC.md §4.
#pragma once

#include <cstdint>

#include "rnnkit/common.h"

namespace rnnkit {

template <class T>
class WeightPack;

template <class T>
struct SimpleRnnForward {
  index_t batch = 0, steps = 0, input_size = 0, units = 0;  // B, T, I, H
  const T* x = nullptr;                 // (B, T, I)
  const T* kernel = nullptr;            // (I, H)
  const T* recurrent_kernel = nullptr;  // (H, H)
  const T* bias = nullptr;              // (H) or null
  const T* h0 = nullptr;                // (B, H) or null (zeros)
  const std::uint8_t* mask = nullptr;   // (B, T) input time order, nonzero = step used; null = all
  Activation activation = Activation::kTanh;
  bool go_backwards = false;
  // zoneout keep weights kh (B, T, H) input time order, or null: h_t = kh ⊙ h_{t-1} + (1 - kh) ⊙ y_t
  // with y_t = act(...) the cell's own new state
  const T* zoneout_h = nullptr;
  // outputs (overwritten):
  T* outputs = nullptr;  // (B, T, H) processing order, zero rows at masked steps; or null
  T* h_last = nullptr;   // (B, H) state after the last valid step
  T* states = nullptr;   // (T+1, B, H) time-major processing order, states[0] = h0; or null (inference)
  T* y_cell = nullptr;   // (T, B, H) y_t before zoneout (training with zoneout_h), or null
  // inference: kernel and recurrent_kernel already packed (they must be the pack's sources), or null
  const WeightPack<T>* pack = nullptr;
};

template <class T>
struct SimpleRnnBackward {
  index_t batch = 0, steps = 0, input_size = 0, units = 0;  // B, T, I, H
  const T* d_outputs = nullptr;         // (B, T, H) processing order, or null (zero)
  const T* d_h_last = nullptr;          // (B, H) or null (zero)
  const T* x = nullptr;                 // (B, T, I) as given to forward
  const T* kernel = nullptr;            // (I, H)
  const T* recurrent_kernel = nullptr;  // (H, H)
  const T* states = nullptr;            // (T+1, B, H) from forward
  const T* zoneout_h = nullptr;         // (B, T, H) the forward's keep weights, or null
  const T* y_cell = nullptr;            // (T, B, H) from forward (with zoneout_h), or null
  const std::uint8_t* mask = nullptr;   // (B, T) or null
  Activation activation = Activation::kTanh;
  bool go_backwards = false;
  // outputs (overwritten):
  T* dx = nullptr;                  // (B, T, I)
  T* d_kernel = nullptr;            // (I, H)
  T* d_recurrent_kernel = nullptr;  // (H, H)
  T* d_bias = nullptr;              // (H) or null (no bias)
  T* d_h0 = nullptr;                // (B, H)
};

template <class T> void simple_rnn_forward(const SimpleRnnForward<T>& args);
template <class T> void simple_rnn_backward(const SimpleRnnBackward<T>& args);

// Naive twins: one plain loop per formula, no packing, no threads (tests compare against them).
template <class T> void simple_rnn_forward_naive(const SimpleRnnForward<T>& args);
template <class T> void simple_rnn_backward_naive(const SimpleRnnBackward<T>& args);

}  // namespace rnnkit
