// ctest suite for the LSTM and GRU cells (GRU with reset_after true and false):
//   - one-step, B=1 cases computed by hand from the formulas of docs/SPEC.md §4–§6;
//   - forward vs a scalar reference written from docs/SPEC.md §4–§9 (masks, go_backwards, states, bias);
//   - backward vs central finite differences in float64 (dx, d_kernel, d_recurrent_kernel, d_bias,
//     d_h0, d_c0) over small odd shapes, masks (with an all-masked row), with/without bias and
//     initial states, both directions, tanh/sigmoid/linear activations;
//   - masked steps: zero output rows, carried states, h_last/c_last = state after the last valid step,
//     a masked step equals a removed step, zero dx at masked steps, gradient pass-through;
//   - float32 forward/backward vs float64;
//   - 1 vs 2 threads bit-identical forward (training and inference) and backward.
// Prints one line per failure and "N passed, N failed"; exit code 1 on any failure.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "rnnkit/gru.h"
#include "rnnkit/kernels.h"
#include "rnnkit/lstm.h"
#include "rnnkit/sequence.h"
#include "rnnkit/tuning.h"
#include "rnnkit/threading.h"
#include "test_util.h"

using namespace rnnkit;
using namespace rnnkit_test;



template <class T>
static bool bit_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}


static std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Cases

enum class Cell { kLstm, kGruAfter, kGruBefore };
static const Cell kCells[] = {Cell::kLstm, Cell::kGruAfter, Cell::kGruBefore};
static const char* cell_name(Cell c) {
  return c == Cell::kLstm ? "lstm" : c == Cell::kGruAfter ? "gru(reset_after)" : "gru(reset_before)";
}
static int gates_of(Cell c) { return c == Cell::kLstm ? 4 : 3; }
static index_t bias_size(Cell c, index_t H) { return c == Cell::kGruAfter ? 6 * H : gates_of(c) * H; }

template <class T>
struct Case {
  Cell cell = Cell::kLstm;
  index_t B = 0, T_ = 0, I = 0, H = 0;
  std::vector<T> x, k, r, b, h0, c0;  // h0/c0 are zeros when !use_init (c0 unused by GRU)
  std::vector<std::uint8_t> mask;     // (B, T) input time order
  Activation act = Activation::kTanh, ract = Activation::kSigmoid;
  bool back = false, use_mask = false, use_bias = false, use_init = false;
  index_t G() const { return gates_of(cell); }
  std::string name() const {
    return std::string(cell_name(cell)) + " B" + std::to_string(B) + ",T" + std::to_string(T_) + ",I" +
           std::to_string(I) + ",H" + std::to_string(H) + " " + activation_name(act) + "/" +
           activation_name(ract) + (use_mask ? " mask" : "") + (use_bias ? " bias" : "") +
           (use_init ? " init" : "") + (back ? " back" : "");
  }
};

// Processing step p of row b is used.
template <class T>
static bool valid(const Case<T>& c, index_t b, index_t p) {
  return !c.use_mask || c.mask[b * c.T_ + time_index(p, c.T_, c.back)];
}

template <class T>
static Case<T> make_case(std::mt19937& g, Cell cell, index_t B, index_t T_, index_t I, index_t H, Activation act,
                         Activation ract, bool back, bool use_mask, bool use_bias, bool use_init) {
  Case<T> c;
  c.cell = cell; c.B = B; c.T_ = T_; c.I = I; c.H = H;
  c.act = act; c.ract = ract; c.back = back; c.use_mask = use_mask; c.use_bias = use_bias; c.use_init = use_init;
  const index_t G = c.G();
  c.x = randn<T>(B * T_ * I, g);
  c.k = randn<T>(I * G * H, g, 1.0 / std::sqrt(double(I)));
  c.r = randn<T>(H * G * H, g, 0.9 / std::sqrt(double(H)));
  c.b = randn<T>(bias_size(cell, H), g, 0.5);
  c.h0 = use_init ? randn<T>(B * H, g, 0.6) : std::vector<T>(B * H, T(0));
  c.c0 = use_init ? randn<T>(B * H, g, 1.0) : std::vector<T>(B * H, T(0));
  c.mask.assign(B * T_, 1);
  if (use_mask && T_ > 0) {
    std::bernoulli_distribution keep(0.6);
    for (auto& m : c.mask) m = keep(g);
    if (B >= 2)
      for (index_t t = 0; t < T_; ++t) c.mask[t] = 0;  // row 0: every step masked
    // the last row: its last processed step masked, another one used (h_last != last output row)
    const index_t b = B - 1;
    if (b > 0 || T_ > 1) {
      c.mask[b * T_ + time_index(T_ - 1, T_, back)] = 0;
      if (T_ > 1) c.mask[b * T_ + time_index(T_ / 2 - (T_ % 2 == 0), T_, back)] = 1;
    }
    if (B == 1) c.mask[time_index(0, T_, back)] = 1;  // keep B=1 cases non-trivial
  }
  return c;
}

template <class U, class T>
static std::vector<U> cast_vec(const std::vector<T>& v) {
  return std::vector<U>(v.begin(), v.end());
}

