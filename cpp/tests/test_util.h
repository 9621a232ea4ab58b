// Helpers shared by the ctest programs: counters, the relative-norm metric of docs/SPEC.md §14, random
// data, and the skip rule for ISA-specific runs.
#pragma once

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "rnnkit/kernels.h"
#include "rnnkit/settings.h"

namespace rnnkit_test {

inline int g_pass = 0, g_fail = 0;

inline void check(bool ok, const std::string& what) {
  if (ok) ++g_pass;
  else { ++g_fail; std::printf("FAIL: %s\n", what.c_str()); }
}

// ||a - b|| / ||b|| (||a - b|| when b == 0); NaN anywhere -> infinity (never passes).
template <class A, class B>
double rel_err(const std::vector<A>& a, const std::vector<B>& b) {
  if (a.size() != b.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
  }
  if (std::isnan(num) || std::isnan(den)) return INFINITY;
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

template <class T>
std::vector<T> randn(size_t n, std::mt19937& g, double scale = 1.0) {
  std::normal_distribution<double> d(0.0, scale);
  std::vector<T> v(n);
  for (auto& x : v) x = T(d(g));
  return v;
}

// ctest's SKIP_RETURN_CODE: a run asked for an ISA (RNNKIT_ISA) this CPU cannot run would
// otherwise silently test the fallback path.
constexpr int kSkip = 77;
inline bool requested_isa_unavailable() {
  for (const rnnkit::SettingProblem& p : rnnkit::settings().problems)
    if (p.name == "RNNKIT_ISA") {
      std::printf("SKIP: RNNKIT_ISA=%s is not available (accepted: %s; active: %s)\n", p.value.c_str(),
                  p.accepted.c_str(), rnnkit::active_isa());
      return true;
    }
  return false;
}

inline int finish() {
  std::printf("%d passed, %d failed\n", g_pass, g_fail);
  return g_fail == 0 ? 0 : 1;
}

}  // namespace rnnkit_test
