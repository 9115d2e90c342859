// All-pairs softened gravity on the CPU: forward, tangent (JVP) and cotangent (VJP)
// kernels behind `diffsim.kernels`, called from JAX through the XLA FFI.
//
// The maths, shapes and batch conventions are those of `_reference.py` (the pure-JAX
// reference the tests hold these kernels to):
//
//   a_i = sum_{j != i} w_j phi(s_ij) r_ij,  r_ij = q_j - q_i,  s_ij = |r_ij|^2,
//   phi(s) = (s + e2)^(-3/2),  phi'(s) = -3/2 (s + e2)^(-5/2).
//
// Why a kernel: XLA's CPU backend does not vectorise these (n, n) reductions well (4-10%
// of the SGEMM rate, whatever the formulation). Here each target's sum over sources is
// one loop over contiguous coordinate arrays (structure of arrays), which the compiler
// vectorises (-O3 -march=native; -ffast-math lets it reorder the sums and use the
// hardware reciprocal square root with a Newton step), and the targets are split across
// threads. The diagonal j == i is skipped by splitting the source loop, not masked, so
// e2 == 0 never meets 0^(-3/2).

#include <cstdint>
#include <vector>

#include "pairwise.h"

namespace {

// One problem of a batch: per-source arrays of length n_pad (n rounded up to whole SIMD
// packs), coordinates transposed to (D, n_pad) so the source loop reads contiguous memory.
// What lies past n is never used: `row` makes those lanes weightless.
template <typename T, int D>
struct Problem {
  const T* x[D];   // x[k][j]: coordinate k of source j
  const T* w;      // weights
  const T* dx[D];  // tangent or cotangent coordinates (when the kernel reads them)
  const T* dw;     // weight tangents (when the kernel reads them)
  T e2, de2;
  int64_t n, n_pad;
};


// One pack of consecutive sources as a kernel reads it (only the arrays it uses).
template <typename N, int D>
struct Source {
  N x[D], dx[D], w, dw;
};

template <typename N, typename K, typename T, int D>
inline Source<N, D> source(const Problem<T, D>& p, int64_t j) {
  Source<N, D> s{};
  for (int k = 0; k < D; ++k) {
    s.x[k] = load<N>(p.x[k] + j);
    if constexpr (K::kReadsDx) s.dx[k] = load<N>(p.dx[k] + j);
  }
  s.w = load<N>(p.w + j);
  if constexpr (K::kReadsDw) s.dw = load<N>(p.dw + j);
  return s;
}

// Makes `lanes` [first, last) of a pack weightless sources at distance 1 from the target
// (tangents 0 too), whose terms are then exactly 0.
template <typename T, typename N, int D, typename K>
inline void weightless(Source<N, D>& s, const K& kernel, int64_t first, int64_t last) {
  for (int64_t l = first; l < last; ++l) {
    for (int k = 0; k < D; ++k) set_lane(s.x[k], l, kernel.xi[k] + T(1)), set_lane(s.dx[k], l, T(0));
    set_lane(s.w, l, T(0));
    set_lane(s.dw, l, T(0));
  }
}

// Runs kernel `K` for target `i` over every source pack. The target's own lane and the
// padding past n become weightless sources (see above): e2 == 0 never meets 0^(-3/2),
// and no scalar remainder loop is needed.
template <typename T, int D, typename K>
typename K::template Sums<T> row(const Problem<T, D>& p, const K& kernel, int64_t i) {
  using N = typename Pack<T>::type;
  constexpr int64_t L = Pack<T>::width;
  typename K::template Sums<N> sums{};
  const int64_t own = i - i % L, tail = p.n_pad - L;
  for (int64_t j = 0; j < p.n_pad; j += L) {
    Source<N, D> src = source<N, K>(p, j);
    if (j == own || j == tail) [[unlikely]] {
      if (j == own) weightless<T>(src, kernel, i - own, i - own + 1);
      if (j == tail) weightless<T>(src, kernel, p.n - tail, L);
    }
    kernel.pair(sums, src);
  }
  typename K::template Sums<T> total{};
  sums.add_into(total);
  return total;
}

// ---- forward: a_i = sum_j w_j phi r ---------------------------------------------------

template <typename T, int D>
struct ForwardPair {
  static constexpr bool kReadsDx = false, kReadsDw = false;
  T xi[D], e2;
  template <typename N>
  struct Sums {
    N a[D];
    template <typename S>
    void add_into(S& total) const {
      for (int k = 0; k < D; ++k) total.a[k] += lane_sum<T>(a[k]);
    }
  };
  template <typename N>
  inline void pair(Sums<N>& sums, const Source<N, D>& src) const {
    N r[D], s = splat<N>(e2);
    for (int k = 0; k < D; ++k) r[k] = src.x[k] - xi[k], s += r[k] * r[k];
    N inv = rsqrt(s);
    N c = src.w * inv * inv * inv;
    for (int k = 0; k < D; ++k) sums.a[k] += c * r[k];
  }
};

template <typename T, int D>
void forward_row(const Problem<T, D>& p, int64_t i, T* out) {
  ForwardPair<T, D> kernel{{}, p.e2};
  for (int k = 0; k < D; ++k) kernel.xi[k] = p.x[k][i];
  auto sums = row(p, kernel, i);
  for (int k = 0; k < D; ++k) out[i * D + k] = sums.a[k];
}

// ---- tangent: da_i = sum_j dw_j phi r + w_j [phi dr + phi' (2 r.dr + de2) r] ---------

template <typename T, int D>
struct TangentPair {
  static constexpr bool kReadsDx = true, kReadsDw = true;
  T xi[D], dxi[D], e2, de2;
  template <typename N>
  struct Sums {
    N a[D];
    template <typename S>
    void add_into(S& total) const {
      for (int k = 0; k < D; ++k) total.a[k] += lane_sum<T>(a[k]);
    }
  };
  template <typename N>
  inline void pair(Sums<N>& sums, const Source<N, D>& src) const {
    N r[D], dr[D], s = splat<N>(e2), rdr = N{};
    for (int k = 0; k < D; ++k) {
      r[k] = src.x[k] - xi[k];
      dr[k] = src.dx[k] - dxi[k];
      s += r[k] * r[k];
      rdr += r[k] * dr[k];
    }
    N inv = rsqrt(s);
    N phi = inv * inv * inv;
    N dphi = T(-1.5) * phi * inv * inv;
    N cr = src.dw * phi + src.w * dphi * (T(2) * rdr + de2);
    N cd = src.w * phi;
    for (int k = 0; k < D; ++k) sums.a[k] += cr * r[k] + cd * dr[k];
  }
};

template <typename T, int D>
void tangent_row(const Problem<T, D>& p, int64_t i, T* out) {
  TangentPair<T, D> kernel{{}, {}, p.e2, p.de2};
  for (int k = 0; k < D; ++k) kernel.xi[k] = p.x[k][i], kernel.dxi[k] = p.dx[k][i];
  auto sums = row(p, kernel, i);
  for (int k = 0; k < D; ++k) out[i * D + k] = sums.a[k];
}

// ---- cotangent, per target i (g in Problem::dx), with u = w_i g_j - w_j g_i:
//   q_bar_i = sum_j phi u + 2 phi' (r.u) r,   w_bar_i = -sum_j phi g_j.r,
//   e_i = sum_j w_j phi' g_i.r   (the row's share of e2's cotangent).
// Split so that the per-pair work is as small as the forward's twice: with
// psi = phi' / (-3/2) = (s + e2)^(-5/2) and r.u = w_i g_j.r - w_j g_i.r,
//   q_bar_i = w_i sum_j phi g_j - (sum_j w_j phi) g_i - 3 sum_j psi (r.u) r,
//   e_i = -3/2 sum_j w_j psi g_i.r.

// With kWeights false only q_bar is wanted (a gradient with respect to positions alone):
// the sums that only w_bar and e_i need are skipped, and those come back as zeros.
template <typename T, int D, bool kWeights>
struct CotangentPair {
  static constexpr bool kReadsDx = true, kReadsDw = false;
  T xi[D], gi[D], wi, e2;
  template <typename N>
  struct Sums {
    N phi_g[D], psi_ru_r[D], w_phi, w_psi_gir, phi_gjr;
    template <typename S>
    void add_into(S& total) const {
      for (int k = 0; k < D; ++k) {
        total.phi_g[k] += lane_sum<T>(phi_g[k]);
        total.psi_ru_r[k] += lane_sum<T>(psi_ru_r[k]);
      }
      total.w_phi += lane_sum<T>(w_phi);
      total.w_psi_gir += lane_sum<T>(w_psi_gir);
      total.phi_gjr += lane_sum<T>(phi_gjr);
    }
  };
  template <typename N>
  inline void pair(Sums<N>& sums, const Source<N, D>& src) const {
    N r[D], s = splat<N>(e2), gjr = N{}, gir = N{};
    for (int k = 0; k < D; ++k) {
      r[k] = src.x[k] - xi[k];
      s += r[k] * r[k];
      gjr += src.dx[k] * r[k];
      gir += gi[k] * r[k];
    }
    N inv = rsqrt(s);
    N inv2 = inv * inv;
    N phi = inv2 * inv;
    N psi = phi * inv2;
    N c = psi * (wi * gjr - src.w * gir);
    for (int k = 0; k < D; ++k) sums.phi_g[k] += phi * src.dx[k], sums.psi_ru_r[k] += c * r[k];
    sums.w_phi += src.w * phi;
    if constexpr (kWeights) {
      sums.w_psi_gir += src.w * psi * gir;
      sums.phi_gjr += phi * gjr;
    }
  }
};

template <typename T, int D, bool kWeights>
void vjp_row(const Problem<T, D>& p, int64_t i, T* q_bar, T* w_bar, T* e_rows) {
  CotangentPair<T, D, kWeights> kernel{{}, {}, p.w[i], p.e2};
  for (int k = 0; k < D; ++k) kernel.xi[k] = p.x[k][i], kernel.gi[k] = p.dx[k][i];
  auto sums = row(p, kernel, i);
  for (int k = 0; k < D; ++k) {
    q_bar[i * D + k] = kernel.wi * sums.phi_g[k] - sums.w_phi * kernel.gi[k] - T(3) * sums.psi_ru_r[k];
  }
  w_bar[i] = -sums.phi_gjr;
  e_rows[i] = T(-1.5) * sums.w_psi_gir;
}

// Calls row(problem, b, i) for every target of every problem, threads over all rows.
template <typename T, int D, typename Row>
void run(ffi::ThreadPool& pool, Shape sh, const T* q, const T* w, const T* e2, const T* dq, const T* dw,
         const T* de2, Row row) {
  constexpr int64_t L = Pack<T>::width;
  const int64_t n_pad = (sh.n + L - 1) / L * L;
  std::vector<T> xt = transpose(q, sh.batch, sh.n, D, n_pad), wt = transpose(w, sh.batch, sh.n, 1, n_pad);
  std::vector<T> dxt = dq ? transpose(dq, sh.batch, sh.n, D, n_pad) : std::vector<T>();
  std::vector<T> dwt = dw ? transpose(dw, sh.batch, sh.n, 1, n_pad) : std::vector<T>();
  std::vector<Problem<T, D>> problems(static_cast<size_t>(sh.batch));
  for (int64_t b = 0; b < sh.batch; ++b) {
    auto& p = problems[b];
    for (int k = 0; k < D; ++k) {
      p.x[k] = xt.data() + (b * D + k) * n_pad;
      p.dx[k] = dq ? dxt.data() + (b * D + k) * n_pad : nullptr;
    }
    p.w = wt.data() + b * n_pad;
    p.dw = dw ? dwt.data() + b * n_pad : nullptr;
    p.e2 = e2[b];
    p.de2 = de2 ? de2[b] : T(0);
    p.n = sh.n;
    p.n_pad = n_pad;
  }
  parallel_rows(pool, sh.batch * sh.n, sh.n, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) row(problems[r / sh.n], r / sh.n, r % sh.n);
  });
}


