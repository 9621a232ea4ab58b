// GRU cell (Keras gate order z, r, h), reset_after=True (Keras 3 / PyTorch / cuDNN variant):
//   xz, xr, xh = split(x_t @ kernel + bias[0]);  mz, mr, mh = split(h_{t-1} @ recurrent_kernel + bias[1])
//   z = ract(xz + mz), r = ract(xr + mr), hh = act(xh + r * mh), h_t = z * h_{t-1} + (1 - z) * hh
// reset_after=False (bias (3H,), no recurrent bias):
//   hh = act(xh + bias_h + (r * h_{t-1}) @ recurrent_kernel_h)
#pragma once

#include <cstdint>

#include "rnnkit/common.h"

namespace rnnkit {

template <class T>
class WeightPack;

template <class T>
struct GruForward {
  index_t batch = 0, steps = 0, input_size = 0, units = 0;  // B, T, I, H
  const T* x = nullptr;                 // (B, T, I)
  const T* kernel = nullptr;            // (I, 3H)
  const T* recurrent_kernel = nullptr;  // (H, 3H)
  const T* bias = nullptr;              // reset_after: (2, 3H); else (3H); or null
  const T* h0 = nullptr;                // (B, H) or null (zeros)
  const std::uint8_t* mask = nullptr;   // (B, T) input time order, or null
  Activation activation = Activation::kTanh;
  Activation recurrent_activation = Activation::kSigmoid;
  bool reset_after = true;
  bool go_backwards = false;
  // zoneout keep weights kh (B, T, H) input time order, or null: the state becomes
  // h_t = kh ⊙ h_{t-1} + (1 - kh) ⊙ y_t (y_t the cell's new state; 0/1 in training, the rate at inference)
  const T* zoneout_h = nullptr;
  // outputs (overwritten):
  T* outputs = nullptr;  // (B, T, H) processing order, or null
  T* h_last = nullptr;   // (B, H)
  // training cache (all null for inference):
  T* states = nullptr;   // (T+1, B, H) time-major, [0] = h0
  T* gates = nullptr;    // (T, B, 3H) z, r, hh
  T* extra = nullptr;    // (T, B, H) reset_after: mh = (h_{t-1} @ R_h + bias[1]_h); else r * h_{t-1}
  // inference: kernel and recurrent_kernel already packed (they must be the pack's sources), or null
  const WeightPack<T>* pack = nullptr;
};

template <class T>
struct GruBackward {
  index_t batch = 0, steps = 0, input_size = 0, units = 0;  // B, T, I, H
  const T* d_outputs = nullptr;         // (B, T, H) or null
  const T* d_h_last = nullptr;          // (B, H) or null
  const T* x = nullptr;                 // (B, T, I)
  const T* kernel = nullptr;            // (I, 3H)
  const T* recurrent_kernel = nullptr;  // (H, 3H)
  const T* states = nullptr;            // (T+1, B, H) from forward
  const T* gates = nullptr;             // (T, B, 3H) from forward
  const T* extra = nullptr;             // (T, B, H) from forward
  const std::uint8_t* mask = nullptr;   // (B, T) or null
  Activation activation = Activation::kTanh;
  Activation recurrent_activation = Activation::kSigmoid;
  bool reset_after = true;
  bool go_backwards = false;
  const T* zoneout_h = nullptr;     // (B, T, H) the forward's zoneout keep weights, or null
  // outputs (overwritten):
  T* dx = nullptr;                  // (B, T, I)
  T* d_kernel = nullptr;            // (I, 3H)
  T* d_recurrent_kernel = nullptr;  // (H, 3H)
  T* d_bias = nullptr;              // like bias, or null
  T* d_h0 = nullptr;                // (B, H)
};

template <class T> void gru_forward(const GruForward<T>& args);
template <class T> void gru_backward(const GruBackward<T>& args);

}  // namespace rnnkit
