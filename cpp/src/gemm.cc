// ISA-neutral half of the GEMM: packing and the loop nest around the per-ISA macro kernel.
#include "rnnkit/gemm.h"

#include <algorithm>
#include <cstring>

#include "rnnkit/threading.h"

namespace rnnkit {

void split_range(index_t n, index_t unit, int tid, int nt, index_t* begin, index_t* end) {
  const index_t units = (n + unit - 1) / unit;
  const index_t per = units / nt, rem = units % nt;
  const index_t u0 = tid * per + std::min<index_t>(tid, rem);
  const index_t u1 = u0 + per + (tid < rem ? 1 : 0);
  *begin = std::min(n, u0 * unit);
  *end = std::min(n, u1 * unit);
}

namespace {

// A (rows [row0, row0+m) x cols [k0, k0+kc)) -> panels of mr rows: dst[p*mr*kc + k*mr + i].
template <class T>
void pack_a(const MatView<const T>& a, index_t row0, index_t m, index_t k0, index_t kc, int mr,
            T* dst) {
  if (a.rows.is_plain() && a.rows.stride == 1 && !(a.cols.is_plain() && a.cols.stride == 1)) {
    // A transposed view (X^T in X^T·dG): for each k the m rows are contiguous in memory, so walk
    // k outermost and copy mr-long runs into every panel (one column offset per k, not per element)
    const index_t full = m / mr * mr;
    for (index_t k = 0; k < kc; ++k) {
      const T* s = a.data + a.rows.offset(row0) + a.cols.offset(k0 + k);
      for (index_t ip = 0; ip < full; ip += mr) {
        T* d = dst + ip * kc + k * mr;
        for (int i = 0; i < mr; ++i) d[i] = s[ip + i];
      }
      if (full < m) {
        T* d = dst + full * kc + k * mr;
        for (int i = 0; i < mr; ++i) d[i] = full + i < m ? s[full + i] : T(0);
      }
    }
    return;
  }
  index_t roff[32];
  for (index_t ip = 0; ip < m; ip += mr) {
    const int mv = static_cast<int>(std::min<index_t>(mr, m - ip));
    for (int i = 0; i < mv; ++i) roff[i] = a.rows.offset(row0 + ip + i);
    T* d = dst + (ip / mr) * mr * kc;
    if (a.cols.is_plain() && a.cols.stride == 1) {
      for (int i = 0; i < mv; ++i) {
        const T* s = a.data + roff[i] + k0;
        for (index_t k = 0; k < kc; ++k) d[k * mr + i] = s[k];
      }
    } else {
      for (index_t k = 0; k < kc; ++k) {
        const index_t co = a.cols.offset(k0 + k);
        for (int i = 0; i < mv; ++i) d[k * mr + i] = a.data[roff[i] + co];
      }
    }
    if (mv < mr)
      for (index_t k = 0; k < kc; ++k)
        for (int i = mv; i < mr; ++i) d[k * mr + i] = T(0);
  }
}

// B (rows [k0, k0+kc) x cols [col0, col0+n)) -> panels of nr cols: dst[q*kc*nr + k*nr + j].
template <class T>
void pack_b(const MatView<const T>& b, index_t k0, index_t kc, index_t col0, index_t n, int nr,
            T* dst) {
  if (b.cols.is_plain() && b.cols.stride == 1 && nr == 32) {
    // row by row (each source row read once, front to back), 32-wide copies into every panel
    const index_t full = n / 32 * 32;
    for (index_t k = 0; k < kc; ++k) {
      const T* s = b.data + b.rows.offset(k0 + k) + col0;
      for (index_t jq = 0; jq < full; jq += 32) std::memcpy(dst + jq * kc + k * 32, s + jq, 32 * sizeof(T));
      if (full < n) {
        T* dk = dst + full * kc + k * 32;
        std::memcpy(dk, s + full, (n - full) * sizeof(T));
        std::memset(dk + (n - full), 0, (32 - (n - full)) * sizeof(T));
      }
    }
    return;
  }
  for (index_t jq = 0; jq < n; jq += nr) {
    const index_t nv = std::min<index_t>(nr, n - jq);
    T* d = dst + (jq / nr) * kc * nr;
    if (b.cols.is_plain() && b.cols.stride == 1) {
      for (index_t k = 0; k < kc; ++k) {
        const T* s = b.data + b.rows.offset(k0 + k) + col0 + jq;
        T* dk = d + k * nr;
        std::memcpy(dk, s, nv * sizeof(T));
        for (index_t j = nv; j < nr; ++j) dk[j] = T(0);
      }
    } else if (b.rows.is_plain() && b.rows.stride == 1) {  // transposed operand: walk k fastest
      for (index_t j = 0; j < nv; ++j) {
        const T* s = b.data + b.cols.offset(col0 + jq + j) + k0;
        for (index_t k = 0; k < kc; ++k) d[k * nr + j] = s[k];
      }
      for (index_t k = 0; k < kc; ++k)
        for (index_t j = nv; j < nr; ++j) d[k * nr + j] = T(0);
    } else {
      for (index_t k = 0; k < kc; ++k) {
        const index_t ro = b.rows.offset(k0 + k);
        T* dk = d + k * nr;
        for (index_t j = 0; j < nv; ++j) dk[j] = b.data[ro + b.cols.offset(col0 + jq + j)];
        for (index_t j = nv; j < nr; ++j) dk[j] = T(0);
      }
    }
  }
}

template <class T>
Buffer<T>& thread_buffer(int which) {
  static thread_local Buffer<T> bufs[2];
  return bufs[which];
}

// One thread's serial loop nest over C[m0:m1, n0:n1]:
//   for ic (mc rows): for pc (kc): pack A block; for jc (nc cols): pack B block (L2); macro kernel
template <class T>
void gemm_block(const MatView<const T>& a, const MatView<const T>& b, const MatView<T>& c,
                bool accumulate, index_t m0, index_t m1, index_t n0, index_t n1) {
  const Kernels<T>& ker = kernels<T>();
  const index_t K = a.ncols();
  const index_t KC = Blocking<T>::kc, MC = Blocking<T>::mc, NC = Blocking<T>::nc;
  if (m1 <= m0 || n1 <= n0) return;
  if (K == 0) {
    if (!accumulate)
      for (index_t i = m0; i < m1; ++i) std::memset(c.at(i, n0), 0, (n1 - n0) * sizeof(T));
    return;
  }
  const index_t mc_max = ((std::min(MC, m1 - m0) + ker.mr - 1) / ker.mr) * ker.mr;
  const index_t nc_max = ((std::min(NC, n1 - n0) + ker.nr - 1) / ker.nr) * ker.nr;
  Buffer<T>& abuf = thread_buffer<T>(0);
  Buffer<T>& bbuf = thread_buffer<T>(1);
  abuf.resize(mc_max * KC);
  bbuf.resize(nc_max * KC);
  for (index_t ic = m0; ic < m1; ic += MC) {
    const index_t mc = std::min(MC, m1 - ic);
    for (index_t pc = 0; pc < K; pc += KC) {
      const index_t kc = std::min(KC, K - pc);
      const bool acc = accumulate || pc > 0;
      pack_a(a, ic, mc, pc, kc, ker.mr, abuf.data());
      for (index_t jc = n0; jc < n1; jc += NC) {
        const index_t nc = std::min(NC, n1 - jc);
        pack_b(b, pc, kc, jc, nc, ker.nr, bbuf.data());
        ker.macro(mc, nc, kc, abuf.data(), bbuf.data(), kc * ker.nr, c, ic, jc, acc);
      }
    }
  }
}

}  // namespace

template <class T>
void packed_b_prepare(PackedB<T>& pb, index_t k, index_t group_n, index_t groups) {
  const Kernels<T>& ker = kernels<T>();
  pb.k = k;
  pb.group_n = group_n;
  pb.groups = groups;
  pb.nr = ker.nr;
  pb.kc = Blocking<T>::kc;
  pb.panels = (group_n + ker.nr - 1) / ker.nr;
  pb.buf.resize(std::max<index_t>(1, k * groups * pb.panels * pb.nr));
}

template <class T>
void packed_b_fill(PackedB<T>& pb, const MatView<const T>& b, int tid, int nt) {
  // Work items: (k block, group); split statically over threads.
  const index_t nkb = pb.num_kblocks(), items = nkb * pb.groups;
  index_t i0, i1;
  split_range(items, 1, tid, nt, &i0, &i1);
  for (index_t it = i0; it < i1; ++it) {
    const index_t kb = it / pb.groups, g = it % pb.groups;
    pack_b(b, kb * pb.kc, pb.kblock_len(kb), g * pb.group_n, pb.group_n, static_cast<int>(pb.nr),
           const_cast<T*>(pb.panel(kb, g, 0)));
  }
}

template <class T>
index_t packed_a_size() {
  return (Blocking<T>::mc + 32) * Blocking<T>::kc;  // mc rows rounded up to a whole micro-panel
}

template <class T>
T* packed_a_workspace() {
  static thread_local Buffer<T> work(packed_a_size<T>());
  return work.data();
}

template <class T>
void gemm_packed(const MatView<const T>& a, const PackedB<T>& b, index_t q0, index_t q1,
                 const MatView<T>& c, bool accumulate, T* a_work, index_t g0, index_t g1) {
  if (gemv_fits(a)) {  // few rows: matrix-vector products, no A packing or padded tile rows
    gemv_packed(a, b, q0, q1, c, accumulate, g0, g1);
    return;
  }
  if (g1 < 0) g1 = b.groups;
  const Kernels<T>& ker = kernels<T>();
  const index_t M = a.nrows(), MC = Blocking<T>::mc;
  const index_t panels_per_block = std::max<index_t>(1, Blocking<T>::nc / b.nr);
  if (q1 <= q0 || M == 0) return;
  const index_t nkb = b.num_kblocks();
  if (nkb == 0) {
    if (!accumulate)
      for (index_t g = g0; g < g1; ++g) {
        const index_t c0 = q0 * b.nr, c1 = std::min(b.group_n, q1 * b.nr);
        for (index_t i = 0; i < M; ++i)
          std::memset(c.at(i, g * b.group_n + c0), 0, (c1 - c0) * sizeof(T));
      }
    return;
  }
  for (index_t ic = 0; ic < M; ic += MC) {
    const index_t mc = std::min(MC, M - ic);
    for (index_t kb = 0; kb < nkb; ++kb) {
      const index_t kc = b.kblock_len(kb);
      const bool acc = accumulate || kb > 0;
      pack_a(a, ic, mc, kb * b.kc, kc, ker.mr, a_work);
      for (index_t g = g0; g < g1; ++g)
        for (index_t qb = q0; qb < q1; qb += panels_per_block) {  // an L2-sized block of panels
          const index_t qe = std::min(q1, qb + panels_per_block);
          const index_t c0 = qb * b.nr, c1 = std::min(b.group_n, qe * b.nr);
          if (c1 <= c0) break;
          ker.macro(mc, c1 - c0, kc, a_work, b.panel(kb, g, qb), kc * b.nr, c, ic,
                    g * b.group_n + c0, acc);
        }
    }
  }
}

template <class T>
void gemv_packed(const MatView<const T>& a, const PackedB<T>& b, index_t q0, index_t q1,
                 const MatView<T>& c, bool accumulate, index_t g0, index_t g1) {
  if (g1 < 0) g1 = b.groups;
  const Kernels<T>& ker = kernels<T>();
  const index_t M = a.nrows();
  if (q1 <= q0 || M == 0) return;
  const T* a_rows[kGemvMaxRows];
  T* c_rows[kGemvMaxRows];
  for (index_t i = 0; i < M; ++i) c_rows[i] = c.data + c.rows.offset(i);
  const index_t nkb = b.num_kblocks();
  if (nkb == 0 && !accumulate)
    for (index_t g = g0; g < g1; ++g) {
      const index_t c0 = q0 * b.nr, c1 = std::min(b.group_n, q1 * b.nr);
      for (index_t i = 0; i < M; ++i) std::memset(c_rows[i] + g * b.group_n + c0, 0, (c1 - c0) * sizeof(T));
    }
  for (index_t kb = 0; kb < nkb; ++kb) {
    const index_t kc = b.kblock_len(kb);
    for (index_t i = 0; i < M; ++i) a_rows[i] = a.data + a.rows.offset(i) + kb * b.kc;
    for (index_t g = g0; g < g1; ++g) {
      const index_t c0 = q0 * b.nr, c1 = std::min(b.group_n, q1 * b.nr);
      if (c1 <= c0) continue;
      ker.gemv(M, c1 - c0, kc, a_rows, b.panel(kb, g, q0), kc * b.nr, c_rows, g * b.group_n + c0,
               accumulate || kb > 0);
    }
  }
}

template <class T>
int best_tile_rows(index_t m) {
  const Kernels<T>& ker = kernels<T>();
  const index_t pad = ((m + ker.mr - 1) / ker.mr) * ker.mr;
  const index_t pad_small = ((m + ker.mr_small - 1) / ker.mr_small) * ker.mr_small;
  return 10 * pad_small < 9 * pad ? ker.mr_small : ker.mr;  // small tiles must save > 10 %
}

template <class T>
void packed_a_prepare(PackedA<T>& pa, index_t m, index_t k, index_t kc, int mr) {
  pa.m = m;
  pa.k = k;
  pa.mr = mr;
  pa.kc = kc;
  pa.m_pad = ((m + mr - 1) / mr) * mr;
  pa.buf.resize(std::max<index_t>(1, pa.m_pad * k));
  // rows past m stay zero for the whole sequence
  if (pa.m_pad > m) std::memset(pa.buf.data(), 0, pa.m_pad * k * sizeof(T));
}

template <class T>
void packed_a_fill_columns(PackedA<T>& pa, const MatView<const T>& a, index_t k0, index_t k1) {
  const index_t mr = pa.mr;
  const bool plain = a.rows.is_plain() && a.cols.is_plain() && a.cols.stride == 1;  // the recurrences' case
  for (index_t k = k0; k < k1;) {
    const index_t kb = k / pa.kc, kb_end = std::min(k1, (kb + 1) * pa.kc);
    const index_t kc_b = std::min(pa.kc, pa.k - kb * pa.kc), koff = k - kb * pa.kc, n = kb_end - k;
    T* blk = pa.block(kb);
    if (plain) {  // the recurrences' case: one vectorised transpose per micro-panel
      const Kernels<T>& ker = kernels<T>();
      for (index_t i = 0; i < pa.m; i += mr)
        ker.pack_a_tile(a.data + i * a.rows.stride + k, a.rows.stride, static_cast<int>(std::min(mr, pa.m - i)), n,
                        static_cast<int>(mr), blk + (i / mr) * mr * kc_b + koff * mr);
      k = kb_end;
      continue;
    }
    for (index_t i = 0; i < pa.m; ++i) {  // any other view, element by element
      T* dst = blk + (i / mr) * mr * kc_b + (i % mr) + koff * mr;
      const T* src = a.data + a.rows.offset(i);
      for (index_t j = 0; j < n; ++j) dst[j * mr] = src[a.cols.offset(k + j)];
    }
    k = kb_end;
  }
}

template <class T>
void gemm_packed_ab(const PackedA<T>& a, const PackedB<T>& b, index_t q0, index_t q1,
                    const MatView<T>& c, bool accumulate, index_t g0, index_t g1) {
  if (g1 < 0) g1 = b.groups;
  const Kernels<T>& ker = kernels<T>();
  const index_t M = a.m, MC = (Blocking<T>::mc / 24) * 24;  // a multiple of every tile height
  const index_t panels_per_block = std::max<index_t>(1, Blocking<T>::nc / b.nr);
  auto macro = a.mr == ker.mr ? ker.macro : ker.macro_small;
  if (q1 <= q0 || M == 0) return;
  for (index_t ic = 0; ic < M; ic += MC) {
    const index_t mc = std::min(MC, M - ic);
    for (index_t kb = 0; kb < b.num_kblocks(); ++kb) {
      const index_t kc = b.kblock_len(kb);
      const bool acc = accumulate || kb > 0;
      const T* ablk = a.block(kb) + (ic / a.mr) * a.mr * kc;
      for (index_t g = g0; g < g1; ++g)
        for (index_t qb = q0; qb < q1; qb += panels_per_block) {
          const index_t qe = std::min(q1, qb + panels_per_block);
          const index_t c0 = qb * b.nr, c1 = std::min(b.group_n, qe * b.nr);
          if (c1 <= c0) break;
          macro(mc, c1 - c0, kc, ablk, b.panel(kb, g, qb), kc * b.nr, c, ic, g * b.group_n + c0, acc);
        }
    }
  }
}

template <class T>
void gemm_team(const MatView<const T>& a, const MatView<const T>& b, const MatView<T>& c,
               bool accumulate, int tid, int nt) {
  const Kernels<T>& ker = kernels<T>();
  const index_t M = c.nrows(), N = c.ncols();
  index_t m0 = 0, m1 = M, n0 = 0, n1 = N;
  // Split the dimension with the cheaper largest share: its micro-tiles (padding included) times K
  // (2 flops at ~64 per cycle), plus the operand every thread then packs whole (~1 element per
  // cycle): all of A when the columns are split, all of B when the rows are. Each thread runs an
  // independent serial loop nest on its block. (150 columns are 5 panels of 32, a 3:2 split;
  // their 150 rows are 13 tiles of 12, 7:6. 6400 x 256 x 128: the rows, or each thread packs all
  // 6400 rows of A for half the columns.)
  auto tiles = [](index_t n, index_t unit) { return (n + unit - 1) / unit; };
  const double K = double(a.ncols());
  const double by_n = double(tiles(tiles(N, ker.nr), nt) * ker.nr * tiles(M, ker.mr) * ker.mr) * K / 32 + double(M) * K;
  const double by_m = double(tiles(tiles(M, ker.mr), nt) * ker.mr * tiles(N, ker.nr) * ker.nr) * K / 32 + double(N) * K;
  if (by_n <= by_m)
    split_range(N, ker.nr, tid, nt, &n0, &n1);
  else
    split_range(M, ker.mr, tid, nt, &m0, &m1);
  gemm_block(a, b, c, accumulate, m0, m1, n0, n1);
}

template <class T>
void gemm(const MatView<const T>& a, const MatView<const T>& b, const MatView<T>& c, bool accumulate,
          int nt) {
  const double flops = 2.0 * double(c.nrows()) * double(c.ncols()) * double(a.ncols());
  nt = gemm_threads(flops, nt);
  const index_t K = a.ncols();
  if (!accumulate && gemm_sum_k_parts<T>(K) > 1 && K >= 8 * std::max(c.nrows(), c.ncols())) {
    // a long K against a small C (weight-gradient shapes): split K, pack each B block once.
    // Chosen by the shape alone, so the result stays the same for every thread count.
    const GemmJob<T> job{a, b, c, false};
    gemm_sum_k(&job, 1, nt);
    return;
  }
  parallel(nt, [&](int tid, int n) { gemm_team(a, b, c, accumulate, tid, n); });
}

template <class T>
index_t gemm_sum_k_parts(index_t k) {
  return k >= 4 * Blocking<T>::kc ? 2 : 1;
}

template <class T>
void gemm_sum_k(const GemmJob<T>* jobs, int n_jobs, int nt) {
  const Kernels<T>& ker = kernels<T>();
  const index_t K = n_jobs > 0 ? jobs[0].a.ncols() : 0;
  const index_t KC = Blocking<T>::kc, MC = Blocking<T>::mc, NC = Blocking<T>::nc;
  const int parts = static_cast<int>(gemm_sum_k_parts<T>(K));
  if (K == 0) {
    for (int j = 0; j < n_jobs; ++j) {
      for (index_t i = 0; i < jobs[j].c.nrows(); ++i)
        std::memset(jobs[j].c.at(i, 0), 0, jobs[j].c.ncols() * sizeof(T));
      if (jobs[j].col_sums) std::fill(jobs[j].col_sums, jobs[j].col_sums + jobs[j].c.ncols(), T(0));
    }
    return;
  }
  // partial results of parts 1..: per job a row-major (M_j, N_j) product, then N_j column sums
  // when asked for; jobs side by side
  auto job_size = [&](int j) {
    return (jobs[j].c.nrows() + (jobs[j].col_sums ? 1 : 0)) * jobs[j].c.ncols();
  };
  index_t per_part = 0, flop_elems = 0;
  for (int j = 0; j < n_jobs; ++j) per_part += job_size(j), flop_elems += jobs[j].c.nrows() * jobs[j].c.ncols();
  Buffer<T> partial((parts - 1) * per_part);
  auto partial_of = [&](int part, int j) {
    index_t off = (part - 1) * per_part;
    for (int i = 0; i < j; ++i) off += job_size(i);
    return partial.data() + off;
  };
  auto target = [&](int part, int j) {
    if (part == 0) return jobs[j].c;
    return row_major(partial_of(part, j), jobs[j].c.nrows(), jobs[j].c.ncols(), jobs[j].c.ncols());
  };
  auto sums_target = [&](int part, int j) {
    return part == 0 ? jobs[j].col_sums : partial_of(part, j) + jobs[j].c.nrows() * jobs[j].c.ncols();
  };
  // One thread's share: K range of `part`, columns split among the `team` threads of that part.
  auto run_part = [&](int part, int rank, int team) {
    index_t k0, k1;
    split_range(K, KC, part, parts, &k0, &k1);
    Buffer<T>& abuf = thread_buffer<T>(0);
    Buffer<T>& bbuf = thread_buffer<T>(1);
    for (int j = 0; j < n_jobs; ++j) {
      const GemmJob<T>& job = jobs[j];
      index_t n0, n1;
      split_range(job.c.ncols(), ker.nr, rank, team, &n0, &n1);
      abuf.resize(((std::min(MC, job.c.nrows()) + ker.mr - 1) / ker.mr) * ker.mr * KC);
      bbuf.resize(((n1 - n0 + ker.nr - 1) / ker.nr) * ker.nr * KC + 1);
    }
    for (index_t pc = k0; pc < k1; pc += KC) {
      const index_t kc = std::min(KC, k1 - pc);
      bool b_packed = false;  // bbuf holds the previous job's B rows [pc, pc+kc)
      for (int j = 0; j < n_jobs; ++j) {
        const GemmJob<T>& job = jobs[j];
        const MatView<T> c = target(part, j);
        index_t n0, n1;
        split_range(job.c.ncols(), ker.nr, rank, team, &n0, &n1);
        const bool reuse = b_packed && job.same_b;
        b_packed = false;
        if (n1 <= n0 || (job.c.nrows() == 0 && !job.col_sums)) continue;
        // B rows [pc, pc+kc) x this thread's columns, packed once per k block (shared by same_b)
        if (!reuse) pack_b(job.b, pc, kc, n0, n1 - n0, ker.nr, bbuf.data());
        b_packed = true;
        if (job.col_sums) {  // from the packed panels, still in cache: rows summed in k order
          T* sums = sums_target(part, j);
          if (pc == k0) std::fill(sums + n0, sums + n1, T(0));
          for (index_t q = 0; q * ker.nr < n1 - n0; ++q) {
            const index_t w = std::min<index_t>(ker.nr, n1 - n0 - q * ker.nr);
            const T* panel = bbuf.data() + q * kc * ker.nr;
            T* out = sums + n0 + q * ker.nr;
            for (index_t k = 0; k < kc; ++k)
              for (index_t col = 0; col < w; ++col) out[col] += panel[k * ker.nr + col];
          }
        }
        for (index_t ic = 0; ic < job.c.nrows(); ic += MC) {
          const index_t mc = std::min(MC, job.c.nrows() - ic);
          pack_a(job.a, ic, mc, pc, kc, ker.mr, abuf.data());
          for (index_t jc = n0; jc < n1; jc += NC)
            ker.macro(mc, std::min(NC, n1 - jc), kc, abuf.data(), bbuf.data() + (jc - n0) * kc, kc * ker.nr, c,
                      ic, jc, pc > k0);
        }
      }
    }
  };
  // C_j += partial sums of parts 1.. in part order, rows split over the team
  auto reduce = [&](int tid, int n_threads) {
    for (int j = 0; j < n_jobs; ++j) {
      index_t r0, r1;
      split_range(jobs[j].c.nrows(), 1, tid, n_threads, &r0, &r1);
      for (int part = 1; part < parts; ++part) {
        const MatView<T> src = target(part, j);
        for (index_t i = r0; i < r1; ++i) {
          T* dst = jobs[j].c.at(i, 0);
          const T* s = src.at(i, 0);
          for (index_t col = 0; col < src.ncols(); ++col) dst[col] += s[col];
        }
        if (jobs[j].col_sums && tid == 0) {
          const T* s = sums_target(part, j);
          for (index_t col = 0; col < jobs[j].c.ncols(); ++col) jobs[j].col_sums[col] += s[col];
        }
      }
    }
  };
  const double flops = 2.0 * double(K) * double(flop_elems);
  nt = gemm_threads(flops, nt);
  parallel(nt, [&](int tid, int n_threads) {
    if (n_threads < parts) {  // (a single thread) every part in turn
      for (int part = tid; part < parts; part += n_threads) run_part(part, 0, 1);
    } else {  // part tid % parts, its columns split among the threads of that part
      const int part = tid % parts;
      run_part(part, tid / parts, (n_threads - part + parts - 1) / parts);
    }
    if (n_threads > 1) barrier();  // (inline, not a region, when alone: no barrier to meet)
    reduce(tid, n_threads);
  });
}

template <class T>
void gemm_naive(const MatView<const T>& a, const MatView<const T>& b, const MatView<T>& c,
                bool accumulate) {
  for (index_t i = 0; i < c.nrows(); ++i)
    for (index_t j = 0; j < c.ncols(); ++j) {
      T s = accumulate ? *c.at(i, j) : T(0);
      for (index_t k = 0; k < a.ncols(); ++k) s += *a.at(i, k) * *b.at(k, j);
      *c.at(i, j) = s;
    }
}

#define RNNKIT_INSTANTIATE(T)                                                                     \
  template void packed_b_prepare<T>(PackedB<T>&, index_t, index_t, index_t);                     \
  template void packed_b_fill<T>(PackedB<T>&, const MatView<const T>&, int, int);                \
  template index_t packed_a_size<T>();                                                            \
  template T* packed_a_workspace<T>();                                                            \
  template void packed_a_prepare<T>(PackedA<T>&, index_t, index_t, index_t, int);                 \
  template int best_tile_rows<T>(index_t);                                                        \
  template void packed_a_fill_columns<T>(PackedA<T>&, const MatView<const T>&, index_t, index_t); \
  template void gemm_packed_ab<T>(const PackedA<T>&, const PackedB<T>&, index_t, index_t,         \
                                  const MatView<T>&, bool, index_t, index_t);                     \
  template void gemm_packed<T>(const MatView<const T>&, const PackedB<T>&, index_t, index_t,      \
                               const MatView<T>&, bool, T*, index_t, index_t);                    \
  template void gemv_packed<T>(const MatView<const T>&, const PackedB<T>&, index_t, index_t,      \
                               const MatView<T>&, bool, index_t, index_t);                        \
  template void gemm_team<T>(const MatView<const T>&, const MatView<const T>&, const MatView<T>&, \
                             bool, int, int);                                                     \
  template void gemm<T>(const MatView<const T>&, const MatView<const T>&, const MatView<T>&, bool, \
                        int);                                                                     \
  template index_t gemm_sum_k_parts<T>(index_t);                                                  \
  template void gemm_sum_k<T>(const GemmJob<T>*, int, int);                                      \
  template void gemm_naive<T>(const MatView<const T>&, const MatView<const T>&, const MatView<T>&, \
                              bool);
RNNKIT_INSTANTIATE(float)
RNNKIT_INSTANTIATE(double)
#undef RNNKIT_INSTANTIATE

}  // namespace rnnkit