template <class U, class T>
static Case<U> cast_case(const Case<T>& c) {
  Case<U> d;
  d.cell = c.cell; d.B = c.B; d.T_ = c.T_; d.I = c.I; d.H = c.H; d.mask = c.mask;
  d.act = c.act; d.ract = c.ract; d.back = c.back; d.use_mask = c.use_mask; d.use_bias = c.use_bias;
  d.use_init = c.use_init;
  d.x = cast_vec<U>(c.x); d.k = cast_vec<U>(c.k); d.r = cast_vec<U>(c.r); d.b = cast_vec<U>(c.b);
  d.h0 = cast_vec<U>(c.h0); d.c0 = cast_vec<U>(c.c0);
  return d;
}

// ---------------------------------------------------------------------------------------------
// Running the native kernels

template <class T>
struct Fwd {
  std::vector<T> out, hl, cl;         // outputs (B,T,H) processing order, h_last, c_last (LSTM)
  std::vector<T> hs, cs, gates, extra;  // training cache
};

template <class T>
static Fwd<T> forward(const Case<T>& c, bool training, bool with_outputs = true) {
  const index_t B = c.B, T_ = c.T_, H = c.H, G = c.G();
  const T qnan = std::numeric_limits<T>::quiet_NaN();  // unwritten outputs show up as NaN
  Fwd<T> f;
  f.out.assign(with_outputs ? B * T_ * H : 0, qnan);
  f.hl.assign(B * H, qnan);
  if (training) {
    f.hs.assign((T_ + 1) * B * H, qnan);
    f.gates.assign(T_ * B * G * H, qnan);
  }
  if (c.cell == Cell::kLstm) {
    f.cl.assign(B * H, qnan);
    if (training) f.cs.assign((T_ + 1) * B * H, qnan);
    LstmForward<T> a;
    a.batch = B; a.steps = T_; a.input_size = c.I; a.units = H;
    a.x = c.x.data(); a.kernel = c.k.data(); a.recurrent_kernel = c.r.data();
    a.bias = c.use_bias ? c.b.data() : nullptr;
    a.h0 = c.use_init ? c.h0.data() : nullptr;
    a.c0 = c.use_init ? c.c0.data() : nullptr;
    a.mask = c.use_mask ? c.mask.data() : nullptr;
    a.activation = c.act; a.recurrent_activation = c.ract; a.go_backwards = c.back;
    a.outputs = with_outputs ? f.out.data() : nullptr;
    a.h_last = f.hl.data(); a.c_last = f.cl.data();
    if (training) { a.h_states = f.hs.data(); a.c_states = f.cs.data(); a.gates = f.gates.data(); }
    lstm_forward(a);
  } else {
    if (training) f.extra.assign(T_ * B * H, qnan);
    GruForward<T> a;
    a.batch = B; a.steps = T_; a.input_size = c.I; a.units = H;
    a.x = c.x.data(); a.kernel = c.k.data(); a.recurrent_kernel = c.r.data();
    a.bias = c.use_bias ? c.b.data() : nullptr;
    a.h0 = c.use_init ? c.h0.data() : nullptr;
    a.mask = c.use_mask ? c.mask.data() : nullptr;
    a.activation = c.act; a.recurrent_activation = c.ract; a.go_backwards = c.back;
    a.reset_after = c.cell == Cell::kGruAfter;
    a.outputs = with_outputs ? f.out.data() : nullptr;
    a.h_last = f.hl.data();
    if (training) { a.states = f.hs.data(); a.gates = f.gates.data(); a.extra = f.extra.data(); }
    gru_forward(a);
  }
  return f;
}

template <class T>
struct Grads {
  std::vector<T> dx, dk, dr, db, dh0, dc0;
};

// dout/dhl/dcl: empty = absent (null).
template <class T>
static Grads<T> backward(const Case<T>& c, const Fwd<T>& f, const std::vector<T>& dout, const std::vector<T>& dhl,
                         const std::vector<T>& dcl) {
  const index_t B = c.B, T_ = c.T_, I = c.I, H = c.H, G = c.G();
  const T qnan = std::numeric_limits<T>::quiet_NaN();
  Grads<T> d;
  d.dx.assign(B * T_ * I, qnan);
  d.dk.assign(I * G * H, qnan);
  d.dr.assign(H * G * H, qnan);
  d.db.assign(c.use_bias ? bias_size(c.cell, H) : 0, qnan);
  d.dh0.assign(B * H, qnan);
  auto ptr = [](const std::vector<T>& v) { return v.empty() ? nullptr : v.data(); };
  if (c.cell == Cell::kLstm) {
    d.dc0.assign(B * H, qnan);
    LstmBackward<T> a;
    a.batch = B; a.steps = T_; a.input_size = I; a.units = H;
    a.d_outputs = ptr(dout); a.d_h_last = ptr(dhl); a.d_c_last = ptr(dcl);
    a.x = c.x.data(); a.kernel = c.k.data(); a.recurrent_kernel = c.r.data();
    a.h_states = f.hs.data(); a.c_states = f.cs.data(); a.gates = f.gates.data();
    a.mask = c.use_mask ? c.mask.data() : nullptr;
    a.activation = c.act; a.recurrent_activation = c.ract; a.go_backwards = c.back;
    a.dx = d.dx.data(); a.d_kernel = d.dk.data(); a.d_recurrent_kernel = d.dr.data();
    a.d_bias = c.use_bias ? d.db.data() : nullptr; a.d_h0 = d.dh0.data(); a.d_c0 = d.dc0.data();
    lstm_backward(a);
  } else {
    GruBackward<T> a;
    a.batch = B; a.steps = T_; a.input_size = I; a.units = H;
    a.d_outputs = ptr(dout); a.d_h_last = ptr(dhl);
    a.x = c.x.data(); a.kernel = c.k.data(); a.recurrent_kernel = c.r.data();
    a.states = f.hs.data(); a.gates = f.gates.data(); a.extra = f.extra.data();
    a.mask = c.use_mask ? c.mask.data() : nullptr;
    a.activation = c.act; a.recurrent_activation = c.ract; a.go_backwards = c.back;
    a.reset_after = c.cell == Cell::kGruAfter;
    a.dx = d.dx.data(); a.d_kernel = d.dk.data(); a.d_recurrent_kernel = d.dr.data();
    a.d_bias = c.use_bias ? d.db.data() : nullptr; a.d_h0 = d.dh0.data();
    gru_backward(a);
  }
  return d;
}

