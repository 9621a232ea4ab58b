// Weights packed once for many inference calls (serving: one request, or one time step, per call).
//
// run_forward packs kernel and recurrent_kernel into the micro-kernel's panel layout on every call
// unless it is handed a WeightPack: then the layouts below are made on first use and reused until
// the owner drops the pack because the weights changed (the Python layer does that on every route
// that changes its weights). A step of batch 1 then reads the packed weights and nothing else.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>

#include "rnnkit/gemm.h"

namespace rnnkit {

// kernel and recurrent_kernel in the micro-kernel's panel layout for one gate grouping.
template <class T>
struct PackedWeights {
  PackedB<T> kernel;     // (I, G·H)
  PackedB<T> recurrent;  // (H, G·H)
  const Kernels<T>* isa = nullptr;  // the kernel table whose panel width (nr) the layout uses
};

// Does not copy the weights: kernel and recurrent_kernel must stay alive and unchanged for the life
// of the pack (the Python wrapper holds them, read-only). Layouts are made per gate grouping (1:
// gates side by side; G: each gate block starting on a panel boundary, for a split by units) and per
// ISA (a forced ISA change repacks); requesting them from several threads at once is safe.
template <class T>
class WeightPack {
 public:
  WeightPack(index_t input_size, index_t units, int gates, const T* kernel, const T* recurrent_kernel)
      : input_size_(input_size), units_(units), gates_(gates), kernel_(kernel), recurrent_(recurrent_kernel) {}

  index_t input_size() const { return input_size_; }  // I
  index_t units() const { return units_; }            // H
  int gates() const { return gates_; }                // G
  const T* kernel() const { return kernel_; }                   // (I, G·H), the source
  const T* recurrent_kernel() const { return recurrent_; }      // (H, G·H), the source

  // The layout with `groups` gate groups (1 or G) for the active ISA, packed now if needed. The
  // caller keeps the pointer for the duration of its call (a concurrent repack makes a new one).
  std::shared_ptr<const PackedWeights<T>> get(index_t groups) const;
  // Bytes of the layouts made so far.
  std::size_t packed_bytes() const;

 private:
  index_t input_size_, units_;
  int gates_;
  const T* kernel_;
  const T* recurrent_;
  mutable std::mutex mu_;
  mutable std::shared_ptr<const PackedWeights<T>> layouts_[2];  // [0]: 1 group, [1]: G groups
};

}  // namespace rnnkit
