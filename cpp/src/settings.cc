// Every RNNKIT_* variable the C++ core reads, parsed once (settings.h); docs/SETTINGS.md lists them.
#include "rnnkit/settings.h"

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "rnnkit/kernels.h"

namespace rnnkit {

const char* const kBatchLanesNames[3] = {"auto", "on", "off"};
const char* const kRecurrentSplitNames[3] = {"auto", "batch", "units"};

namespace {

std::string trim(const char* s) {
  std::string v(s ? s : "");
  const char* ws = " \t\n\r\f\v";
  const auto first = v.find_first_not_of(ws);
  if (first == std::string::npos) return "";
  return v.substr(first, v.find_last_not_of(ws) - first + 1);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// A word out of `names` (case-insensitive, trimmed): its index; `fallback` for unset or empty;
// otherwise a problem and `fallback`.
int parse_word(const EnvLookup& lookup, const char* name, const char* const* names, int n, int fallback,
               std::vector<SettingProblem>* problems) {
  const char* raw = lookup(name);
  const std::string v = lower(trim(raw));
  if (v.empty()) return fallback;
  for (int i = 0; i < n; ++i)
    if (v == names[i]) return i;
  std::string accepted;
  for (int i = 0; i < n; ++i) accepted += (i ? ", " : "") + std::string(names[i]);
  problems->push_back({name, raw, accepted, names[fallback]});
  return fallback;
}

}  // namespace

Settings parse_settings(const EnvLookup& lookup) {
  Settings s;
  std::vector<SettingProblem>& problems = s.problems;

  {  // RNNKIT_ISA: an ISA the CPU supports, else the best one (auto)
    const char* name = "RNNKIT_ISA";
    const char* raw = lookup(name);
    const std::string v = lower(trim(raw));
    static const char* const isas[] = {"generic", "avx2", "avx512"};
    std::string supported = "auto", missing;
    for (const char* isa : isas) (isa_supported(isa) ? supported : missing) += std::string(", ") + isa;
    if (v == "auto" || (!v.empty() && isa_supported(v.c_str()))) {
      s.isa = v;
    } else if (!v.empty()) {
      std::string best = "generic";
      for (const char* isa : isas)
        if (isa_supported(isa)) best = isa;
      const std::string accepted =
          supported + (missing.empty() ? "" : " (this CPU lacks " + missing.substr(2) + ")");
      problems.push_back({name, raw, accepted, "auto (" + best + ")"});
    }
  }

  s.batch_lanes = parse_word(lookup, "RNNKIT_BATCH_LANES", kBatchLanesNames, 3, 0, &problems);
  s.recurrent_split = parse_word(lookup, "RNNKIT_RECURRENT_SPLIT", kRecurrentSplitNames, 3, 0, &problems);

  {  // RNNKIT_PARALLEL_MIN_FLOPS: strtod syntax (1e6, 250000, inf), >= 0
    const char* name = "RNNKIT_PARALLEL_MIN_FLOPS";
    const char* raw = lookup(name);
    const std::string v = trim(raw);
    if (!v.empty()) {
      char* end = nullptr;
      const double parsed = std::strtod(v.c_str(), &end);
      if (*end == '\0' && parsed >= 0)  // NaN fails the comparison
        s.parallel_min_flops = parsed;
      else
        problems.push_back({name, raw, "a number >= 0, e.g. 250000, 1e6 or inf",
                            format_number(s.parallel_min_flops)});
    }
  }

  {  // RNNKIT_CACHE_MB: a whole number of MiB >= 0 whose byte count fits size_t
    const char* name = "RNNKIT_CACHE_MB";
    const char* raw = lookup(name);
    const std::string v = trim(raw);
    if (!v.empty()) {
      char* end = nullptr;
      errno = 0;
      const long long mb = std::strtoll(v.c_str(), &end, 10);
      if (*end == '\0' && errno == 0 && mb >= 0 &&
          static_cast<unsigned long long>(mb) <= (SIZE_MAX >> 20))
        s.cache_mb = static_cast<std::size_t>(mb);
      else
        problems.push_back({name, raw, "a whole number of MiB >= 0 (0: no cache)",
                            std::to_string(s.cache_mb)});
    }
  }
  return s;
}

const Settings& settings() {
  static const Settings s = parse_settings([](const char* name) -> const char* { return std::getenv(name); });
  return s;
}

}  // namespace rnnkit
