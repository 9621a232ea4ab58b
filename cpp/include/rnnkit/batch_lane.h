// The batch-lane forward: the recurrence for cells with few units.
//
// The GEMM machinery (recurrent.h) computes a step as (B, H) @ (H, G·H) with micro-tiles 32 columns
// wide and a cell pass per row; with H = 4 most of every tile and most lanes of every cell vector
// are padding. Here one vector holds one feature of VL batch rows instead (VL = the ISA's vector
// length), so a step is G·H·(I+H) broadcast FMAs per block of VL rows, the cell math runs on whole
// vectors whatever H is, and blocks of rows never interact: each thread walks its blocks through
// the whole sequence with no barrier. Results do not depend on the thread count.
//
// The cells' forward functions take this path when use_batch_lanes says so; the outputs and
// the training cache are the same arrays, in the same layouts, as on the GEMM path.
#pragma once

#include <cstdint>

#include "rnnkit/common.h"

namespace rnnkit {

enum class CellKind : int { kSimpleRnn = 0, kLstm = 1, kGru = 2 };
constexpr int gates_of(CellKind c) { return c == CellKind::kLstm ? 4 : c == CellKind::kGru ? 3 : 1; }

template <class T>
struct BatchLaneForward {
  CellKind cell = CellKind::kSimpleRnn;
  index_t batch = 0, steps = 0, input_size = 0, units = 0;  // B, T, I, H; G = 1 | 4 | 3 gates
  const T* x = nullptr;                 // (B, T, I)
  const T* kernel = nullptr;            // (I, G·H)
  const T* recurrent_kernel = nullptr;  // (H, G·H)
  const T* bias = nullptr;              // (G·H) input-side bias, or null
  const T* recurrent_bias = nullptr;    // (G·H) GRU reset_after: bias[1]; else null
  const T* h0 = nullptr;                // (B, H) or null (zeros)
  const T* c0 = nullptr;                // (B, H) LSTM, or null (zeros)
  const std::uint8_t* mask = nullptr;   // (B, T) input time order, nonzero = step used; or null
  Activation activation = Activation::kTanh;
  Activation recurrent_activation = Activation::kSigmoid;
  bool reset_after = true;              // GRU
  bool go_backwards = false;
  // outputs (overwritten):
  T* outputs = nullptr;   // (B, T, H) processing order, zero rows at masked steps; or null
  T* h_last = nullptr;    // (B, H)
  T* c_last = nullptr;    // (B, H) LSTM
  // training cache, as on the GEMM path (all null for inference):
  T* h_states = nullptr;  // (T+1, B, H)
  T* c_states = nullptr;  // (T+1, B, H) LSTM
  T* gates = nullptr;     // (T, B, G·H) activated gates (LSTM i f g o, GRU z r hh); unused for SimpleRNN
  T* extra = nullptr;     // (T, B, H) GRU: reset_after mh = h@R_h + recurrent_bias_h; else r·h_{t-1}
};

// Whether a forward of this shape runs on the batch-lane path. Auto: when a step's G·H columns fit
// in one 32-wide micro-tile (which is then mostly padding, and the cell pass per row mostly empty
// lanes) and the batch fills at least half of a vector's lanes, or the whole sequence is one
// vector's worth of rows (seed-tiny); measured in benchmarks/RESULTS.md ("batch-lane path").
// RNNKIT_BATCH_LANES=on|off or set_batch_lanes force a path (tests and benchmarks).
template <class T>
bool use_batch_lanes(CellKind cell, index_t batch, index_t steps, index_t units);
// 0 auto, 1 always, 2 never; returns the previous mode.
int set_batch_lanes(int mode);

// Runs the whole forward: blocks of VL rows spread over the threads (serial for small work).
template <class T>
void batch_lane_forward(const BatchLaneForward<T>& args);

// The fields every cell's forward argument struct shares (same names in SimpleRnnForward,
// LstmForward, GruForward), copied into a BatchLaneForward; the caller adds its cell's own.
template <class T, class CellArgs>
BatchLaneForward<T> batch_lane_args(CellKind cell, const CellArgs& a) {
  BatchLaneForward<T> f;
  f.cell = cell;
  f.batch = a.batch, f.steps = a.steps, f.input_size = a.input_size, f.units = a.units;
  f.x = a.x, f.kernel = a.kernel, f.recurrent_kernel = a.recurrent_kernel, f.bias = a.bias;
  f.h0 = a.h0, f.mask = a.mask, f.activation = a.activation, f.go_backwards = a.go_backwards;
  f.outputs = a.outputs, f.h_last = a.h_last;
  return f;
}

}  // namespace rnnkit
