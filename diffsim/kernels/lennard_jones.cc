// Switched Lennard-Jones forces in a periodic box on the CPU: forward, tangent (JVP) and
// cotangent (VJP) kernels behind `diffsim.kernels.lennard_jones_pair_sum`, called from JAX
// through the XLA FFI. The maths, shapes and batch conventions are those of
// `_lennard_jones_reference.py`, which the tests hold these kernels to. In units of the
// cutoff (x = s / r_c^2 with s = |r|^2, so any unit system stays inside float32's range):
//
//   F_i = sum_{j != i} phi r_ij,  r_ij = d - L round(d / L),  d = q_j - q_i,
//   U = (c12 x^-6 - c6 x^-3) S(x),  phi = 2 dU/ds = 2 (dU/dx) / r_c^2,
//
// with S CHARMM's switch, 1 below x_o = r_o^2 / r_c^2, 0 beyond x = 1:
//   S = (1 - x)^2 (1 + 2 x - 3 x_o) / (1 - x_o)^3,  dS/dx = 6 (1 - x)(x_o - x) / (1 - x_o)^3.
// Clamping x to [x_o, 1] gives S and dS/dx everywhere without branches; pairs beyond the
// cutoff, the target itself, padding and empty neighbour slots all meet x = 1, where every
// term is exactly 0.
//
// Sources are every particle (all pairs) or the target's row of a neighbour list `idx`
// (entries outside [0, n) are empty slots). The list must be symmetric (j in row i iff i
// in row j, as a list built from a distance criterion is): the cotangent is summed per
// target row.
//
// Derivatives: with phi' = dphi/ds, n_k = round(d_k / L_k) (piecewise constant),
//   tangent   dF_i = sum_j phi' (2 r.dr) r + phi dr,  dr = dq_j - dq_i - n dL;
//   cotangent q_bar_i = sum_j phi u + 2 phi' (r.u) r,  u = g_j - g_i;
//             L_bar = -sum_ij n (2 phi' (g_i.r) r + phi g_i)   (per row, summed by the caller);
//             c_bar = sum_ij (A, B) g_i.r,  phi = c12 A + c6 B   (per row, likewise).
// F is linear in c = (c12, c6): its tangent in c is the forward kernel at dc, in JAX.

#include <cstdint>
#include <vector>

#include "pairwise.h"

