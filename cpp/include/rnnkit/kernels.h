// The per-ISA kernel table: the only code compiled once per instruction set (generic SSE2, AVX2+FMA,
// AVX-512). Everything else (packing, loop nests, cells) is ISA-neutral and calls through this table.
#pragma once

#include "rnnkit/batch_lane.h"
#include "rnnkit/common.h"
#include "rnnkit/tuning.h"

namespace rnnkit {

template <class T>
struct Kernels {
  const char* isa;  // "generic" | "avx2" | "avx512"
  int mr;           // micro-tile rows
  int nr;           // micro-tile columns (a multiple of the vector length)

  // C tile block update: for the m x n block of C starting at (row0, col0),
  //   C = A·B            (accumulate = false)
  //   C = C + A·B        (accumulate = true)
  // a: packed A, ceil(m/mr) panels of (kc, mr): a[p*mr*kc + k*mr + i]        (rows past m are zero)
  // b: packed B, ceil(n/nr) panels of (kc, nr): b[q*b_panel_stride + k*nr + j] (cols past n are zero)
  // c: full view of C; its columns must be contiguous (cols.stride == 1, plain).
  void (*macro)(index_t m, index_t n, index_t kc, const T* a, const T* b, index_t b_panel_stride,
                const MatView<T>& c, index_t row0, index_t col0, bool accumulate);
  // The same with mr_small-row tiles (A packed in mr_small-row panels): a recurrent step whose
  // rows divide by it better (16 or 32 rows with mr = 12) wastes fewer padding rows.
  int mr_small;
  void (*macro_small)(index_t m, index_t n, index_t kc, const T* a, const T* b, index_t b_panel_stride,
                      const MatView<T>& c, index_t row0, index_t col0, bool accumulate);

  // y[0:n] = act(x[0:n]); y may alias x. Vectorised; tanh/sigmoid within 4 ulp (float32).
  void (*activation)(Activation act, const T* x, T* y, index_t n);
  // Cell post-GEMM kernels on one row segment of n units (formulas in isa_kernels.inc).
  void (*lstm_forward_cell)(Activation act, Activation ract, index_t n, T* zi, T* zf, T* zg, T* zo,
                            const T* bi, const T* bf, const T* bg, const T* bo, const T* c_prev,
                            T* c, T* h);
  void (*gru_forward_cell)(Activation act, Activation ract, index_t n, T* xz, T* xr, T* xh,
                           const T* mz, const T* mr, const T* mh, const T* bxz, const T* bxr,
                           const T* bxh, const T* bmz, const T* bmr, const T* bmh,
                           const T* h_prev, T* mh_out, T* h);
  void (*lstm_backward_cell)(Activation act, Activation ract, index_t n, const T* i, const T* f,
                             const T* g, const T* o, const T* c, const T* c_prev, const T* dh,
                             const T* dout, T* dc, T* di, T* df, T* dg, T* d_o);
  void (*gru_backward_cell)(Activation act, Activation ract, index_t n, const T* z, const T* r,
                            const T* hh, const T* h_prev, const T* mh, const T* dh, const T* dout,
                            T* dz, T* dhh, T* dr, T* dhh_r);
  // y[0:n] = exp(x[0:n]) (vectorised, used by tests and softmax-free paths).
  void (*exp)(const T* x, T* y, index_t n);

  // FMA peak probe: runs `iters` rounds of fma_flops_per_iter flops; returns a checksum.
  double (*fma_probe)(long iters);
  int fma_flops_per_iter;

  // Batch-lane forward (batch_lane.h) over batch rows [b0, b1): `lanes` rows per vector; scratch
  // of batch_lane_scratch(args, lanes) elements, 64-byte aligned, one per thread.
  int lanes;
  void (*batch_lane_rows)(const BatchLaneForward<T>& args, index_t b0, index_t b1, T* scratch);

  // One A micro-panel of a PackedA from m_valid <= mr row-major rows (row i at src + i*ld):
  // dst[k*mr + i] = src[i*ld + k] for k < n; rows m_valid..mr of dst (a panel's zero padding) are
  // left zero or rewritten with zeros.
  void (*pack_a_tile)(const T* src, index_t ld, int m_valid, index_t n, int mr, T* dst);
  // SimpleRNN post-GEMM on one row segment: h[0:n] = act(pre + bias) (bias may be null), and the
  // same values into out when it is not null.
  void (*simple_rnn_forward_cell)(Activation act, index_t n, const T* pre, const T* bias, T* h, T* out);
  // Its backward on one row segment: dz[0:n] = (dh + dout) * act'(h), dout may be null.
  void (*simple_rnn_backward_cell)(Activation act, index_t n, const T* h, const T* dh, const T* dout, T* dz);
  // Few-row product against packed B panels (no A packing): C[i, col0 : col0 + n] (+)=
  // sum_k a[i][k] · B[k, :] for i < m, 1 <= m <= kGemvMaxRows; a[i] / c[i] point at row i of A (at
  // this k block) and of C; b holds ceil(n / nr) panels of (kc, nr), b_panel_stride apart.
  void (*gemv)(index_t m, index_t n, index_t kc, const T* const* a, const T* b, index_t b_panel_stride,
               T* const* c, index_t col0, bool accumulate);
};

// Scratch elements batch_lane_rows needs: rows of `lanes` for x_t (I), the input projections of
// 8 steps (8·G·H), h and c ping-pongs (4H), gates (G·H), GRU extra (H) and the step's outputs (H).
template <class T>
index_t batch_lane_scratch(const BatchLaneForward<T>& a, int lanes) {
  const index_t G = gates_of(a.cell);
  return (a.input_size + 6 * a.units + 9 * G * a.units) * lanes;
}

// The table for the ISA chosen at run time: RNNKIT_ISA=generic|avx2|avx512 forces one (if the CPU
// supports it), otherwise the best the CPU supports. Selected once, on first use.
template <class T>
const Kernels<T>& kernels();

// The name of the ISA in use, and whether one is supported by this CPU.
const char* active_isa();
bool isa_supported(const char* name);
// Forces an ISA for the rest of the process (tests/benchmarks); throws if unsupported.
void force_isa(const char* name);

// Per-ISA tables (defined in isa_*.cc).
namespace generic { template <class T> const Kernels<T>& table(); }
namespace avx2 { template <class T> const Kernels<T>& table(); }
namespace avx512 { template <class T> const Kernels<T>& table(); }

}  // namespace rnnkit

namespace rnnkit {
// GFLOP/s of the active ISA's widest FMA on `threads` threads (float64 if dbl), measured now.
double measure_peak_gflops(bool dbl, int threads);
}  // namespace rnnkit