// ---------------------------------------------------------------------------------------------
// Scalar reference, written from docs/SPEC.md §4–§9 (double precision, plain loops).

static double act_ref(Activation a, double v) {
  switch (a) {
    case Activation::kTanh: return std::tanh(v);
    case Activation::kSigmoid: return 1.0 / (1.0 + std::exp(-v));
    case Activation::kRelu: return v > 0 ? v : 0.0;
    case Activation::kHardSigmoid: return std::min(1.0, std::max(0.0, v / 6.0 + 0.5));
    case Activation::kLinear: default: return v;
  }
}

struct RefOut {
  std::vector<double> out, hl, cl;
};

template <class T>
static RefOut reference_forward(const Case<T>& c) {
  const index_t B = c.B, T_ = c.T_, I = c.I, H = c.H, G = c.G(), GH = G * H;
  const bool lstm = c.cell == Cell::kLstm, after = c.cell == Cell::kGruAfter;
  RefOut r;
  r.out.assign(B * T_ * H, 0.0);
  r.hl.assign(B * H, 0.0);
  if (lstm) r.cl.assign(B * H, 0.0);
  for (index_t b = 0; b < B; ++b) {
    std::vector<double> h(H, 0.0), cst(H, 0.0);
    if (c.use_init)
      for (index_t j = 0; j < H; ++j) { h[j] = c.h0[b * H + j]; cst[j] = c.c0[b * H + j]; }
    for (index_t p = 0; p < T_; ++p) {
      const index_t t = c.back ? T_ - 1 - p : p;
      if (c.use_mask && !c.mask[b * T_ + t]) continue;  // state carried, output row stays zero
      const T* xt = c.x.data() + (b * T_ + t) * I;
      std::vector<double> xk(GH, 0.0), hr(GH, 0.0);  // x_t @ K, h_{t-1} @ R
      for (index_t col = 0; col < GH; ++col) {
        for (index_t i = 0; i < I; ++i) xk[col] += double(xt[i]) * double(c.k[i * GH + col]);
        for (index_t q = 0; q < H; ++q) hr[col] += h[q] * double(c.r[q * GH + col]);
      }
      std::vector<double> hn(H), cn(H);
      if (lstm) {
        for (index_t j = 0; j < H; ++j) {
          double z[4];
          for (int g = 0; g < 4; ++g)
            z[g] = xk[g * H + j] + hr[g * H + j] + (c.use_bias ? double(c.b[g * H + j]) : 0.0);
          const double ig = act_ref(c.ract, z[0]), fg = act_ref(c.ract, z[1]);
          const double cc = act_ref(c.act, z[2]), og = act_ref(c.ract, z[3]);
          cn[j] = fg * cst[j] + ig * cc;
          hn[j] = og * act_ref(c.act, cn[j]);
        }
      } else if (after) {
        for (index_t j = 0; j < H; ++j) {
          auto bi = [&](int g) { return c.use_bias ? double(c.b[g * H + j]) : 0.0; };
          auto br = [&](int g) { return c.use_bias ? double(c.b[GH + g * H + j]) : 0.0; };
          const double xz = xk[j] + bi(0), xr = xk[H + j] + bi(1), xh = xk[2 * H + j] + bi(2);
          const double mz = hr[j] + br(0), mr = hr[H + j] + br(1), mh = hr[2 * H + j] + br(2);
          const double z = act_ref(c.ract, xz + mz), rr = act_ref(c.ract, xr + mr);
          const double hh = act_ref(c.act, xh + rr * mh);
          hn[j] = z * h[j] + (1 - z) * hh;
        }
      } else {
        std::vector<double> rg(H);
        for (index_t q = 0; q < H; ++q)
          rg[q] = act_ref(c.ract, xk[H + q] + hr[H + q] + (c.use_bias ? double(c.b[H + q]) : 0.0));
        for (index_t j = 0; j < H; ++j) {
          const double z = act_ref(c.ract, xk[j] + hr[j] + (c.use_bias ? double(c.b[j]) : 0.0));
          double rh = 0;  // (r ⊙ h_{t-1}) @ R_h
          for (index_t q = 0; q < H; ++q) rh += rg[q] * h[q] * double(c.r[q * GH + 2 * H + j]);
          const double hh = act_ref(c.act, xk[2 * H + j] + (c.use_bias ? double(c.b[2 * H + j]) : 0.0) + rh);
          hn[j] = z * h[j] + (1 - z) * hh;
        }
      }
      h = hn;
      if (lstm) cst = cn;
      for (index_t j = 0; j < H; ++j) r.out[(b * T_ + p) * H + j] = h[j];
    }
    for (index_t j = 0; j < H; ++j) {
      r.hl[b * H + j] = h[j];
      if (lstm) r.cl[b * H + j] = cst[j];
    }
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// 2. One step, B = 1, by hand from the formulas of docs/SPEC.md §4–§6.

static double sigm(double v) { return 1.0 / (1.0 + std::exp(-v)); }
static double hsig(double v) { return std::min(1.0, std::max(0.0, v / 6.0 + 0.5)); }

// Deterministic, irregular weights (no structure a wrong index could hide behind).
static double w(int seed, int i) { return 0.8 * std::sin(1.3 * seed + 0.77 * i + 0.1 * i * i); }

template <class T>
static void test_by_hand() {
  const double tol = sizeof(T) == 8 ? 1e-14 : 2e-6;
  const std::string ty = sizeof(T) == 8 ? " f64" : " f32";
  const int I = 2, H = 2;
  // inputs exactly representable in float so f32 and f64 see the same numbers
  const double x[I] = {0.5, -1.25}, h0[H] = {0.375, -0.75}, c0[H] = {1.125, -0.5};
  for (int hard = 0; hard < 2; ++hard) {
    // hard = 0: act tanh, ract sigmoid;  hard = 1: act relu, ract hard_sigmoid (Keras 3: x/6 + 1/2)
    auto ract = [&](double v) { return hard ? hsig(v) : sigm(v); };
    auto act = [&](double v) { return hard ? std::max(0.0, v) : std::tanh(v); };
    const Activation A = hard ? Activation::kRelu : Activation::kTanh;
    const Activation RA = hard ? Activation::kHardSigmoid : Activation::kSigmoid;
    const std::string tag = std::string(hard ? " relu/hard_sigmoid" : " tanh/sigmoid") + ty;

    {  // LSTM: K (2, 8), R (2, 8), b (8), columns i0 i1 | f0 f1 | c0 c1 | o0 o1
      std::vector<T> K(I * 4 * H), R(H * 4 * H), b(4 * H), xv(x, x + I), h0v(h0, h0 + H), c0v(c0, c0 + H);
      for (int i = 0; i < I * 4 * H; ++i) K[i] = T(w(1, i));
      for (int i = 0; i < H * 4 * H; ++i) R[i] = T(w(2, i));
      for (int i = 0; i < 4 * H; ++i) b[i] = T(w(3, i));
      double h1[H], c1[H];
      for (int j = 0; j < H; ++j) {
        auto zg = [&](int g) {
          const int col = g * H + j;
          return x[0] * double(K[0 * 4 * H + col]) + x[1] * double(K[1 * 4 * H + col]) +
                 h0[0] * double(R[0 * 4 * H + col]) + h0[1] * double(R[1 * 4 * H + col]) + double(b[col]);
        };
        const double i_ = ract(zg(0)), f_ = ract(zg(1)), g_ = act(zg(2)), o_ = ract(zg(3));
        c1[j] = f_ * c0[j] + i_ * g_;
        h1[j] = o_ * act(c1[j]);
      }
      std::vector<T> out(H), hl(H), cl(H);
      LstmForward<T> a;
      a.batch = 1; a.steps = 1; a.input_size = I; a.units = H;
      a.x = xv.data(); a.kernel = K.data(); a.recurrent_kernel = R.data(); a.bias = b.data();
      a.h0 = h0v.data(); a.c0 = c0v.data(); a.activation = A; a.recurrent_activation = RA;
      a.outputs = out.data(); a.h_last = hl.data(); a.c_last = cl.data();
      lstm_forward(a);
      const std::vector<double> he(h1, h1 + H), ce(c1, c1 + H);
      check(rel_err(out, he) < tol && rel_err(hl, he) < tol && rel_err(cl, ce) < tol,
            "lstm one step by hand" + tag + " (h err " + fmt(rel_err(hl, he)) + ", c err " + fmt(rel_err(cl, ce)) + ")");
    }
    for (int ra = 0; ra < 2; ++ra) {  // GRU: K (2, 6), R (2, 6), columns z0 z1 | r0 r1 | h0 h1
      const bool reset_after = ra == 0;
      std::vector<T> K(I * 3 * H), R(H * 3 * H), b((reset_after ? 2 : 1) * 3 * H), xv(x, x + I), h0v(h0, h0 + H);
      for (int i = 0; i < I * 3 * H; ++i) K[i] = T(w(4, i));
      for (int i = 0; i < H * 3 * H; ++i) R[i] = T(w(5, i));
      for (size_t i = 0; i < b.size(); ++i) b[i] = T(w(6, int(i)));
      auto xk = [&](int col) { return x[0] * double(K[col]) + x[1] * double(K[3 * H + col]); };
      auto hr = [&](int col) { return h0[0] * double(R[col]) + h0[1] * double(R[3 * H + col]); };
      double h1[H];
      if (reset_after) {
        for (int j = 0; j < H; ++j) {
          const double xz = xk(j) + double(b[j]), xr = xk(H + j) + double(b[H + j]), xh = xk(2 * H + j) + double(b[2 * H + j]);
          const double mz = hr(j) + double(b[3 * H + j]), mr = hr(H + j) + double(b[4 * H + j]),
                       mh = hr(2 * H + j) + double(b[5 * H + j]);
          const double z = ract(xz + mz), r = ract(xr + mr), hh = act(xh + r * mh);
          h1[j] = z * h0[j] + (1 - z) * hh;
        }
      } else {
        const double r0 = ract(xk(H + 0) + double(b[H + 0]) + hr(H + 0));
        const double r1 = ract(xk(H + 1) + double(b[H + 1]) + hr(H + 1));
        for (int j = 0; j < H; ++j) {
          const double z = ract(xk(j) + double(b[j]) + hr(j));
          const double rh = r0 * h0[0] * double(R[2 * H + j]) + r1 * h0[1] * double(R[3 * H + 2 * H + j]);
          const double hh = act(xk(2 * H + j) + double(b[2 * H + j]) + rh);
          h1[j] = z * h0[j] + (1 - z) * hh;
        }
      }
      std::vector<T> out(H), hl(H);
      GruForward<T> a;
      a.batch = 1; a.steps = 1; a.input_size = I; a.units = H;
      a.x = xv.data(); a.kernel = K.data(); a.recurrent_kernel = R.data(); a.bias = b.data(); a.h0 = h0v.data();
      a.activation = A; a.recurrent_activation = RA; a.reset_after = reset_after;
      a.outputs = out.data(); a.h_last = hl.data();
      gru_forward(a);
      const std::vector<double> he(h1, h1 + H);
      check(rel_err(out, he) < tol && rel_err(hl, he) < tol,
            std::string(reset_after ? "gru(reset_after)" : "gru(reset_before)") + " one step by hand" + tag +
                " (err " + fmt(rel_err(hl, he)) + ")");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Forward vs the scalar reference (training and inference paths), float64 and float32.

template <class T>
static void check_vs_reference(const Case<T>& c, const std::string& name) {
  const double tol = sizeof(T) == 8 ? 1e-12 : 1e-5;
  const RefOut ref = reference_forward(c);
  for (int training = 0; training < 2; ++training) {
    const Fwd<T> f = forward(c, training);
    double e = std::max(rel_err(f.out, ref.out), rel_err(f.hl, ref.hl));
    if (c.cell == Cell::kLstm) e = std::max(e, rel_err(f.cl, ref.cl));
    check(e < tol, name + (training ? " training" : " inference") + " forward vs reference (err " + fmt(e) + ")");
  }
  // outputs = null is allowed and changes nothing else
  const Fwd<T> f0 = forward(c, false, false), f1 = forward(c, false, true);
  check(bit_equal(f0.hl, f1.hl) && bit_equal(f0.cl, f1.cl), name + " forward without outputs gives the same states");
}

// ---------------------------------------------------------------------------------------------
// 5. Masks

template <class T>
static void check_masking(const Case<T>& c, const std::string& name) {
  if (!c.use_mask) return;
  const index_t B = c.B, T_ = c.T_, I = c.I, H = c.H;
  const Fwd<T> f = forward(c, true);
  const bool lstm = c.cell == Cell::kLstm;
  bool zero_rows = true, carried = true, last_ok = true;
  for (index_t b = 0; b < B; ++b) {
    index_t last = -1;
    for (index_t p = 0; p < T_; ++p) {
      if (valid(c, b, p)) { last = p; continue; }
      for (index_t j = 0; j < H; ++j) {
        const index_t o = (b * T_ + p) * H + j;
        zero_rows = zero_rows && f.out[o] == T(0);
        const index_t s0 = (p * B + b) * H + j, s1 = ((p + 1) * B + b) * H + j;
        carried = carried && std::memcmp(&f.hs[s0], &f.hs[s1], sizeof(T)) == 0;
        if (lstm) carried = carried && std::memcmp(&f.cs[s0], &f.cs[s1], sizeof(T)) == 0;
      }
    }
    for (index_t j = 0; j < H; ++j) {
      const T h_exp = last >= 0 ? f.out[(b * T_ + last) * H + j] : c.h0[b * H + j];  // h0 zeros when absent
      last_ok = last_ok && std::memcmp(&f.hl[b * H + j], &h_exp, sizeof(T)) == 0;
      if (lstm) {
        const T c_exp = last >= 0 ? f.cs[((last + 1) * B + b) * H + j] : c.c0[b * H + j];
        last_ok = last_ok && std::memcmp(&f.cl[b * H + j], &c_exp, sizeof(T)) == 0;
      }
    }
  }
  check(zero_rows, name + " masked output rows are exactly zero");
  check(carried, name + " masked steps carry the states bit for bit");
  check(last_ok, name + " h_last/c_last are the states after the last valid step (h0/c0 if none)");

  // A masked step is a removed step: each row alone, its valid steps only, gives the same results.
  const double tol = sizeof(T) == 8 ? 1e-13 : 2e-6;
  double worst = 0;
  for (index_t b = 0; b < B; ++b) {
    std::vector<index_t> ts;  // used input time indices, in input order
    for (index_t t = 0; t < T_; ++t)
      if (c.mask[b * T_ + t]) ts.push_back(t);
    Case<T> s = c;
    s.B = 1; s.T_ = index_t(ts.size()); s.use_mask = false;
    s.mask.assign(s.T_, 1);
    s.x.clear();
    for (index_t t : ts) s.x.insert(s.x.end(), c.x.begin() + (b * T_ + t) * I, c.x.begin() + (b * T_ + t + 1) * I);
    s.h0.assign(c.h0.begin() + b * H, c.h0.begin() + (b + 1) * H);
    s.c0.assign(c.c0.begin() + b * H, c.c0.begin() + (b + 1) * H);
    const Fwd<T> fs = forward(s, false);
    std::vector<T> got_out, want_out(fs.out);
    for (index_t p = 0; p < T_; ++p)
      if (valid(c, b, p)) got_out.insert(got_out.end(), f.out.begin() + (b * T_ + p) * H, f.out.begin() + (b * T_ + p + 1) * H);
    std::vector<T> got_h(f.hl.begin() + b * H, f.hl.begin() + (b + 1) * H);
    worst = std::max({worst, rel_err(got_out, want_out), rel_err(got_h, fs.hl)});
    if (lstm) worst = std::max(worst, rel_err(std::vector<T>(f.cl.begin() + b * H, f.cl.begin() + (b + 1) * H), fs.cl));
  }
  check(worst < tol, name + " masked steps equal removed steps (err " + fmt(worst) + ")");

  // Backward: no input gradient at masked steps; an all-masked row passes d_h_last (d_c_last) to d_h0 (d_c0).
  std::mt19937 g(99);
  const std::vector<T> dout = randn<T>(B * T_ * H, g), dhl = randn<T>(B * H, g);
  const std::vector<T> dcl = lstm ? randn<T>(B * H, g) : std::vector<T>();
  const Grads<T> d = backward(c, f, dout, dhl, dcl);
  bool dx_zero = true, pass = true;
  for (index_t b = 0; b < B; ++b) {
    bool any = false;
    for (index_t t = 0; t < T_; ++t) {
      any = any || c.mask[b * T_ + t];
      if (!c.mask[b * T_ + t])
        for (index_t i = 0; i < I; ++i) dx_zero = dx_zero && d.dx[(b * T_ + t) * I + i] == T(0);
    }
    if (!any)
      for (index_t j = 0; j < H; ++j) {
        pass = pass && d.dh0[b * H + j] == dhl[b * H + j];
        if (lstm) pass = pass && d.dc0[b * H + j] == dcl[b * H + j];
      }
  }
  check(dx_zero, name + " dx is exactly zero at masked steps");
  check(pass, name + " all-masked row: d_h0 == d_h_last (d_c0 == d_c_last)");
}

// ---------------------------------------------------------------------------------------------
// 1. Backward vs central finite differences (float64)

static void fd_check(const Case<double>& c, std::mt19937& g, bool use_dout, bool use_dhl, bool use_dcl,
                     int samples, const std::string& name) {
  const index_t B = c.B, T_ = c.T_, H = c.H;
  const bool lstm = c.cell == Cell::kLstm;
  const std::vector<double> dout = use_dout ? randn<double>(B * T_ * H, g) : std::vector<double>();
  const std::vector<double> dhl = use_dhl ? randn<double>(B * H, g) : std::vector<double>();
  const std::vector<double> dcl = lstm && use_dcl ? randn<double>(B * H, g) : std::vector<double>();
  const Fwd<double> f = forward(c, true);
  const Grads<double> d = backward(c, f, dout, dhl, dcl);

  // L = <dout, outputs> + <dhl, h_last> + <dcl, c_last>, on the inference path; *mag = sum of |terms|
  auto loss = [&](const Case<double>& cc, double* mag) {
    const Fwd<double> o = forward(cc, false, !dout.empty());
    double L = 0, M = 0;
    for (size_t i = 0; i < dout.size(); ++i) { L += dout[i] * o.out[i]; M += std::fabs(dout[i] * o.out[i]); }
    for (size_t i = 0; i < dhl.size(); ++i) { L += dhl[i] * o.hl[i]; M += std::fabs(dhl[i] * o.hl[i]); }
    for (size_t i = 0; i < dcl.size(); ++i) { L += dcl[i] * o.cl[i]; M += std::fabs(dcl[i] * o.cl[i]); }
    if (mag) *mag = M;
    return L;
  };

  struct Target {
    const char* what;
    std::vector<double> Case<double>::*param;
    const std::vector<double>* grad;
    bool forces_init;
  };
  std::vector<Target> targets = {{"dx", &Case<double>::x, &d.dx, false},
                                 {"d_kernel", &Case<double>::k, &d.dk, false},
                                 {"d_recurrent_kernel", &Case<double>::r, &d.dr, false}};
  if (c.use_bias) targets.push_back({"d_bias", &Case<double>::b, &d.db, false});
  targets.push_back({"d_h0", &Case<double>::h0, &d.dh0, true});  // h0 absent: gradient at the zero state
  if (lstm) targets.push_back({"d_c0", &Case<double>::c0, &d.dc0, true});

  // Error model, eps = 1e-6: L is a sum of terms of total magnitude S, evaluated with a rounding error
  // of a few u·S (u = 2^-53), so the central quotient carries ~u·S/eps of noise; truncation
  // (eps² f'''/6) is ~1e-13. Allowed: 8·u·S/eps + 1e-9 absolute plus 1e-7 relative. A wrong gradient
  // is off by O(1) relative; these bounds are ~1e-6 of the typical gradient on the small cases.
  double S = 0;
  loss(c, &S);
  const double eps = 1e-6, atol = 1e-9 + 8 * 0x1p-53 * S / eps, rtol = 1e-7;
  Case<double> cp = c;
  for (const Target& t : targets) {
    const std::vector<double>& an = *t.grad;
    const index_t n = index_t((c.*t.param).size());
    if (index_t(an.size()) != n) { check(false, name + " " + t.what + " has the wrong size"); continue; }
    // stratified sample: one random entry in each of `samples` equal slices (all entries if few)
    std::vector<index_t> idx;
    if (n <= samples) {
      for (index_t i = 0; i < n; ++i) idx.push_back(i);
    } else {
      for (int s = 0; s < samples; ++s) {
        const index_t lo = n * s / samples, hi = n * (s + 1) / samples;
        idx.push_back(lo + index_t(g() % std::uint32_t(hi - lo)));
      }
    }
    double worst = 0, worst_fd = 0, worst_an = 0;
    index_t worst_i = -1;
    for (index_t i : idx) {
      std::vector<double>& v = cp.*t.param;
      const double keep = v[i];
      if (t.forces_init) cp.use_init = true;
      v[i] = keep + eps;
      const double lp = loss(cp, nullptr);
      v[i] = keep - eps;
      const double lm = loss(cp, nullptr);
      v[i] = keep;
      cp.use_init = c.use_init;
      const double fd = (lp - lm) / (2 * eps);
      const double e = std::fabs(fd - an[i]) / (atol + rtol * std::fabs(fd));
      if (!(e <= worst) || std::isnan(e)) { worst = std::isnan(e) ? INFINITY : e; worst_fd = fd; worst_an = an[i]; worst_i = i; }
    }
    check(worst <= 1.0, name + " " + t.what + " vs finite differences (worst entry " + std::to_string(worst_i) +
                            ": fd " + fmt(worst_fd) + " vs " + fmt(worst_an) + ", " + fmt(worst) + " x tolerance)");
  }
}

static void test_cells_small(std::mt19937& g) {
  const index_t shapes[][4] = {{1, 1, 1, 1}, {1, 4, 3, 1}, {3, 5, 4, 7}, {2, 3, 1, 17},
                               {4, 3, 2, 16}, {2, 4, 3, 9}, {2, 3, 2, 33}};
  const Activation combos[][2] = {{Activation::kTanh, Activation::kSigmoid},
                                  {Activation::kTanh, Activation::kTanh},
                                  {Activation::kLinear, Activation::kSigmoid},
                                  {Activation::kLinear, Activation::kTanh}};
  int n = 0;
  for (Cell cell : kCells)
    for (auto& s : shapes)
      for (int variant = 0; variant < 16; ++variant, ++n) {
        const Activation* ac = combos[(variant + n / 16) % 4];
        Case<double> c = make_case<double>(g, cell, s[0], s[1], s[2], s[3], ac[0], ac[1], variant & 1,
                                           variant & 2, variant & 4, variant & 8);
        const std::string name = c.name();
        check_vs_reference(c, name + " f64");
        const Case<float> cf = cast_case<float>(c);
        check_vs_reference(cf, name + " f32");
        check_masking(c, name + " f64");
        check_masking(cf, name + " f32");
        // absent gradients: d_outputs every 5th case, d_h_last every 7th, d_c_last every 3rd
        fd_check(c, g, n % 5 != 4, n % 7 != 3, n % 3 != 2, 16, name);
      }
  // relu / hard_sigmoid: forward only (kinks make finite differences meaningless)
  for (Cell cell : kCells)
    for (int variant = 0; variant < 4; ++variant) {
      Case<double> c = make_case<double>(g, cell, 3, 5, 4, 7, variant & 1 ? Activation::kRelu : Activation::kTanh,
                                         Activation::kHardSigmoid, variant & 2, true, true, true);
      check_vs_reference(c, c.name() + " f64");
      check_vs_reference(cast_case<float>(c), c.name() + " f32");
    }
}

// A case big enough to run on 2 threads (per-step recurrent work several times the serial
// threshold) with an uneven unit split (H = 67, not a multiple of any micro-tile width): reference + FD.
static void test_cells_parallel(std::mt19937& g) {
  set_num_threads(2);
  for (Cell cell : kCells) {
    Case<double> c = make_case<double>(g, cell, 100, 3, 4, 67, Activation::kTanh, Activation::kSigmoid, true, true,
                                       true, true);
    const index_t GH = c.G() * c.H;
    check(recurrent_threads(2.0 * c.B * GH * c.H, c.H, kernels<double>().nr) > 1 || !have_openmp(),
          c.name() + " is big enough to run on 2 threads");
    check_vs_reference(c, c.name() + " 2 threads f64");
    check_vs_reference(cast_case<float>(c), c.name() + " 2 threads f32");
    check_masking(c, c.name() + " 2 threads f64");
    fd_check(c, g, true, true, true, 6, c.name() + " 2 threads");
  }
}

// ---------------------------------------------------------------------------------------------
// 3. float32 vs float64

static void test_f32_vs_f64(std::mt19937& g) {
  for (Cell cell : kCells)
    for (int back = 0; back < 2; ++back) {
      // parameters rounded to float first: both precisions see the same numbers
      const Case<float> cf = make_case<float>(g, cell, 8, 16, 24, 40, Activation::kTanh, Activation::kSigmoid, back,
                                              true, true, true);
      const Case<double> cd = cast_case<double>(cf);
      const Fwd<float> ff = forward(cf, true);
      const Fwd<double> fd = forward(cd, true);
      double e = std::max(rel_err(ff.out, fd.out), rel_err(ff.hl, fd.hl));
      if (cell == Cell::kLstm) e = std::max(e, rel_err(ff.cl, fd.cl));
      check(e < 1e-5, cf.name() + " float32 forward vs float64 (err " + fmt(e) + ")");

      std::mt19937 g2(7);
      const std::vector<double> dout = randn<double>(cd.B * cd.T_ * cd.H, g2), dhl = randn<double>(cd.B * cd.H, g2);
      const std::vector<double> dcl = cell == Cell::kLstm ? randn<double>(cd.B * cd.H, g2) : std::vector<double>();
      const Grads<double> dd = backward(cd, fd, dout, dhl, dcl);
      const Grads<float> df = backward(cf, ff, cast_vec<float>(dout), cast_vec<float>(dhl), cast_vec<float>(dcl));
      double eb = std::max({rel_err(df.dx, dd.dx), rel_err(df.dk, dd.dk), rel_err(df.dr, dd.dr),
                            rel_err(df.db, dd.db), rel_err(df.dh0, dd.dh0)});
      if (cell == Cell::kLstm) eb = std::max(eb, rel_err(df.dc0, dd.dc0));
      // backward goes through 16 steps of a recurrence plus (T·B)-long sums: a looser bound
      check(eb < 1e-4, cf.name() + " float32 backward vs float64 (err " + fmt(eb) + ")");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. 1 vs 2 threads: bit-identical

template <class T>
static void test_threads(std::mt19937& g) {
  const std::string ty = sizeof(T) == 8 ? " f64" : " f32";
  for (Cell cell : kCells) {
    const Case<T> c = make_case<T>(g, cell, 64, 10, 64, 256, Activation::kTanh, Activation::kSigmoid, true, true,
                                   true, true);
    const index_t GH = c.G() * c.H;
    check(recurrent_threads(2.0 * c.B * GH * c.H, c.H, kernels<T>().nr) > 1 || !have_openmp(),
          c.name() + ty + " is big enough to run on 2 threads");
    std::mt19937 g2(5);
    const std::vector<T> dout = randn<T>(c.B * c.T_ * c.H, g2), dhl = randn<T>(c.B * c.H, g2);
    const std::vector<T> dcl = cell == Cell::kLstm ? randn<T>(c.B * c.H, g2) : std::vector<T>();
    Fwd<T> f[2], fi[2];
    Grads<T> d[2];
    for (int k = 0; k < 2; ++k) {
      set_num_threads(k + 1);
      f[k] = forward(c, true);
      fi[k] = forward(c, false);
      d[k] = backward(c, f[k], dout, dhl, dcl);
    }
    set_num_threads(2);
    check(bit_equal(f[0].out, f[1].out) && bit_equal(f[0].hl, f[1].hl) && bit_equal(f[0].cl, f[1].cl) &&
              bit_equal(f[0].hs, f[1].hs) && bit_equal(f[0].cs, f[1].cs) && bit_equal(f[0].gates, f[1].gates) &&
              bit_equal(f[0].extra, f[1].extra),
          c.name() + ty + " training forward: 1 vs 2 threads bit-identical");
    check(bit_equal(fi[0].out, fi[1].out) && bit_equal(fi[0].hl, fi[1].hl) && bit_equal(fi[0].cl, fi[1].cl),
          c.name() + ty + " inference forward: 1 vs 2 threads bit-identical");
    check(bit_equal(d[0].dx, d[1].dx) && bit_equal(d[0].dk, d[1].dk) && bit_equal(d[0].dr, d[1].dr) &&
              bit_equal(d[0].db, d[1].db) && bit_equal(d[0].dh0, d[1].dh0) && bit_equal(d[0].dc0, d[1].dc0),
          c.name() + ty + " backward: 1 vs 2 threads bit-identical");
    // inference (chunked layer GEMM, ping-pong states) vs training (whole-sequence cache)
    const double tol = sizeof(T) == 8 ? 1e-13 : 1e-6;
    const double e = std::max({rel_err(fi[1].out, f[1].out), rel_err(fi[1].hl, f[1].hl), rel_err(fi[1].cl, f[1].cl)});
    check(e < tol, c.name() + ty + " inference vs training forward (err " + fmt(e) + ")");
  }
}

int main() {
  if (requested_isa_unavailable()) return kSkip;
  std::printf("rnnkit cell tests, ISA %s, OpenMP %s\n", active_isa(), have_openmp() ? "on" : "off");
  std::mt19937 g(4321);
  test_by_hand<double>();
  test_by_hand<float>();
  test_cells_small(g);
  test_cells_parallel(g);
  test_f32_vs_f64(g);
  test_threads<float>(g);
  test_threads<double>(g);
  return finish();
}