namespace {

// ---- pack helpers that only this kernel needs ------------------------------------------

template <typename N>
inline N select(decltype(N{} < N{}) mask, N a, N b) {
  return mask ? a : b;  // lane-wise for packs
}
template <typename N>
inline N clamp(N x, N lo, N hi) {
  return select(x < lo, lo, select(x > hi, hi, x));
}

// Whether any lane of a comparison's mask is set.
inline bool any_lane(bool mask) { return mask; }
template <typename M>
inline bool any_lane(M mask) {
  M zero = {};
  for (size_t l = 0; l < sizeof(M) / sizeof(zero[0]); ++l)
    if (mask[l]) return true;
  return false;
}

inline float nearest(float x) { return std::nearbyint(x); }
inline double nearest(double x) { return std::nearbyint(x); }
inline float recip(float s) { return 1.0f / s; }
inline double recip(double s) { return 1.0 / s; }

#if defined(__AVX__)
inline Pack<float>::type nearest(Pack<float>::type x) {
  return (Pack<float>::type)_mm256_round_ps((__m256)x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
inline Pack<double>::type nearest(Pack<double>::type x) {
  return (Pack<double>::type)_mm256_round_pd((__m256d)x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
// The hardware reciprocal estimate with one Newton step (float rounding); see rsqrt.
inline Pack<float>::type recip(Pack<float>::type s) {
  auto y = (Pack<float>::type)_mm256_rcp_ps((__m256)s);
  return y * (2.0f - s * y);
}
inline Pack<double>::type recip(Pack<double>::type s) { return 1.0 / s; }
#endif

// ---- one problem of a batch ---------------------------------------------------------

template <typename T, int D>
struct Problem {
  const T* x[D];         // x[k][j], (D, n_pad), zero past n
  const T* dx[D];        // tangent or cotangent coordinates, when read
  const T* valid;        // 1 for j < n, 0 past n
  const int32_t* idx;    // (n, k) neighbour rows, or nullptr: all pairs
  int64_t k, n, n_pad;
  T box[D], inv_box[D], dbox[D], c12, c6;
};

// The switch's constants in units of the cutoff, shared by every problem (static in JAX).
template <typename T>
struct Switch {
  T xo, inv_den, inv_c2;  // r_o^2 / r_c^2, 1 / (1 - xo)^3, 1 / r_c^2
  Switch(double onset2, double cutoff2)
      : xo(T(onset2 / cutoff2)),
        inv_den(T(1.0 / std::pow(1.0 - onset2 / cutoff2, 3))),
        inv_c2(T(1.0 / cutoff2)) {}
};

// One pack of sources as a kernel reads it.
template <typename N, int D>
struct Source {
  N x[D], dx[D], v;
};

// Minimum-image separations from target xi, their image shifts n and x = |r|^2 / r_c^2,
// with x set to 1 (no interaction) where the source is not valid.
template <typename N, int D>
struct Geometry {
  N r[D], shift[D], x;
};

template <typename T, int D, typename N>
inline Geometry<N, D> geometry(const Problem<T, D>& p, const Switch<T>& sw, const T* xi,
                               const Source<N, D>& src) {
  Geometry<N, D> g;
  N s = N{};
  for (int k = 0; k < D; ++k) {
    N d = src.x[k] - xi[k];
    g.shift[k] = nearest(d * p.inv_box[k]);
    g.r[k] = d - p.box[k] * g.shift[k];
    s += g.r[k] * g.r[k];
  }
  g.x = select(src.v > T(0), s * sw.inv_c2, splat<N>(T(1)));
  return g;
}

// The radial functions at x: phi = 2 dU/ds and what each kernel needs besides.
template <typename N>
struct Radial {
  N phi, dphi, a, b;  // dphi = dphi/ds; a, b: phi = c12 a + c6 b
};

template <bool kDerivative, bool kSplit, typename T, int D, typename N>
inline Radial<N> radial(const Problem<T, D>& p, const Switch<T>& sw, N x) {
  N inv = recip(x);
  N p3 = inv * inv * inv, p6 = p3 * p3;
  N xc = clamp(x, splat<N>(sw.xo), splat<N>(T(1)));
  N gap = T(1) - xc;
  N S = gap * gap * (T(1) + T(2) * xc - T(3) * sw.xo) * sw.inv_den;
  N dS = T(6) * gap * (sw.xo - xc) * sw.inv_den;
  N e = p.c12 * p6 - p.c6 * p3;                        // U / S
  N f = (T(3) * p.c6 * p3 - T(6) * p.c12 * p6) * inv;  // d(U / S)/dx
  const T two_c = T(2) * sw.inv_c2;                    // 2 d/ds = 2 / r_c^2 d/dx
  Radial<N> out;
  out.phi = two_c * (f * S + e * dS);
  if constexpr (kDerivative) {
    N f1 = (T(42) * p.c12 * p6 - T(12) * p.c6 * p3) * inv * inv;
    N inside = select((x > sw.xo) & (x < T(1)), splat<N>(T(1)), N{});
    N ddS = inside * T(6) * (T(2) * x - sw.xo - T(1)) * sw.inv_den;
    out.dphi = two_c * (f1 * S + T(2) * f * dS + e * ddS) * sw.inv_c2;
  }
  if constexpr (kSplit) {
    out.a = two_c * p6 * (dS - T(6) * inv * S);
    out.b = two_c * p3 * (T(3) * inv * S - dS);
  }
  return out;
}

// Runs `kernel.pair` for target i over its sources: every particle in packs (the target's
// own lane made invalid), or its neighbour row gathered lane by lane.
template <typename T, int D, typename K>
typename K::template Sums<T> row(const Problem<T, D>& p, const K& kernel, int64_t i) {
  using N = typename Pack<T>::type;
  constexpr int64_t L = Pack<T>::width;
  typename K::template Sums<N> sums{};
  Source<N, D> src{};
  if (p.idx == nullptr) {
    const int64_t own = i - i % L;
    for (int64_t j = 0; j < p.n_pad; j += L) {
      for (int k = 0; k < D; ++k) {
        src.x[k] = load<N>(p.x[k] + j);
        if constexpr (K::kReadsDx) src.dx[k] = load<N>(p.dx[k] + j);
      }
      src.v = load<N>(p.valid + j);
      if (j == own) [[unlikely]] set_lane(src.v, i - own, T(0));
      kernel.pair(sums, src);
    }
  } else {
    const int32_t* slots = p.idx + i * p.k;
    for (int64_t m = 0; m < p.k; m += L) {
      T x[D][L], dx[D][L], v[L];
      for (int64_t l = 0; l < L; ++l) {
        int64_t j = m + l < p.k ? slots[m + l] : p.n;
        bool ok = j >= 0 && j < p.n && j != i;
        j = ok ? j : p.n;  // slot n: zeros
        for (int k = 0; k < D; ++k) {
          x[k][l] = p.x[k][j];
          if constexpr (K::kReadsDx) dx[k][l] = p.dx[k][j];
        }
        v[l] = ok ? T(1) : T(0);
      }
      for (int k = 0; k < D; ++k) {
        src.x[k] = load<N>(x[k]);
        if constexpr (K::kReadsDx) src.dx[k] = load<N>(dx[k]);
      }
      src.v = load<N>(v);
      kernel.pair(sums, src);
    }
  }
  typename K::template Sums<T> total{};
  sums.add_into(total);
  return total;
}

template <typename T, int D, typename N>
struct VectorSums {
  N a[D];
  template <typename S>
  void add_into(S& total) const {
    for (int k = 0; k < D; ++k) total.a[k] += lane_sum<T>(a[k]);
  }
};

// ---- forward: F_i = sum_j phi r --------------------------------------------------------

template <typename T, int D>
struct ForwardPair {
  static constexpr bool kReadsDx = false;
  const Problem<T, D>& p;
  const Switch<T>& sw;
  T xi[D];
  template <typename N>
  using Sums = VectorSums<T, D, N>;
  template <typename N>
  inline void pair(Sums<N>& sums, const Source<N, D>& src) const {
    auto g = geometry(p, sw, xi, src);
    if (!any_lane(g.x < T(1))) return;  // the whole pack beyond the cutoff: most of them
    N phi = radial<false, false>(p, sw, g.x).phi;
    for (int k = 0; k < D; ++k) sums.a[k] += phi * g.r[k];
  }
};

// ---- tangent: dF_i = sum_j phi' (2 r.dr) r + phi dr, dr = dq_j - dq_i - n dL -----------

template <typename T, int D>
struct TangentPair {
  static constexpr bool kReadsDx = true;
  const Problem<T, D>& p;
  const Switch<T>& sw;
  T xi[D], dxi[D];
  template <typename N>
  using Sums = VectorSums<T, D, N>;
  template <typename N>
  inline void pair(Sums<N>& sums, const Source<N, D>& src) const {
    auto g = geometry(p, sw, xi, src);
    if (!any_lane(g.x < T(1))) return;
    auto f = radial<true, false>(p, sw, g.x);
    N dr[D], rdr = N{};
    for (int k = 0; k < D; ++k) {
      dr[k] = src.dx[k] - dxi[k] - g.shift[k] * p.dbox[k];
      rdr += g.r[k] * dr[k];
    }
    N cr = T(2) * f.dphi * rdr;
    for (int k = 0; k < D; ++k) sums.a[k] += cr * g.r[k] + f.phi * dr[k];
  }
};

// ---- cotangent (g in Problem::dx); with kParams false only q_bar is computed ------------

template <typename T, int D, bool kParams>
struct CotangentPair {
  static constexpr bool kReadsDx = true;
  const Problem<T, D>& p;
  const Switch<T>& sw;
  T xi[D], gi[D];
  template <typename N>
  struct Sums {
    N q[D], box[D], a, b;
    template <typename S>
    void add_into(S& total) const {
      for (int k = 0; k < D; ++k) {
        total.q[k] += lane_sum<T>(q[k]);
        total.box[k] += lane_sum<T>(box[k]);
      }
      total.a += lane_sum<T>(a);
      total.b += lane_sum<T>(b);
    }
  };
  template <typename N>
  inline void pair(Sums<N>& sums, const Source<N, D>& src) const {
    auto g = geometry(p, sw, xi, src);
    if (!any_lane(g.x < T(1))) return;
    auto f = radial<true, kParams>(p, sw, g.x);
    N u[D], ru = N{}, gir = N{};
    for (int k = 0; k < D; ++k) {
      u[k] = src.dx[k] - gi[k];
      ru += g.r[k] * u[k];
      gir += g.r[k] * gi[k];
    }
    N c = T(2) * f.dphi * ru;
    for (int k = 0; k < D; ++k) sums.q[k] += f.phi * u[k] + c * g.r[k];
    if constexpr (kParams) {
      N h = T(2) * f.dphi * gir;
      for (int k = 0; k < D; ++k) sums.box[k] += g.shift[k] * (h * g.r[k] + f.phi * gi[k]);
      sums.a += f.a * gir;
      sums.b += f.b * gir;
    }
  }
};

// ---- driver ----------------------------------------------------------------------------

struct Args {
  Shape sh;
  int64_t k;  // neighbour slots per row, 0 for all pairs
  double onset2, cutoff2;
};

// Calls row(problem, b, i) for every target of every problem, threads over all rows.
// `box`, `c`, `dbox`: (batch, D), (batch, 2), (batch, D); `idx`: (batch, n, k).
template <typename T, int D, typename Row>
void run(ffi::ThreadPool& pool, Args a, const T* q, const T* box, const T* c, const int32_t* idx,
         const T* dq, const T* dbox, Row row) {
  constexpr int64_t L = Pack<T>::width;
  const Shape sh = a.sh;
  const int64_t n_pad = (sh.n + 1 + L - 1) / L * L;  // one zero slot past n at least
  std::vector<T> xt = transpose(q, sh.batch, sh.n, D, n_pad);
  std::vector<T> dxt = dq ? transpose(dq, sh.batch, sh.n, D, n_pad) : std::vector<T>();
  std::vector<T> valid(static_cast<size_t>(n_pad), T(0));
  std::fill(valid.begin(), valid.begin() + sh.n, T(1));
  std::vector<Problem<T, D>> problems(static_cast<size_t>(sh.batch));
  for (int64_t b = 0; b < sh.batch; ++b) {
    auto& p = problems[b];
    for (int k = 0; k < D; ++k) {
      p.x[k] = xt.data() + (b * D + k) * n_pad;
      p.dx[k] = dq ? dxt.data() + (b * D + k) * n_pad : nullptr;
      p.box[k] = box[b * D + k];
      p.inv_box[k] = T(1) / p.box[k];
      p.dbox[k] = dbox ? dbox[b * D + k] : T(0);
    }
    p.valid = valid.data();
    p.idx = a.k > 0 ? idx + b * sh.n * a.k : nullptr;
    p.k = a.k;
    p.c12 = c[2 * b];
    p.c6 = c[2 * b + 1];
    p.n = sh.n;
    p.n_pad = n_pad;
  }
  const Switch<T> sw(a.onset2, a.cutoff2);
  const int64_t per_row = a.k > 0 ? a.k : sh.n;
  parallel_rows(pool, sh.batch * sh.n, per_row, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) row(problems[r / sh.n], sw, r / sh.n, r % sh.n);
  });
}

template <typename T, int D>
void target(const Problem<T, D>& p, int64_t i, T* xi) {
  for (int k = 0; k < D; ++k) xi[k] = p.x[k][i];
}

template <ffi::DataType DT>
Args args_of(const ffi::Buffer<DT>& q, const ffi::Buffer<ffi::S32>& idx, double onset2,
             double cutoff2) {
  auto dims = idx.dimensions();
  return Args{shape_of(q.dimensions()), dims.size() ? dims[dims.size() - 1] : 0, onset2, cutoff2};
}

template <ffi::DataType DT>
ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<DT> q, ffi::Buffer<DT> box, ffi::Buffer<DT> c,
                   ffi::Buffer<ffi::S32> idx, ffi::ResultBuffer<DT> out, double onset2,
                   double cutoff2) {
  using T = ffi::NativeType<DT>;
  Args a = args_of(q, idx, onset2, cutoff2);
  T* f = out->typed_data();
  return dispatch_d<T>(a.sh.d, [&](auto d) {
    constexpr int D = decltype(d)::value;
    run<T, D>(pool, a, q.typed_data(), box.typed_data(), c.typed_data(), idx.typed_data(),
              nullptr, nullptr,
              [&](const Problem<T, D>& p, const Switch<T>& sw, int64_t b, int64_t i) {
                ForwardPair<T, D> kernel{p, sw, {}};
                target(p, i, kernel.xi);
                auto sums = row(p, kernel, i);
                for (int k = 0; k < D; ++k) f[(b * a.sh.n + i) * D + k] = sums.a[k];
              });
  });
}

template <ffi::DataType DT>
ffi::Error Tangent(ffi::ThreadPool pool, ffi::Buffer<DT> q, ffi::Buffer<DT> box, ffi::Buffer<DT> c,
                   ffi::Buffer<ffi::S32> idx, ffi::Buffer<DT> dq, ffi::Buffer<DT> dbox,
                   ffi::ResultBuffer<DT> out, double onset2, double cutoff2) {
  using T = ffi::NativeType<DT>;
  Args a = args_of(q, idx, onset2, cutoff2);
  T* f = out->typed_data();
  return dispatch_d<T>(a.sh.d, [&](auto d) {
    constexpr int D = decltype(d)::value;
    run<T, D>(pool, a, q.typed_data(), box.typed_data(), c.typed_data(), idx.typed_data(),
              dq.typed_data(), dbox.typed_data(),
              [&](const Problem<T, D>& p, const Switch<T>& sw, int64_t b, int64_t i) {
                TangentPair<T, D> kernel{p, sw, {}, {}};
                target(p, i, kernel.xi);
                for (int k = 0; k < D; ++k) kernel.dxi[k] = p.dx[k][i];
                auto sums = row(p, kernel, i);
                for (int k = 0; k < D; ++k) f[(b * a.sh.n + i) * D + k] = sums.a[k];
              });
  });
}

template <typename T, int D, bool kParams>
void cotangent_row(const Problem<T, D>& p, const Switch<T>& sw, int64_t i, T* q_bar, T* box_rows,
                   T* c_rows) {
  CotangentPair<T, D, kParams> kernel{p, sw, {}, {}};
  target(p, i, kernel.xi);
  for (int k = 0; k < D; ++k) kernel.gi[k] = p.dx[k][i];
  auto sums = row(p, kernel, i);
  for (int k = 0; k < D; ++k) {
    q_bar[i * D + k] = sums.q[k];
    box_rows[i * D + k] = -sums.box[k];
  }
  c_rows[2 * i] = sums.a;
  c_rows[2 * i + 1] = sums.b;
}

template <ffi::DataType DT>
ffi::Error Cotangent(ffi::ThreadPool pool, ffi::Buffer<DT> q, ffi::Buffer<DT> box,
                     ffi::Buffer<DT> c, ffi::Buffer<ffi::S32> idx, ffi::Buffer<DT> g,
                     ffi::ResultBuffer<DT> q_bar, ffi::ResultBuffer<DT> box_rows,
                     ffi::ResultBuffer<DT> c_rows, double onset2, double cutoff2, bool params) {
  using T = ffi::NativeType<DT>;
  Args a = args_of(q, idx, onset2, cutoff2);
  T *qb = q_bar->typed_data(), *lb = box_rows->typed_data(), *cb = c_rows->typed_data();
  return dispatch_d<T>(a.sh.d, [&](auto d) {
    constexpr int D = decltype(d)::value;
    run<T, D>(pool, a, q.typed_data(), box.typed_data(), c.typed_data(), idx.typed_data(),
              g.typed_data(), nullptr,
              [&](const Problem<T, D>& p, const Switch<T>& sw, int64_t b, int64_t i) {
                const int64_t n = a.sh.n;
                if (params)
                  cotangent_row<T, D, true>(p, sw, i, qb + b * n * D, lb + b * n * D, cb + b * n * 2);
                else
                  cotangent_row<T, D, false>(p, sw, i, qb + b * n * D, lb + b * n * D, cb + b * n * 2);
              });
  });
}

}  // namespace

#define DIFFSIM_LJ_HANDLERS(SUFFIX, DT)                                                       \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(DiffsimLennardJonesForward##SUFFIX, Forward<ffi::DT>,       \
                                ffi::Ffi::Bind()                                           \
                                    .Ctx<ffi::ThreadPool>()                                \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                          \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                          \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                          \
                                    .Arg<ffi::Buffer<ffi::S32>>()                          \
                                    .Ret<DIFFSIM_BUFFER(DT)>()                          \
                                    .Attr<double>("onset2")                                \
                                    .Attr<double>("cutoff2"));                             \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(DiffsimLennardJonesTangent##SUFFIX, Tangent<ffi::DT>,       \
                                ffi::Ffi::Bind()                                           \
                                    .Ctx<ffi::ThreadPool>()                                \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                          \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                          \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                          \
                                    .Arg<ffi::Buffer<ffi::S32>>()                          \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                          \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                          \
                                    .Ret<DIFFSIM_BUFFER(DT)>()                          \
                                    .Attr<double>("onset2")                                \
                                    .Attr<double>("cutoff2"));                             \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(DiffsimLennardJonesCotangent##SUFFIX, Cotangent<ffi::DT>,   \
                                ffi::Ffi::Bind()                                           \
                                    .Ctx<ffi::ThreadPool>()                                \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                          \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                          \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                          \
                                    .Arg<ffi::Buffer<ffi::S32>>()                          \
                                    .Arg<DIFFSIM_BUFFER(DT)>()                          \
                                    .Ret<DIFFSIM_BUFFER(DT)>()                          \
                                    .Ret<DIFFSIM_BUFFER(DT)>()                          \
                                    .Ret<DIFFSIM_BUFFER(DT)>()                          \
                                    .Attr<double>("onset2")                                \
                                    .Attr<double>("cutoff2")                               \
                                    .Attr<bool>("params"));

DIFFSIM_LJ_HANDLERS(F32, F32)
DIFFSIM_LJ_HANDLERS(F64, F64)
