#include "rnnkit/sequence.h"

#include "rnnkit/threading.h"

namespace rnnkit {

int recurrent_threads(double step_flops, index_t units, int nr) {
  int nt = get_num_threads();
  // One barrier per step costs ~1 µs with hot threads; 2 threads pay off from ~0.2 MFLOP a step.
  if (step_flops < 2.0e5) return 1;
  const index_t panels = (units + nr - 1) / nr;
  if (panels < nt) nt = static_cast<int>(panels > 0 ? panels : 1);
  return nt;
}

}  // namespace rnnkit