template <ffi::DataType DT>
ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<DT> q, ffi::Buffer<DT> w, ffi::Buffer<DT> e2,
                   ffi::ResultBuffer<DT> out) {
  using T = ffi::NativeType<DT>;
  Shape sh = shape_of(q.dimensions());
  T* a = out->typed_data();
  return dispatch_d<T>(sh.d, [&](auto d) {
    constexpr int D = decltype(d)::value;
    run<T, D>(pool, sh, q.typed_data(), w.typed_data(), e2.typed_data(), nullptr, nullptr, nullptr,
              [&](const Problem<T, D>& p, int64_t b, int64_t i) {
                forward_row<T, D>(p, i, a + b * sh.n * D);
              });
  });
}

template <ffi::DataType DT>
ffi::Error Tangent(ffi::ThreadPool pool, ffi::Buffer<DT> q, ffi::Buffer<DT> w, ffi::Buffer<DT> e2,
                   ffi::Buffer<DT> dq, ffi::Buffer<DT> dw, ffi::Buffer<DT> de2,
                   ffi::ResultBuffer<DT> out) {
  using T = ffi::NativeType<DT>;
  Shape sh = shape_of(q.dimensions());
  T* a = out->typed_data();
  return dispatch_d<T>(sh.d, [&](auto d) {
    constexpr int D = decltype(d)::value;
    run<T, D>(pool, sh, q.typed_data(), w.typed_data(), e2.typed_data(), dq.typed_data(),
              dw.typed_data(), de2.typed_data(),
              [&](const Problem<T, D>& p, int64_t b, int64_t i) {
                tangent_row<T, D>(p, i, a + b * sh.n * D);
              });
  });
}

