// Run-time ISA selection: one build runs on any x86-64; RNNKIT_ISA forces a path.
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>

#include "rnnkit/kernels.h"
#include "rnnkit/settings.h"

namespace rnnkit {
namespace {

enum class Isa { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

bool cpu_has(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::kGeneric: return true;
    case Isa::kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("fma");
  }
  return false;
#else
  return isa == Isa::kGeneric;
#endif
}

bool parse(const char* name, Isa* out) {
  if (!name) return false;
  if (!std::strcmp(name, "generic")) { *out = Isa::kGeneric; return true; }
  if (!std::strcmp(name, "avx2")) { *out = Isa::kAvx2; return true; }
  if (!std::strcmp(name, "avx512")) { *out = Isa::kAvx512; return true; }
  return false;
}

Isa best() {
  if (cpu_has(Isa::kAvx512)) return Isa::kAvx512;
  if (cpu_has(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kGeneric;
}

Isa initial() {
  // settings() keeps only an ISA the CPU supports; an unknown or unsupported RNNKIT_ISA is one of
  // its problems (rnnkit warns about it at import) and means auto: the best path.
  Isa forced;
  if (parse(settings().isa.c_str(), &forced)) return forced;
  return best();
}

std::atomic<int> g_isa{-1};

Isa current() {
  int v = g_isa.load(std::memory_order_acquire);
  if (v < 0) {
    v = static_cast<int>(initial());
    g_isa.store(v, std::memory_order_release);
  }
  return static_cast<Isa>(v);
}

}  // namespace

template <class T>
const Kernels<T>& kernels() {
  switch (current()) {
    case Isa::kAvx512: return avx512::table<T>();
    case Isa::kAvx2: return avx2::table<T>();
    default: return generic::table<T>();
  }
}
template const Kernels<float>& kernels<float>();
template const Kernels<double>& kernels<double>();

const char* active_isa() { return kernels<float>().isa; }

bool isa_supported(const char* name) {
  Isa isa;
  return parse(name, &isa) && cpu_has(isa);
}

// Not safe while kernels run on other threads (a call reads the table several times).
void force_isa(const char* name) {
  Isa isa;
  if (!parse(name, &isa))
    throw std::invalid_argument(std::string("isa must be 'generic', 'avx2' or 'avx512', got '") +
                                (name ? name : "") + "'");
  if (!cpu_has(isa))
    throw std::invalid_argument(std::string("isa '") + name + "' is not supported by this CPU");
  g_isa.store(static_cast<int>(isa), std::memory_order_release);
}

Activation parse_activation(const char* name) {
  static const char* names[] = {"linear", "tanh", "sigmoid", "relu", "hard_sigmoid"};
  for (int i = 0; i < 5; ++i)
    if (name && !std::strcmp(name, names[i])) return static_cast<Activation>(i);
  throw std::invalid_argument(std::string("unknown activation '") + (name ? name : "") +
                              "': expected linear, tanh, sigmoid, relu or hard_sigmoid");
}

const char* activation_name(Activation a) {
  static const char* names[] = {"linear", "tanh", "sigmoid", "relu", "hard_sigmoid"};
  return names[static_cast<int>(a)];
}

}  // namespace rnnkit
