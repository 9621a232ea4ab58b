// The caches behind Buffer and the module's result arrays.
// - Small blocks (up to 1 MiB, rounded up to a power of two): per thread, a few per size class, for
//   the next call on the same thread (no lock).
// - Large blocks: one process-wide cache keyed by rounded size, up to RNNKIT_CACHE_MB (default
//   1024) MiB of freed blocks, the oldest evicted first. A fresh large block costs a page fault per
//   page on first touch (on the development VM a quarter of a training forward at mnist-rows); a
//   cached one costs nothing. Blocks of 2 MiB and more ask for transparent huge pages.
#include <cstdint>
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
#include "rnnkit/settings.h"

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

// Freed large blocks, reused by exact (rounded) size. When a freed block would take the cache past
// its limit, the blocks freed longest ago go back to the system first: a new workload's blocks
// replace an old one's instead of being refused while stale sizes sit in the cache.
struct LargeCache {
  std::mutex mu;
  std::multimap<std::size_t, std::pair<std::uint64_t, void*>> blocks;  // size -> (age stamp, block)
  std::map<std::uint64_t, std::size_t> by_age;                          // age stamp -> size
  std::uint64_t stamp = 0;
  std::size_t cached = 0, limit = 0;
  LargeCache() {
    limit = settings().cache_mb << 20;  // RNNKIT_CACHE_MB
  }
  ~LargeCache() { release(); }
  // a cached block of exactly `bytes`, or null (caller holds mu)
  void* take(std::size_t bytes) {
    auto it = blocks.find(bytes);
    if (it == blocks.end()) return nullptr;
    void* p = it->second.second;
    by_age.erase(it->second.first);
    blocks.erase(it);
    cached -= bytes;
    return p;
  }
  // caches p if it fits the limit, evicting the oldest blocks as needed; false: caller frees it
  bool put(void* p, std::size_t bytes) {
    if (bytes > limit) return false;
    while (cached + bytes > limit) {
      const auto oldest = by_age.begin();
      auto range = blocks.equal_range(oldest->second);
      for (auto it = range.first; it != range.second; ++it)
        if (it->second.first == oldest->first) {
          std::free(it->second.second);
          blocks.erase(it);
          break;
        }
      cached -= oldest->second;
      by_age.erase(oldest);
    }
    blocks.emplace(bytes, std::make_pair(stamp, p));
    by_age.emplace(stamp++, bytes);
    cached += bytes;
    return true;
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& kv : blocks) std::free(kv.second.second);
    blocks.clear();
    by_age.clear();
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
    if (void* p = lc.take(bytes)) return p;
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
    if (lc.put(p, bytes)) return;
  }
  std::free(p);
}

void release_cached_blocks() { large_cache().release(); }

std::size_t cached_block_bytes() {
  LargeCache& lc = large_cache();
  std::lock_guard<std::mutex> lock(lc.mu);
  return lc.cached;
}

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
