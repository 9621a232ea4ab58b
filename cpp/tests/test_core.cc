// ctest suite for the C++ core: GEMM vs the naive loop (odd shapes, transposes, blocked and
// reversed axes), activations vs libm, SimpleRNN forward/backward vs naive twins and vs central
// finite differences, and 1 vs N threads. Prints one line per failure and "N passed, N failed".
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "rnnkit/dense.h"
#include "rnnkit/gemm.h"
#include "rnnkit/kernels.h"
#include "rnnkit/sequence.h"
#include "rnnkit/tuning.h"
#include "rnnkit/settings.h"
#include "rnnkit/simple_rnn.h"
#include "rnnkit/threading.h"
#include "rnnkit/weight_pack.h"
#include "test_util.h"

using namespace rnnkit;
using namespace rnnkit_test;




template <class T> static double tol() { return sizeof(T) == 4 ? 1e-5 : 1e-12; }

template <class T>
static void test_gemm(std::mt19937& g) {
  const int sizes[][3] = {{1, 1, 1}, {1, 7, 3}, {13, 33, 17}, {50, 65, 400}, {97, 130, 51}, {200, 31, 800}, {40, 33, 2000}};  // the last: a long K (gemm_sum_k's K split)
  for (auto& s : sizes) {
    const index_t M = s[0], N = s[1], K = s[2];
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (int acc = 0; acc < 2; ++acc) {
          std::vector<T> a = randn<T>(M * K, g), b = randn<T>(K * N, g), c = randn<T>(M * N, g);
          std::vector<T> c_ref = c;
          MatView<const T> av = ta ? row_major<const T>(a.data(), K, M, M).t() : row_major<const T>(a.data(), M, K, K);
          MatView<const T> bv = tb ? row_major<const T>(b.data(), N, K, K).t() : row_major<const T>(b.data(), K, N, N);
          gemm_naive(av, bv, row_major(c_ref.data(), M, N, N), acc);
          for (int nt : {1, 2}) {
            std::vector<T> c2 = c;
            gemm(av, bv, row_major(c2.data(), M, N, N), acc, nt);
            check(rel_err(c2, c_ref) < tol<T>() * std::sqrt(double(K)),
                  "gemm " + std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K) +
                      " ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) + " nt=" + std::to_string(nt));
          }
        }
  }
  // Two-level (b, t) rows read in reversed time order, written to a two-level C.
  const index_t B = 5, T_ = 7, I = 9, H = 19;
  std::vector<T> x = randn<T>(B * T_ * I, g), w = randn<T>(I * H, g);
  std::vector<T> c1(B * T_ * H), c2(B * T_ * H);
  for (int back = 0; back < 2; ++back) {
    MatView<const T> xs = sequence_rows<const T>(x.data(), B, T_, I, 0, T_, back);
    gemm_naive(xs, row_major<const T>(w.data(), I, H, H), sequence_rows(c1.data(), B, T_, H, 0, T_, back), false);
    gemm(xs, row_major<const T>(w.data(), I, H, H), sequence_rows(c2.data(), B, T_, H, 0, T_, back), false, 2);
    check(rel_err(c2, c1) < tol<T>() * 4, "gemm blocked rows back=" + std::to_string(back));
    // sanity: row (b, t) of the product is x[b, t] @ w, whatever the traversal
    double s = 0;
    for (index_t i = 0; i < I; ++i) s += double(x[(3 * T_ + 2) * I + i]) * double(w[i * H + 4]);
    check(std::fabs(s - double(c2[(3 * T_ + 2) * H + 4])) < 1e-4 * (1 + std::fabs(s)), "gemm blocked element");
  }
}

