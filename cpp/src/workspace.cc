// The per-thread cache behind Buffer: blocks up to 1 MiB, rounded up to a power of two, are kept
// (a few per size class) for reuse by the next call on the same thread.
#include <cstdlib>
#include <new>

#include "rnnkit/common.h"

namespace rnnkit {
namespace {

constexpr int kMinShift = 6, kMaxShift = 20, kPerClass = 4;

// Set when the thread's cache has been destroyed: thread_local Buffers destroyed after it (their
// destruction order is not ours to choose) then free straight to the system.
thread_local bool g_cache_gone = false;

struct Cache {
  void* blocks[kMaxShift + 1][kPerClass] = {};
  int count[kMaxShift + 1] = {};
  ~Cache() {
    for (int c = 0; c <= kMaxShift; ++c)
      for (int i = 0; i < count[c]; ++i) std::free(blocks[c][i]);
    g_cache_gone = true;
  }
};
thread_local Cache g_cache;

int size_class(std::size_t bytes) {
  int shift = kMinShift;
  while ((std::size_t(1) << shift) < bytes) ++shift;
  return shift;
}

}  // namespace

void* workspace_alloc(std::size_t bytes) {
  const int c = size_class(bytes);
  if (c <= kMaxShift) {
    bytes = std::size_t(1) << c;  // every small block has its class's size, cached or not
    if (!g_cache_gone) {
      Cache& cache = g_cache;
      if (cache.count[c] > 0) return cache.blocks[c][--cache.count[c]];
    }
  } else {
    bytes = ((bytes + 63) / 64) * 64;
  }
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  return p;
}

void workspace_free(void* p, std::size_t bytes) {
  const int c = size_class(bytes);
  if (c <= kMaxShift && !g_cache_gone) {
    Cache& cache = g_cache;
    if (cache.count[c] < kPerClass) {
      cache.blocks[c][cache.count[c]++] = p;
      return;
    }
  }
  std::free(p);
}

}  // namespace rnnkit
