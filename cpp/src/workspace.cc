// The caches behind Buffer and the module's result arrays.
// - Small blocks (up to 1 MiB, rounded up to a power of two): per thread, a few per size class, for
//   the next call on the same thread (no lock).
// - Large blocks: one process-wide cache keyed by page-rounded size, up to RNNKIT_CACHE_MB (default
//   512) MiB of freed blocks. A fresh large block costs a page fault per 4 KiB on first touch (on
//   the development VM a quarter of a training forward at mnist-rows); a cached one costs nothing.
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#include <new>
#include <vector>

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

constexpr std::size_t kPage = 4096;

struct LargeCache {
  std::mutex mu;
  std::multimap<std::size_t, void*> blocks;  // page-rounded size -> block
  std::size_t cached = 0, limit = 0;
  LargeCache() {
    const char* env = std::getenv("RNNKIT_CACHE_MB");
    char* end = nullptr;
    const long mb = env && *env ? std::strtol(env, &end, 10) : -1;
    limit = (end && *end == '\0' && mb >= 0 ? std::size_t(mb) : std::size_t(512)) << 20;
  }
  ~LargeCache() { release(); }
  void release() {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& kv : blocks) std::free(kv.second);
    blocks.clear();
    cached = 0;
  }
};
LargeCache& large_cache() {
  static LargeCache* cache = new LargeCache;  // never destroyed: frees may come at interpreter exit
  return *cache;
}

}  // namespace

// Blocks of 2 MiB and more are 2 MiB-aligned, rounded up to whole 2 MiB and, on Linux, marked for
// transparent huge pages: one page fault and one TLB entry per 2 MiB instead of per 4 KiB.
constexpr std::size_t kHugePage = std::size_t(2) << 20;

std::size_t large_block_bytes(std::size_t bytes) {
  const std::size_t unit = bytes >= kHugePage ? kHugePage : kPage;
  return (bytes + unit - 1) / unit * unit;
}

void* system_alloc(std::size_t bytes) {
  void* p = std::aligned_alloc(bytes >= kHugePage ? kHugePage : kPage, bytes);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (p && bytes >= kHugePage) madvise(p, bytes, MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
  return p;
}

void* large_alloc(std::size_t bytes) {
  bytes = large_block_bytes(bytes);
  LargeCache& lc = large_cache();
  {
    std::lock_guard<std::mutex> lock(lc.mu);
    auto it = lc.blocks.find(bytes);
    if (it != lc.blocks.end()) {
      void* p = it->second;
      lc.blocks.erase(it);
      lc.cached -= bytes;
      return p;
    }
  }
  void* p = system_alloc(bytes);
  if (!p) {  // maybe the cache holds the memory: give it back and try once more
    lc.release();
    p = system_alloc(bytes);
    if (!p) throw std::bad_alloc();
  }
  return p;
}

void large_free(void* p, std::size_t bytes) {
  bytes = large_block_bytes(bytes);
  LargeCache& lc = large_cache();
  {
    std::lock_guard<std::mutex> lock(lc.mu);
    if (lc.cached + bytes <= lc.limit) {
      lc.blocks.emplace(bytes, p);
      lc.cached += bytes;
      return;
    }
  }
  std::free(p);
}

void release_cached_blocks() { large_cache().release(); }

void* workspace_alloc(std::size_t bytes) {
  const int c = size_class(bytes);
  if (c <= kMaxShift) {
    bytes = std::size_t(1) << c;  // every small block has its class's size, cached or not
    if (!g_cache_gone) {
      Cache& cache = g_cache;
      if (cache.count[c] > 0) return cache.blocks[c][--cache.count[c]];
    }
  } else {
    return large_alloc(bytes);
  }
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  return p;
}

void workspace_free(void* p, std::size_t bytes) {
  const int c = size_class(bytes);
  if (c > kMaxShift) return large_free(p, bytes);
  if (!g_cache_gone) {
    Cache& cache = g_cache;
    if (cache.count[c] < kPerClass) {
      cache.blocks[c][cache.count[c]++] = p;
      return;
    }
  }
  std::free(p);
}

}  // namespace rnnkit
