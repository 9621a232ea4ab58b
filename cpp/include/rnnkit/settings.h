// The RNNKIT_* environment variables the C++ core reads, parsed in one place (settings.cc) once per
// process. A value that is not accepted is recorded as a SettingProblem and the default applies;
// the core never prints anything: rnnkit (Python) turns each problem into one RuntimeWarning, a C++
// user reads settings().problems. The table of every variable is docs/SETTINGS.md.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "rnnkit/tuning.h"

namespace rnnkit {

// One variable whose value was not accepted.
struct SettingProblem {
  std::string name;      // e.g. "RNNKIT_BATCH_LANES"
  std::string value;     // the value as given
  std::string accepted;  // e.g. "auto, on, off"
  std::string used;      // what applies instead (the default), e.g. "auto"
};

// Effective values. Words are matched case-insensitively after trimming surrounding whitespace;
// a variable that is unset or empty (after trimming) takes the default without a problem.
struct Settings {
  std::string isa = "auto";           // RNNKIT_ISA: auto | generic | avx2 | avx512 (one the CPU supports)
  int batch_lanes = 0;                // RNNKIT_BATCH_LANES: 0 auto, 1 on, 2 off (set_batch_lanes' codes)
  int recurrent_split = 0;            // RNNKIT_RECURRENT_SPLIT: 0 auto, 1 batch, 2 units
  double parallel_min_flops = kParallelMinFlopsDefault;  // RNNKIT_PARALLEL_MIN_FLOPS: a number >= 0
  // RNNKIT_CACHE_MB: limit of the cache of freed large blocks (workspace.cc), a whole number >= 0
  // (0 disables it). The default holds one training step of the benchmarks' large LSTM/GRU
  // (~0.7 GB of workspaces and results), so that repeated steps reuse it.
  std::size_t cache_mb = 1024;
  std::vector<SettingProblem> problems;  // in the order of the fields above
};

// Names of the three-way modes, indexed by the codes above.
extern const char* const kBatchLanesNames[3];      // "auto", "on", "off"
extern const char* const kRecurrentSplitNames[3];  // "auto", "batch", "units"

// Parses the variables through `lookup` (a getenv: null for unset). Pure apart from asking the
// CPU which ISAs it supports; settings() calls it with std::getenv, the tests with a fake.
using EnvLookup = std::function<const char*(const char*)>;
Settings parse_settings(const EnvLookup& lookup);

// The process-wide settings: parse_settings(std::getenv) on the first call (thread-safe), never
// re-read. Runtime switches (force_isa, set_batch_lanes) do not change it.
const Settings& settings();

}  // namespace rnnkit
