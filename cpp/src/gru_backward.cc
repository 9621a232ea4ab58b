// GRU backpropagation through time. Per step and unit on valid rows (dh includes d_outputs):
//   dz = dh * (h_{t-1} - hh) * ract'(z);   dhh = dh * (1 - z) * act'(hh)
// reset_after=True (run_backward):
//   dr = dhh * mh * ract'(r);   input side dGx = [dz, dr, dhh], recurrent side dGm = [dz, dr, dhh * r]
//   dh_{t-1} = dGm @ R^T + dh * z
// reset_after=False (run_backward with a second GEMM phase per step, MidBackward):
//   d_rh = dhh @ R_h^T;  dr = d_rh * h_{t-1} * ract'(r);  dh_{t-1} = [dz, dr] @ R_zr^T + d_rh * r + dh * z
//   d_recurrent_kernel[:, 2H:] = RH^T dhh with RH = r * h_{t-1} cached by the forward pass.
#include <cstring>

#include "rnnkit/gru.h"
#include "rnnkit/recurrent.h"

namespace rnnkit {
namespace {

template <class T>
void gru_backward_reset_after(const GruBackward<T>& a, const SeqShape& s, T* dgx, T* dgm) {
  const index_t B = s.B, T_ = s.T, H = s.H, GH = s.gh();
  const Activation act = a.activation, ract = a.recurrent_activation;
  const Kernels<T>& ker = kernels<T>();
  auto dout_row = [&](index_t b, index_t p, index_t c0) {
    return a.d_outputs ? a.d_outputs + (b * T_ + p) * H + c0 : nullptr;
  };
  ZoneoutGrad<T> zoneout(a.zoneout_h, B, T_, H, a.go_backwards);
  const InputSide<T> input{a.kernel, a.dx, a.go_backwards, dgx};
  run_backward<T>(s, a.recurrent_kernel, a.d_h_last, dgm,
    [&](index_t p, const T* dh_p, const Slice& sl) {
      const index_t c0 = sl.c0, nc = sl.c1 - sl.c0;
      for (index_t b = sl.b0; b < sl.b1; ++b) {
        T* dx3 = dgx + (p * B + b) * GH;
        T* dm3 = dgm + (p * B + b) * GH;
        if (!step_valid(a.mask, b, p, T_, a.go_backwards)) {
          for (int g = 0; g < 3; ++g) {
            std::memset(dx3 + g * H + c0, 0, nc * sizeof(T));
            std::memset(dm3 + g * H + c0, 0, nc * sizeof(T));
          }
          continue;
        }
        const T* g3 = a.gates + (p * B + b) * GH + c0;
        const T* dh_row = dh_p + b * H + c0;
        const T* dout = dout_row(b, p, c0);
        zoneout.cell_input(b, p, c0, nc, dh_row, dout);
        ker.gru_backward_cell(act, ract, nc, g3, g3 + H, g3 + 2 * H, a.states + (p * B + b) * H + c0,
                              a.extra + (p * B + b) * H + c0, dh_row, dout,
                              dx3 + c0, dx3 + 2 * H + c0, dx3 + H + c0, dm3 + 2 * H + c0);
        std::memcpy(dm3 + c0, dx3 + c0, nc * sizeof(T));          // dz
        std::memcpy(dm3 + H + c0, dx3 + H + c0, nc * sizeof(T));  // dr
      }
    },
    [&](index_t p, T* dh_prev, const T* dh_p, const Slice& sl) {
      const index_t c0 = sl.c0, c1 = sl.c1;
      for (index_t b = sl.b0; b < sl.b1; ++b) {
        T* d = dh_prev + b * H;
        const T* g = dh_p + b * H;
        if (!step_valid(a.mask, b, p, T_, a.go_backwards)) {
          std::memcpy(d + c0, g + c0, (c1 - c0) * sizeof(T));
          continue;
        }
        const T* z = a.gates + (p * B + b) * GH;
        const T* dout = dout_row(b, p, 0);
        if (zoneout.row(b, p)) {  // the cell's (1 - kh) part through z, kh straight through
          const T* dy = zoneout.cell_row(b, 0);
          for (index_t j = c0; j < c1; ++j) d[j] += dy[j] * z[j];
          zoneout.pass(b, p, c0, c1 - c0, g + c0, dout ? dout + c0 : nullptr, d + c0);
          continue;
        }
        for (index_t j = c0; j < c1; ++j) d[j] += (g[j] + (dout ? dout[j] : T(0))) * z[j];
      }
    },
    a.d_h0, &input);
}

// Two phases per step on run_backward (MidBackward): d_rh = dhh @ R_h^T gives dr; then
// dh_{t-1} = [dz, dr] @ R_zr^T + d_rh * r + dh * z. dg: (T, B, 3H) dz | dr | dhh, both sides.
template <class T>
void gru_backward_reset_before(const GruBackward<T>& a, const SeqShape& s, T* dg) {
  const index_t B = s.B, T_ = s.T, H = s.H, GH = s.gh();
  const Activation act = a.activation, ract = a.recurrent_activation;
  const Kernels<T>& ker = kernels<T>();
  Buffer<T> d_rh(B * H);  // d(r * h_{t-1}) of the step
  auto dout_row = [&](index_t b, index_t p, index_t c0) {
    return a.d_outputs ? a.d_outputs + (b * T_ + p) * H + c0 : nullptr;
  };
  ZoneoutGrad<T> zoneout(a.zoneout_h, B, T_, H, a.go_backwards);
  const InputSide<T> input{a.kernel, a.dx, a.go_backwards, nullptr};
  run_backward<T>(s, a.recurrent_kernel, a.d_h_last, dg,
    [&](index_t p, const T* dh_p, const Slice& sl) {  // dz, dhh (dr: after the second phase)
      const index_t c0 = sl.c0, nc = sl.c1 - sl.c0;
      for (index_t b = sl.b0; b < sl.b1; ++b) {
        T* d3 = dg + (p * B + b) * GH;
        if (!step_valid(a.mask, b, p, T_, a.go_backwards)) {
          for (int g = 0; g < 3; ++g) std::memset(d3 + g * H + c0, 0, nc * sizeof(T));
          continue;
        }
        const T* g3 = a.gates + (p * B + b) * GH + c0;
        const T* dh_row = dh_p + b * H + c0;
        const T* dout = dout_row(b, p, c0);
        zoneout.cell_input(b, p, c0, nc, dh_row, dout);
        ker.gru_backward_cell(act, ract, nc, g3, g3 + H, g3 + 2 * H, a.states + (p * B + b) * H + c0,
                              nullptr, dh_row, dout, d3 + c0, d3 + 2 * H + c0, nullptr, nullptr);
      }
    },
    [&](index_t p, T* dh_prev, const T* dh_p, const Slice& sl) {  // + d_rh * r + dh * z
      const index_t c0 = sl.c0, nc = sl.c1 - sl.c0;
      for (index_t b = sl.b0; b < sl.b1; ++b) {
        T* d = dh_prev + b * H + c0;
        const T* g = dh_p + b * H + c0;
        if (!step_valid(a.mask, b, p, T_, a.go_backwards)) {
          std::memcpy(d, g, nc * sizeof(T));
          continue;
        }
        const T* g3 = a.gates + (p * B + b) * GH;
        const T *z = g3 + c0, *r = g3 + H + c0;
        const T* drh = d_rh.data() + b * H + c0;
        const T* dout = dout_row(b, p, c0);
        if (zoneout.row(b, p)) {  // the cell's (1 - kh) part through z, kh straight through
          const T* dy = zoneout.cell_row(b, c0);
          for (index_t j = 0; j < nc; ++j) d[j] += drh[j] * r[j] + dy[j] * z[j];
          zoneout.pass(b, p, c0, nc, g, dout, d);
          continue;
        }
        for (index_t j = 0; j < nc; ++j) d[j] += drh[j] * r[j] + (g[j] + (dout ? dout[j] : T(0))) * z[j];
      }
    },
    a.d_h0, &input,
    mid_backward<T>(2, d_rh.data(), [&](index_t p, const T* drh_all, const Slice& sl) {  // dr
      const index_t c0 = sl.c0, nc = sl.c1 - sl.c0;
      for (index_t b = sl.b0; b < sl.b1; ++b) {
        if (!step_valid(a.mask, b, p, T_, a.go_backwards)) continue;  // dr stays 0
        const T* r = a.gates + (p * B + b) * GH + H + c0;
        const T* hp = a.states + (p * B + b) * H + c0;
        const T* drh = drh_all + b * H + c0;
        T* dr = dg + (p * B + b) * GH + H + c0;
        for (index_t j = 0; j < nc; ++j) dr[j] = drh[j] * hp[j] * activation_grad_from_output(ract, r[j]);
      }
    }));
}

}  // namespace

template <class T>
void gru_backward(const GruBackward<T>& a) {
  const SeqShape s{a.batch, a.steps, a.input_size, a.units, 3};
  const index_t B = s.B, T_ = s.T, H = s.H, GH = s.gh();
  const index_t bias_size = a.reset_after ? 2 * GH : GH;
  if (B == 0 || T_ == 0) {
    empty_sequence_gradients(s, a.d_h_last, a.dx, a.d_kernel, a.d_recurrent_kernel, a.d_bias, bias_size, a.d_h0);
    return;
  }
  Buffer<T> dgx(T_ * B * GH);
  if (a.reset_after) {
    Buffer<T> dgm(T_ * B * GH);
    gru_backward_reset_after(a, s, dgx.data(), dgm.data());
    weight_gradients(s, a.x, a.states, dgx.data(), dgm.data(), a.go_backwards, a.d_kernel,
                   a.d_recurrent_kernel, a.d_bias, a.d_bias ? a.d_bias + GH : nullptr);
    return;
  }
  gru_backward_reset_before(a, s, dgx.data());
  // One gemm_sum_k group: d_kernel = X^T dG and d_bias = column sums of dG (all three blocks),
  // d_recurrent_kernel[:, :2H] = H_prev^T [dz, dr] and d_recurrent_kernel[:, 2H:] = RH^T dhh.
  const MatView<const T> dg_all = row_major<const T>(dgx.data(), T_ * B, GH, GH);
  const GemmJob<T> jobs[3] = {
      {sequence_rows(a.x, B, T_, s.I, 0, T_, a.go_backwards).t(), dg_all, row_major(a.d_kernel, s.I, GH, GH),
       false, a.d_bias},
      {row_major(a.states, T_ * B, H, H).t(), MatView<const T>{dgx.data(), Axis::plain(T_ * B, GH), Axis::plain(2 * H, 1)},
       MatView<T>{a.d_recurrent_kernel, Axis::plain(H, GH), Axis::plain(2 * H, 1)}, false},
      {row_major(a.extra, T_ * B, H, H).t(),
       MatView<const T>{dgx.data() + 2 * H, Axis::plain(T_ * B, GH), Axis::plain(H, 1)},
       MatView<T>{a.d_recurrent_kernel + 2 * H, Axis::plain(H, GH), Axis::plain(H, 1)}, false}};
  gemm_sum_k(jobs, 3, get_num_threads());
}

template void gru_backward<float>(const GruBackward<float>&);
template void gru_backward<double>(const GruBackward<double>&);

}  // namespace rnnkit
