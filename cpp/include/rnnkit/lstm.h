// LSTM cell (Keras gate order i, f, c, o; states [h, c]):
//   z = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias,  i = ract(z_i), f = ract(z_f),
//   g = act(z_c), o = ract(z_o),  c_t = f * c_{t-1} + i * g,  h_t = o * act(c_t).
#pragma once

#include <cstdint>

#include "rnnkit/common.h"

namespace rnnkit {

template <class T>
class WeightPack;

template <class T>
struct LstmForward {
  index_t batch = 0, steps = 0, input_size = 0, units = 0;  // B, T, I, H
  const T* x = nullptr;                 // (B, T, I)
  const T* kernel = nullptr;            // (I, 4H)
  const T* recurrent_kernel = nullptr;  // (H, 4H)
  const T* bias = nullptr;              // (4H) or null
  const T* h0 = nullptr;                // (B, H) or null (zeros)
  const T* c0 = nullptr;                // (B, H) or null (zeros)
  const std::uint8_t* mask = nullptr;   // (B, T) input time order, or null
  Activation activation = Activation::kTanh;
  Activation recurrent_activation = Activation::kSigmoid;
  bool go_backwards = false;
  // zoneout keep weights (B, T, H) input time order, or null: h_t = kh ⊙ h_{t-1} + (1 - kh) ⊙ y_t and
  // c_t = kc ⊙ c_{t-1} + (1 - kc) ⊙ c'_t, with y_t = o ⊙ act(c'_t) the cell's own new states
  const T* zoneout_h = nullptr;
  const T* zoneout_c = nullptr;
  // outputs (overwritten):
  T* outputs = nullptr;   // (B, T, H) processing order, or null
  T* h_last = nullptr;    // (B, H)
  T* c_last = nullptr;    // (B, H)
  // training cache (all null for inference):
  T* h_states = nullptr;  // (T+1, B, H) time-major, [0] = h0
  T* c_states = nullptr;  // (T+1, B, H) time-major, [0] = c0
  T* gates = nullptr;     // (T, B, 4H) activated gates i, f, g, o
  T* c_cell = nullptr;    // (T, B, H) c'_t before zoneout (training with zoneout_c), or null
  // inference: kernel and recurrent_kernel already packed (they must be the pack's sources), or null
  const WeightPack<T>* pack = nullptr;
};

template <class T>
struct LstmBackward {
  index_t batch = 0, steps = 0, input_size = 0, units = 0;  // B, T, I, H
  const T* d_outputs = nullptr;         // (B, T, H) or null
  const T* d_h_last = nullptr;          // (B, H) or null
  const T* d_c_last = nullptr;          // (B, H) or null
  const T* x = nullptr;                 // (B, T, I)
  const T* kernel = nullptr;            // (I, 4H)
  const T* recurrent_kernel = nullptr;  // (H, 4H)
  const T* h_states = nullptr;          // (T+1, B, H) from forward
  const T* c_states = nullptr;          // (T+1, B, H) from forward
  const T* gates = nullptr;             // (T, B, 4H) from forward
  const T* zoneout_h = nullptr;         // (B, T, H) the forward's keep weights, or null
  const T* zoneout_c = nullptr;         // (B, T, H) or null
  const T* c_cell = nullptr;            // (T, B, H) from forward (with zoneout_c), or null
  const std::uint8_t* mask = nullptr;   // (B, T) or null
  Activation activation = Activation::kTanh;
  Activation recurrent_activation = Activation::kSigmoid;
  bool go_backwards = false;
  // outputs (overwritten):
  T* dx = nullptr;                  // (B, T, I)
  T* d_kernel = nullptr;            // (I, 4H)
  T* d_recurrent_kernel = nullptr;  // (H, 4H)
  T* d_bias = nullptr;              // (4H) or null
  T* d_h0 = nullptr;                // (B, H)
  T* d_c0 = nullptr;                // (B, H)
};

template <class T> void lstm_forward(const LstmForward<T>& args);
template <class T> void lstm_backward(const LstmBackward<T>& args);

}  // namespace rnnkit