template <ffi::DataType DT>
ffi::Error Cotangent(ffi::ThreadPool pool, ffi::Buffer<DT> q, ffi::Buffer<DT> w, ffi::Buffer<DT> e2,
                     ffi::Buffer<DT> g, ffi::ResultBuffer<DT> q_bar,
                     ffi::ResultBuffer<DT> w_bar, ffi::ResultBuffer<DT> e_rows, bool weights) {
  using T = ffi::NativeType<DT>;
  Shape sh = shape_of(q.dimensions());
  T *qb = q_bar->typed_data(), *wb = w_bar->typed_data(), *er = e_rows->typed_data();
  return dispatch_d<T>(sh.d, [&](auto d) {
    constexpr int D = decltype(d)::value;
    run<T, D>(pool, sh, q.typed_data(), w.typed_data(), e2.typed_data(), g.typed_data(), nullptr,
              nullptr, [&](const Problem<T, D>& p, int64_t b, int64_t i) {
                if (weights)
                  vjp_row<T, D, true>(p, i, qb + b * sh.n * D, wb + b * sh.n, er + b * sh.n);
                else
                  vjp_row<T, D, false>(p, i, qb + b * sh.n * D, wb + b * sh.n, er + b * sh.n);
              });
  });
}

}  // namespace

#define DIFFSIM_HANDLERS(SUFFIX, DT)                                                   \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(DiffsimGravityForward##SUFFIX, Forward<ffi::DT>,     \
                                ffi::Ffi::Bind()                                     \
                                    .Ctx<ffi::ThreadPool>()                          \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                       \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                       \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                       \
                                    .Ret<DIFFSIM_BUFFER(DT)>());                     \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(DiffsimGravityTangent##SUFFIX, Tangent<ffi::DT>,     \
                                ffi::Ffi::Bind()                                     \
                                    .Ctx<ffi::ThreadPool>()                          \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                       \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                       \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                       \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                       \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                       \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                       \
                                    .Ret<DIFFSIM_BUFFER(DT)>());                     \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(DiffsimGravityCotangent##SUFFIX, Cotangent<ffi::DT>, \
                                ffi::Ffi::Bind()                                     \
                                    .Ctx<ffi::ThreadPool>()                          \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                       \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                       \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                       \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                       \
                                    .Ret<DIFFSIM_BUFFER(DT)>()                       \
                                    .Ret<DIFFSIM_BUFFER(DT)>()                       \
                                    .Ret<DIFFSIM_BUFFER(DT)>()                       \
                                    .Attr<bool>("weights"));

DIFFSIM_HANDLERS(F32, F32)
DIFFSIM_HANDLERS(F64, F64)