template <class T>
static void test_activations() {
  std::vector<T> x;
  for (double v = -20; v <= 20; v += 0.01) x.push_back(T(v));
  x.push_back(T(1e-30)); x.push_back(T(-1e-30)); x.push_back(T(0));
  std::vector<T> y(x.size());
  double worst_tanh = 0, worst_sig = 0;
  kernels<T>().activation(Activation::kTanh, x.data(), y.data(), index_t(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    double r = std::tanh(double(x[i]));
    worst_tanh = std::max(worst_tanh, r == 0 ? std::fabs(double(y[i])) : std::fabs(double(y[i]) - r) / std::fabs(r));
  }
  kernels<T>().activation(Activation::kSigmoid, x.data(), y.data(), index_t(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    double r = 1.0 / (1.0 + std::exp(-double(x[i])));
    worst_sig = std::max(worst_sig, std::fabs(double(y[i]) - r) / r);
  }
  const double eps = sizeof(T) == 4 ? 1.2e-7 : 2.3e-16;
  check(worst_tanh < 4 * eps, "tanh relative error " + std::to_string(worst_tanh / eps) + " eps");
  check(worst_sig < 4 * eps, "sigmoid relative error " + std::to_string(worst_sig / eps) + " eps");
}

template <class T>
struct RnnCase {
  index_t B, T_, I, H;
  std::vector<T> x, k, r, b, h0;
  std::vector<std::uint8_t> mask;
  Activation act;
  bool back, use_mask, use_bias, use_h0;
};

template <class T>
static RnnCase<T> make_case(std::mt19937& g, index_t B, index_t T_, index_t I, index_t H, Activation act,
                            bool back, bool use_mask, bool use_bias, bool use_h0) {
  RnnCase<T> c{B, T_, I, H, randn<T>(B * T_ * I, g), randn<T>(I * H, g, 0.5), randn<T>(H * H, g, 0.4 / std::sqrt(double(H))),
               randn<T>(H, g), randn<T>(B * H, g), std::vector<std::uint8_t>(B * T_, 1), act, back, use_mask, use_bias, use_h0};
  if (use_mask) {
    std::bernoulli_distribution keep(0.7);
    for (auto& m : c.mask) m = keep(g);
    for (index_t t = 0; t < T_; ++t) c.mask[t] = 0;  // an all-masked row
  }
  return c;
}

template <class T>
static SimpleRnnForward<T> fwd_args(const RnnCase<T>& c) {
  SimpleRnnForward<T> a;
  a.batch = c.B; a.steps = c.T_; a.input_size = c.I; a.units = c.H;
  a.x = c.x.data(); a.kernel = c.k.data(); a.recurrent_kernel = c.r.data();
  a.bias = c.use_bias ? c.b.data() : nullptr; a.h0 = c.use_h0 ? c.h0.data() : nullptr;
  a.mask = c.use_mask ? c.mask.data() : nullptr; a.activation = c.act; a.go_backwards = c.back;
  return a;
}

template <class T>
static void test_simple_rnn(std::mt19937& g) {
  // the last two cross the forward pass's projection chunks (chunk = ceil(512 / B) steps)
  const index_t shapes[][4] = {{1, 3, 2, 4}, {3, 5, 1, 1}, {13, 7, 3, 17}, {4, 9, 33, 40}, {20, 12, 16, 70},
                               {1, 600, 3, 5}, {3, 200, 2, 9}};
  const Activation acts[] = {Activation::kTanh, Activation::kRelu, Activation::kSigmoid, Activation::kLinear};
  int n = 0;
  for (auto& s : shapes)
    for (Activation act : acts)
      for (int variant = 0; variant < 4; ++variant, ++n) {
        RnnCase<T> c = make_case<T>(g, s[0], s[1], s[2], s[3], act, variant & 1, variant & 2, n % 3 != 0, n % 2 == 0);
        const index_t B = c.B, T_ = c.T_, I = c.I, H = c.H;
        std::string name = "simple_rnn " + std::to_string(B) + "," + std::to_string(T_) + "," + std::to_string(I) + "," +
                           std::to_string(H) + " " + activation_name(act) + " v" + std::to_string(variant);
        std::vector<T> out1(B * T_ * H), out2(B * T_ * H), hl1(B * H), hl2(B * H), st1((T_ + 1) * B * H), st2((T_ + 1) * B * H);
        SimpleRnnForward<T> a = fwd_args(c);
        a.outputs = out1.data(); a.h_last = hl1.data(); a.states = st1.data();
        simple_rnn_forward_naive(a);
        a.outputs = out2.data(); a.h_last = hl2.data(); a.states = st2.data();
        simple_rnn_forward(a);
        check(rel_err(out2, out1) < tol<T>() && rel_err(hl2, hl1) < tol<T>(), name + " forward vs naive");

        std::vector<T> dout = randn<T>(B * T_ * H, g), dhl = randn<T>(B * H, g);
        SimpleRnnBackward<T> bk;
        bk.batch = B; bk.steps = T_; bk.input_size = I; bk.units = H;
        bk.d_outputs = dout.data(); bk.d_h_last = dhl.data(); bk.x = c.x.data(); bk.kernel = c.k.data();
        bk.recurrent_kernel = c.r.data(); bk.states = st1.data(); bk.mask = a.mask; bk.activation = act; bk.go_backwards = c.back;
        std::vector<T> g1[5], g2[5];
        const index_t sizes[5] = {B * T_ * I, I * H, H * H, H, B * H};
        for (int i = 0; i < 5; ++i) { g1[i].resize(sizes[i]); g2[i].resize(sizes[i]); }
        auto run = [&](std::vector<T>* gg, bool naive) {
          bk.dx = gg[0].data(); bk.d_kernel = gg[1].data(); bk.d_recurrent_kernel = gg[2].data();
          bk.d_bias = c.use_bias ? gg[3].data() : nullptr; bk.d_h0 = gg[4].data();
          naive ? simple_rnn_backward_naive(bk) : simple_rnn_backward(bk);
        };
        run(g1, true);
        run(g2, false);
        bool ok = true;
        for (int i = 0; i < 5; ++i) ok = ok && rel_err(g2[i], g1[i]) < tol<T>() * 10;
        check(ok, name + " backward vs naive");

        if (sizeof(T) == 8 && act != Activation::kRelu && B * T_ * I < 600) {
          // central finite differences of L = <dout, outputs> + <dhl, h_last> w.r.t. x and kernel
          auto loss = [&](const RnnCase<T>& cc) {
            std::vector<T> o(B * T_ * H), h(B * H);
            SimpleRnnForward<T> f = fwd_args(cc);
            f.outputs = o.data(); f.h_last = h.data();
            simple_rnn_forward(f);
            double L = 0;
            for (index_t i = 0; i < B * T_ * H; ++i) L += double(dout[i]) * double(o[i]);
            for (index_t i = 0; i < B * H; ++i) L += double(dhl[i]) * double(h[i]);
            return L;
          };
          double worst = 0;
          const double eps = 1e-6;
          for (index_t i = 0; i < std::min<index_t>(I * H, 12); ++i) {
            RnnCase<T> cp = c, cm = c;
            cp.k[i] += eps; cm.k[i] -= eps;
            double fd = (loss(cp) - loss(cm)) / (2 * eps);
            worst = std::max(worst, std::fabs(fd - double(g2[1][i])) / (1e-6 + std::fabs(fd)));
          }
          for (index_t i = 0; i < std::min<index_t>(B * T_ * I, 12); ++i) {
            RnnCase<T> cp = c, cm = c;
            cp.x[i] += eps; cm.x[i] -= eps;
            double fd = (loss(cp) - loss(cm)) / (2 * eps);
            worst = std::max(worst, std::fabs(fd - double(g2[0][i])) / (1e-6 + std::fabs(fd)));
          }
          check(worst < 1e-5, name + " finite differences (worst " + std::to_string(worst) + ")");
        }
      }
}

template <class T>
static void test_threads(std::mt19937& g) {
  RnnCase<T> c = make_case<T>(g, 64, 20, 64, 256, Activation::kTanh, false, true, true, true);
  const index_t B = c.B, T_ = c.T_, H = c.H;
  std::vector<T> o1(B * T_ * H), o2(B * T_ * H), h1(B * H), h2(B * H);
  SimpleRnnForward<T> a = fwd_args(c);
  set_num_threads(1);
  a.outputs = o1.data(); a.h_last = h1.data();
  simple_rnn_forward(a);
  set_num_threads(2);
  a.outputs = o2.data(); a.h_last = h2.data();
  simple_rnn_forward(a);
  check(o1 == o2 && h1 == h2, "1 vs 2 threads give identical forward results");
}

// gemm_sum_k: groups of products over a long K (transposed A as in the weight gradients, a job
// with no rows, B shared between jobs) vs the naive loop, and bit-identical for 1, 2 and 3 threads.
template <class T>
static void test_gemm_sum_k(std::mt19937& g) {
  const index_t sizes[][4] = {{5, 37, 7, 1}, {28, 150, 4200, 150}, {0, 40, 1600, 40}, {13, 70, 2000, 17}, {3, 9, 0, 4}};
  for (auto& sz : sizes) {
    const index_t M1 = sz[0], N = sz[1], K = sz[2], M2 = sz[3];
    std::vector<T> a1 = randn<T>(K * M1 + 1, g), a2 = randn<T>(K * M2 + 1, g), b = randn<T>(K * N, g);
    std::vector<T> r1(M1 * N + 1), r2(M2 * N + 1);
    const MatView<const T> a1v = row_major<const T>(a1.data(), K, M1, M1).t();
    const MatView<const T> a2v = row_major<const T>(a2.data(), K, M2, M2).t();
    const MatView<const T> bv = row_major<const T>(b.data(), K, N, N);
    gemm_naive(a1v, bv, row_major(r1.data(), M1, N, N), false);
    gemm_naive(a2v, bv, row_major(r2.data(), M2, N, N), false);
    std::vector<T> sums_ref(N, T(0));
    for (index_t k = 0; k < K; ++k)
      for (index_t j = 0; j < N; ++j) sums_ref[j] += b[k * N + j];
    std::vector<T> first1, first2, first_sums;
    for (int nt : {1, 2, 3}) {
      std::vector<T> c1(M1 * N + 1, T(7)), c2(M2 * N + 1, T(7)), sums(N, T(7));
      // the column sums ride on the job with no rows in one case (they must still be computed)
      const GemmJob<T> jobs[2] = {{a1v, bv, row_major(c1.data(), M1, N, N), false, M1 == 0 ? sums.data() : nullptr},
                                  {a2v, bv, row_major(c2.data(), M2, N, N), true, M1 == 0 ? nullptr : sums.data()}};
      gemm_sum_k(jobs, 2, nt);
      check(rel_err(sums, sums_ref) < tol<T>() * std::sqrt(double(K) + 1), "gemm_sum_k column sums nt=" + std::to_string(nt));
      if (nt == 1) first_sums = sums; else check(sums == first_sums, "gemm_sum_k column sums identical to 1 thread");
      c1.pop_back(); c2.pop_back();
      std::vector<T> e1(r1.begin(), r1.end() - 1), e2(r2.begin(), r2.end() - 1);
      const std::string name = "gemm_sum_k " + std::to_string(M1) + "+" + std::to_string(M2) + "x" +
                               std::to_string(N) + "x" + std::to_string(K) + " nt=" + std::to_string(nt);
      check(rel_err(c1, e1) < tol<T>() * std::sqrt(double(K) + 1) && rel_err(c2, e2) < tol<T>() * std::sqrt(double(K) + 1),
            name);
      if (nt == 1) {
        first1 = c1;
        first2 = c2;
      } else {
        check(c1 == first1 && c2 == first2, name + " identical to 1 thread");
      }
    }
  }
}

// gemv_packed (few rows, no A packing) against the naive loop: 1..4 rows, plain and (b, t) rows,
// K over several k blocks, partial panels, gate groups, accumulate; and a WeightPack's layouts
// equal packing on the spot (same products).
template <class T>
static void test_gemv(std::mt19937& g) {
  const int sizes[][3] = {{1, 1, 1}, {1, 37, 5}, {2, 70, 300}, {3, 129, 800}, {4, 64, 384}, {4, 33, 1000}};
  for (auto& s : sizes) {
    const index_t M = s[0], N = s[1], K = s[2];
    for (index_t groups : {index_t(1), index_t(N % 3 == 0 ? 3 : 1)})
      for (int acc = 0; acc < 2; ++acc) {
        std::vector<T> a = randn<T>(M * K, g), b = randn<T>(K * N, g), c = randn<T>(M * N, g);
        std::vector<T> c_ref = c, c2 = c;
        const MatView<const T> bv = row_major<const T>(b.data(), K, N, N);
        gemm_naive(row_major<const T>(a.data(), M, K, K), bv, row_major(c_ref.data(), M, N, N), acc);
        PackedB<T> pb;
        packed_b_prepare(pb, K, N / groups, groups);
        packed_b_fill(pb, bv, 0, 1);
        check(gemv_fits(row_major<const T>(a.data(), M, K, K)), "gemv_fits");
        // two halves of the panels, as two threads would
        gemv_packed(row_major<const T>(a.data(), M, K, K), pb, 0, pb.panels / 2, row_major(c2.data(), M, N, N), acc);
        gemv_packed(row_major<const T>(a.data(), M, K, K), pb, pb.panels / 2, pb.panels, row_major(c2.data(), M, N, N), acc);
        check(rel_err(c2, c_ref) < tol<T>() * std::sqrt(double(K)),
              "gemv " + std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K) + " groups=" +
                  std::to_string(groups) + " acc=" + std::to_string(acc));
      }
  }
  // rows (b, t) of a batch-major sequence, reversed, as the layer GEMM of a step reads them
  const index_t B = 2, T_ = 3, I = 45, H = 20;
  std::vector<T> x = randn<T>(B * T_ * I, g), w = randn<T>(I * H, g);
  std::vector<T> c1(B * T_ * H), c2(B * T_ * H);
  PackedB<T> pb;
  packed_b_prepare(pb, I, H, 1);
  packed_b_fill(pb, row_major<const T>(w.data(), I, H, H), 0, 1);
  const MatView<const T> xs = sequence_rows<const T>(x.data(), B, T_, I, 1, 1, true);
  gemm_naive(xs, row_major<const T>(w.data(), I, H, H), sequence_rows(c1.data(), B, T_, H, 1, 1, true), false);
  gemv_packed(xs, pb, 0, pb.panels, sequence_rows(c2.data(), B, T_, H, 1, 1, true), false);
  check(rel_err(c2, c1) < tol<T>() * 8, "gemv on (b, t) rows");
  // WeightPack: layouts made on request, the same as packing on the spot
  std::vector<T> k = randn<T>(I * 4 * H, g), r = randn<T>(H * 4 * H, g);
  WeightPack<T> pack(I, H, 4, k.data(), r.data());
  for (index_t groups : {index_t(1), index_t(4)}) {
    auto layout = pack.get(groups);
    PackedB<T> fresh;
    packed_b_prepare(fresh, H, 4 * H / groups, groups);
    packed_b_fill(fresh, row_major<const T>(r.data(), H, 4 * H, 4 * H), 0, 1);
    const index_t n = H * groups * fresh.panels * fresh.nr;
    bool same = layout->recurrent.panels == fresh.panels && layout->recurrent.groups == groups;
    for (index_t i = 0; same && i < n; ++i) same = layout->recurrent.buf.data()[i] == fresh.buf.data()[i];
    check(same, "WeightPack recurrent layout, groups=" + std::to_string(groups));
    check(pack.get(groups) == layout, "WeightPack reuses its layout");
  }
  check(pack.packed_bytes() > 0, "WeightPack packed_bytes");
}

// parse_settings with a fake environment: valid values (case and surrounding whitespace ignored),
// and every invalid one recorded once with the default in force.
static void test_settings() {
  using Env = std::map<std::string, std::string>;
  auto parse = [](const Env& env) {
    return parse_settings([&env](const char* name) -> const char* {
      auto it = env.find(name);
      return it == env.end() ? nullptr : it->second.c_str();
    });
  };
  const Settings d = parse({});
  check(d.isa == "auto" && d.batch_lanes == 0 && d.recurrent_split == 0 && d.parallel_min_flops == 1e6 &&
            d.cache_mb == 1024 && d.problems.empty(), "settings: defaults");
  const Settings e = parse({{"RNNKIT_ISA", " "}, {"RNNKIT_BATCH_LANES", ""}, {"RNNKIT_CACHE_MB", ""},
                            {"RNNKIT_RECURRENT_SPLIT", "\t"}, {"RNNKIT_PARALLEL_MIN_FLOPS", ""}});
  check(e.isa == "auto" && e.cache_mb == 1024 && e.problems.empty(), "settings: empty means unset");
  const Settings v = parse({{"RNNKIT_ISA", " Generic "}, {"RNNKIT_BATCH_LANES", "OFF"},
                            {"RNNKIT_RECURRENT_SPLIT", "units\n"}, {"RNNKIT_PARALLEL_MIN_FLOPS", " 2.5e5 "},
                            {"RNNKIT_CACHE_MB", "0"}});
  check(v.isa == "generic" && v.batch_lanes == 2 && v.recurrent_split == 2 &&
            v.parallel_min_flops == 2.5e5 && v.cache_mb == 0 && v.problems.empty(), "settings: valid values");
  const Settings a = parse({{"RNNKIT_ISA", "auto"}, {"RNNKIT_BATCH_LANES", "on"},
                            {"RNNKIT_RECURRENT_SPLIT", "Batch"}, {"RNNKIT_PARALLEL_MIN_FLOPS", "inf"},
                            {"RNNKIT_CACHE_MB", "+7"}});
  check(a.isa == "auto" && a.batch_lanes == 1 && a.recurrent_split == 1 && std::isinf(a.parallel_min_flops) &&
            a.cache_mb == 7 && a.problems.empty(), "settings: auto, on, batch, inf, +7");
  const Settings b = parse({{"RNNKIT_ISA", "sse9"}, {"RNNKIT_BATCH_LANES", "1"},
                            {"RNNKIT_RECURRENT_SPLIT", "rows"}, {"RNNKIT_PARALLEL_MIN_FLOPS", "nan"},
                            {"RNNKIT_CACHE_MB", "-1"}});
  const char* names[] = {"RNNKIT_ISA", "RNNKIT_BATCH_LANES", "RNNKIT_RECURRENT_SPLIT",
                         "RNNKIT_PARALLEL_MIN_FLOPS", "RNNKIT_CACHE_MB"};
  const char* values[] = {"sse9", "1", "rows", "nan", "-1"};
  bool ok = b.problems.size() == 5;
  for (std::size_t i = 0; ok && i < 5; ++i)
    ok = b.problems[i].name == names[i] && b.problems[i].value == values[i] && !b.problems[i].accepted.empty();
  check(ok, "settings: one problem per invalid variable, in order");
  check(b.isa == "auto" && b.batch_lanes == 0 && b.recurrent_split == 0 && b.parallel_min_flops == 1e6 &&
            b.cache_mb == 1024, "settings: invalid values keep the defaults");
  check(ok && b.problems[1].accepted == "auto, on, off" && b.problems[1].used == "auto" &&
            b.problems[3].used == "1e+06" && b.problems[4].used == "1024", "settings: accepted and used");
  for (const char* bad : {"12x", "1e3", "99999999999999999999", "17592186044416", " "})
    check(parse({{"RNNKIT_CACHE_MB", bad}}).problems.size() == (std::string(bad) == " " ? 0u : 1u),
          std::string("settings: RNNKIT_CACHE_MB='") + bad + "'");
  for (const char* bad : {"-1", "1e6x", "fast", "-inf"})
    check(parse({{"RNNKIT_PARALLEL_MIN_FLOPS", bad}}).problems.size() == 1,
          std::string("settings: RNNKIT_PARALLEL_MIN_FLOPS='") + bad + "'");
  // an ISA this CPU lacks is a problem too, its accepted values naming what the CPU supports
  for (const char* isa : {"generic", "avx2", "avx512"}) {
    const Settings s = parse({{"RNNKIT_ISA", isa}});
    check(isa_supported(isa) ? s.isa == isa && s.problems.empty()
                             : s.isa == "auto" && s.problems.size() == 1 &&
                                   s.problems[0].accepted.find(std::string("lacks ") + isa) != std::string::npos,
          std::string("settings: RNNKIT_ISA=") + isa);
  }
}

// Dense forward / backward vs their naive twins (every activation, with and without bias, odd shapes,
// N = 0), and the naive backward vs central finite differences (float64).
template <class T>
static void test_dense(std::mt19937& g) {
  const Activation acts[] = {Activation::kLinear, Activation::kTanh, Activation::kSigmoid, Activation::kRelu,
                             Activation::kHardSigmoid};
  const index_t shapes[][3] = {{0, 3, 4}, {1, 1, 1}, {5, 7, 13}, {37, 64, 130}, {300, 20, 33}};
  for (const auto& sh : shapes)
    for (Activation act : acts)
      for (int with_bias = 0; with_bias < 2; ++with_bias) {
        const index_t N = sh[0], I = sh[1], U = sh[2];
        const std::string name = "dense N=" + std::to_string(N) + " I=" + std::to_string(I) + " U=" +
                                 std::to_string(U) + " act=" + std::to_string(int(act)) + " bias=" +
                                 std::to_string(with_bias);
        std::vector<T> x = randn<T>(N * I, g), k = randn<T>(I * U, g, 0.3), b = randn<T>(U, g), dy = randn<T>(N * U, g);
        std::vector<T> y1(N * U), y2(N * U);
        DenseForward<T> f;
        f.rows = N, f.input_size = I, f.units = U, f.x = x.data(), f.kernel = k.data();
        f.bias = with_bias ? b.data() : nullptr, f.activation = act, f.y = y1.data();
        dense_forward(f);
        f.y = y2.data();
        dense_forward_naive(f);
        check(rel_err(y1, y2) < tol<T>() * std::sqrt(double(I) + 1), name + " forward vs naive");
        std::vector<T> dx1(N * I), dk1(I * U), db1(U), dz1(N * U), dx2(N * I), dk2(I * U), db2(U), dz2(N * U);
        DenseBackward<T> bw;
        bw.rows = N, bw.input_size = I, bw.units = U, bw.d_y = dy.data(), bw.x = x.data(), bw.kernel = k.data();
        bw.y = y2.data(), bw.activation = act;
        bw.dx = dx1.data(), bw.d_kernel = dk1.data(), bw.d_bias = with_bias ? db1.data() : nullptr, bw.dz = dz1.data();
        dense_backward(bw);
        bw.dx = dx2.data(), bw.d_kernel = dk2.data(), bw.d_bias = with_bias ? db2.data() : nullptr, bw.dz = dz2.data();
        dense_backward_naive(bw);
        const double t = tol<T>() * std::sqrt(double(std::max(N, U)) + 1);
        check(rel_err(dx1, dx2) < t && rel_err(dk1, dk2) < t && (!with_bias || rel_err(db1, db2) < t),
              name + " backward vs naive");
      }
  if (sizeof(T) != 8) return;
  // the naive backward vs central differences of L = sum(y * dy)
  const index_t N = 4, I = 3, U = 5;
  for (Activation act : {Activation::kTanh, Activation::kSigmoid}) {
    std::vector<T> x = randn<T>(N * I, g), k = randn<T>(I * U, g, 0.5), b = randn<T>(U, g), dy = randn<T>(N * U, g);
    std::vector<T> y(N * U);
    auto loss = [&]() {
      DenseForward<T> f;
      f.rows = N, f.input_size = I, f.units = U, f.x = x.data(), f.kernel = k.data(), f.bias = b.data();
      f.activation = act, f.y = y.data();
      dense_forward_naive(f);
      double l = 0;
      for (index_t e = 0; e < N * U; ++e) l += double(y[e]) * double(dy[e]);
      return l;
    };
    loss();
    std::vector<T> dx(N * I), dk(I * U), db(U), dz(N * U);
    DenseBackward<T> bw;
    bw.rows = N, bw.input_size = I, bw.units = U, bw.d_y = dy.data(), bw.x = x.data(), bw.kernel = k.data();
    bw.y = y.data(), bw.activation = act, bw.dx = dx.data(), bw.d_kernel = dk.data(), bw.d_bias = db.data();
    bw.dz = dz.data();
    dense_backward_naive(bw);
    auto fd = [&](std::vector<T>& v) {
      std::vector<T> out(v.size());
      for (size_t i = 0; i < v.size(); ++i) {
        const T keep = v[i];
        v[i] = keep + T(1e-6);
        const double up = loss();
        v[i] = keep - T(1e-6);
        const double down = loss();
        v[i] = keep;
        out[i] = T((up - down) / 2e-6);
      }
      return out;
    };
    check(rel_err(dx, fd(x)) < 1e-7 && rel_err(dk, fd(k)) < 1e-7 && rel_err(db, fd(b)) < 1e-7,
          "dense naive backward vs finite differences act=" + std::to_string(int(act)));
  }
}

// Every entry of the active ISA's kernel table is filled (the table is set field by field).
template <class T>
static void test_kernel_table() {
  const Kernels<T>& k = kernels<T>();
  check(k.isa && std::string(k.isa) == active_isa(), "table: isa name");
  check(k.mr > 0 && k.nr > 0 && k.mr_small > 0 && k.lanes > 0 && k.fma_flops_per_iter > 0 && k.nr % k.lanes == 0,
        "table: sizes");
  const void* entries[] = {reinterpret_cast<const void*>(k.macro), reinterpret_cast<const void*>(k.macro_small),
                           reinterpret_cast<const void*>(k.activation),
                           reinterpret_cast<const void*>(k.lstm_forward_cell),
                           reinterpret_cast<const void*>(k.gru_forward_cell),
                           reinterpret_cast<const void*>(k.lstm_backward_cell),
                           reinterpret_cast<const void*>(k.gru_backward_cell), reinterpret_cast<const void*>(k.exp),
                           reinterpret_cast<const void*>(k.fma_probe), reinterpret_cast<const void*>(k.batch_lane_rows),
                           reinterpret_cast<const void*>(k.pack_a_tile),
                           reinterpret_cast<const void*>(k.simple_rnn_forward_cell),
                           reinterpret_cast<const void*>(k.simple_rnn_backward_cell),
                           reinterpret_cast<const void*>(k.gemv)};
  for (const void* e : entries) check(e != nullptr, "table: every kernel set");
}

int main() {
  if (requested_isa_unavailable()) return kSkip;
  std::printf("rnnkit core tests, ISA %s, OpenMP %s\n", active_isa(), have_openmp() ? "on" : "off");
  std::mt19937 g(1234);
  test_kernel_table<float>();
  test_kernel_table<double>();
  test_gemm<float>(g);
  test_gemm<double>(g);
  test_gemm_sum_k<float>(g);
  test_gemm_sum_k<double>(g);
  test_gemv<float>(g);
  test_gemv<double>(g);
  test_dense<float>(g);
  test_dense<double>(g);
  test_activations<float>();
  test_activations<double>();
  test_simple_rnn<float>(g);
  test_simple_rnn<double>(g);
  test_threads<float>(g);
  test_threads<double>(g);
  test_settings();
  return finish();
}
