// Shared vocabulary of the rnnkit C++ core.
//
// Shape letters (one glossary for the whole code base): B batch, T time steps, I input features,
// H units, G gates per cell (SimpleRNN 1, GRU 3, LSTM 4). Arrays are row-major. Sequences handed in
// by users are batch-major (B,T,·); workspaces kept for BPTT are time-major (T,B,·) so that one step
// is a contiguous (B,·) matrix and "all steps" is one (T·B,·) matrix for the weight-gradient GEMMs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <stdexcept>

namespace rnnkit {

using index_t = std::ptrdiff_t;

// One axis of a matrix view. Element i of the axis sits at offset
//   (i / inner) * outer_stride + (i % inner) * stride
// which covers plain strided axes (inner >= n) and the two-level "rows are (b, t) pairs" axes that
// let one GEMM read a batch-major sequence in time-major order (or reversed, with a negative stride).
struct Axis {
  index_t n = 0;             // length
  index_t stride = 1;        // step between consecutive elements inside a block
  index_t inner = 0;         // block length (0 or >= n: a plain strided axis)
  index_t outer_stride = 0;  // step between blocks

  static Axis plain(index_t n, index_t stride) { return Axis{n, stride, 0, 0}; }
  static Axis blocked(index_t n, index_t inner, index_t stride, index_t outer_stride) {
    return Axis{n, stride, inner, outer_stride};
  }
  bool is_plain() const { return inner <= 0 || inner >= n; }
  index_t offset(index_t i) const {
    return is_plain() ? i * stride : (i / inner) * outer_stride + (i % inner) * stride;
  }
};

// A (rows x cols) matrix view over memory owned elsewhere.
template <class T>
struct MatView {
  T* data = nullptr;
  Axis rows, cols;
  index_t nrows() const { return rows.n; }
  index_t ncols() const { return cols.n; }
  T* at(index_t i, index_t j) const { return data + rows.offset(i) + cols.offset(j); }
  MatView<T> t() const { return MatView<T>{data, cols, rows}; }  // transpose (no copy)
};

// Plain row-major (rows x cols) view with leading dimension ld.
template <class T>
MatView<T> row_major(T* data, index_t rows, index_t cols, index_t ld) {
  return MatView<T>{data, Axis::plain(rows, ld), Axis::plain(cols, 1)};
}

// 64-byte aligned blocks for workspaces. Small blocks are recycled through a per-thread cache, so
// a call on a tiny problem (where malloc/free would be a visible share of the time) allocates
// nothing after the first; large blocks go straight back to the system.
void* workspace_alloc(std::size_t bytes);
void workspace_free(void* p, std::size_t bytes);
// Page-aligned blocks from the process-wide cache of large blocks (thread-safe; up to
// RNNKIT_CACHE_MB MiB of freed blocks are kept, default 1024, the oldest evicted first). workspace_alloc uses it above 1 MiB;
// the Python module allocates its large result arrays from it. Free with the size allocated.
void* large_alloc(std::size_t bytes);
void large_free(void* p, std::size_t bytes);
// Returns every cached large block to the system.
void release_cached_blocks();
// Bytes of freed large blocks the cache holds now.
std::size_t cached_block_bytes();

// Uninitialised storage for workspaces (allocated once per call, never per step).
template <class T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(index_t n) { resize(n); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { release(); }
  void resize(index_t n) {
    if (n <= capacity_) return;
    release();
    bytes_ = static_cast<std::size_t>(n > 0 ? n : 1) * sizeof(T);
    ptr_ = static_cast<T*>(workspace_alloc(bytes_));
    capacity_ = n;
  }
  T* data() const { return ptr_; }
  index_t capacity() const { return capacity_; }

 private:
  void release() {
    if (ptr_) workspace_free(ptr_, bytes_);
    ptr_ = nullptr;
    capacity_ = 0;
  }
  T* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  index_t capacity_ = 0;
};

enum class Activation : int { kLinear = 0, kTanh = 1, kSigmoid = 2, kRelu = 3, kHardSigmoid = 4 };

// Parses "linear" | "tanh" | "sigmoid" | "relu" | "hard_sigmoid"; throws std::invalid_argument.
Activation parse_activation(const char* name);
const char* activation_name(Activation a);

}  // namespace rnnkit
