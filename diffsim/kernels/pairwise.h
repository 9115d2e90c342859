// Shared by the CPU kernels (`pairwise.cc`: softened gravity; `lennard_jones.cc`): threads
// on XLA's pool, SIMD packs, the (batch, n, d) layout. Everything here is inline or a
// template, so each kernel file includes it as its own.

#pragma once


#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <type_traits>
#include <thread>
#include <vector>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

// A buffer of one of ffi::DataType's names (F32, F64), for the handlers' bindings.
#define DIFFSIM_BUFFER(DT) ffi::Buffer<ffi::DT>

namespace {

// Threads: the CPUs this process may run on (not the machine's count: a container or
// taskset may allow fewer), or DIFFSIM_NUM_THREADS.
int max_threads() {
  if (const char* env = std::getenv("DIFFSIM_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// Runs body(begin, end) over [0, rows), on XLA's own intra-op threads plus the calling
// thread (threads of ours would compete with the pool's, which spin between tasks: measured
// half speed). Rows are handed out in small slices from a shared counter, so a thread that
// starts late, or is descheduled for a while, costs only its current slice. The caller
// waits only for slices already being worked on, never for a task to start: a pool busy
// with other work (another of these kernels, blocked the same way) cannot deadlock it,
// and a task that starts after the caller has returned finds no rows left and touches
// nothing but the shared counter. Small problems run inline.
template <typename Body>
void parallel_rows(ffi::ThreadPool& pool, int64_t rows, int64_t pairs_per_row, Body body) {
  constexpr int64_t kPairsPerTask = int64_t{1} << 17;
  int64_t threads = std::min<int64_t>(max_threads(), std::max<int64_t>(pool.num_threads(), 1));
  threads = std::clamp<int64_t>(rows * pairs_per_row / kPairsPerTask, 1, threads);
  threads = std::min(threads, rows);
  if (threads <= 1) {
    body(int64_t{0}, rows);
    return;
  }
  struct Shared {
    std::atomic<int64_t> next{0};
    int64_t done = 0;  // rows finished, under `mutex`
    std::mutex mutex;
    std::condition_variable finished;
  };
  auto shared = std::make_shared<Shared>();
  const int64_t slice = std::max<int64_t>(1, rows / (16 * threads));
  auto work = [shared, rows, slice, &body] {
    for (int64_t begin; (begin = shared->next.fetch_add(slice)) < rows;) {
      const int64_t end = std::min(rows, begin + slice);
      body(begin, end);
      std::lock_guard<std::mutex> lock(shared->mutex);
      if ((shared->done += end - begin) == rows) shared->finished.notify_all();
    }
  };
  for (int64_t t = 1; t < threads; ++t) pool.Schedule([work] { work(); });
  work();
  std::unique_lock<std::mutex> lock(shared->mutex);
  shared->finished.wait(lock, [&] { return shared->done == rows; });
}


// (batch, n, width) -> (batch, width, n_pad), zero past n.
template <typename T>
std::vector<T> transpose(const T* a, int64_t batch, int64_t n, int64_t width, int64_t n_pad) {
  std::vector<T> out(static_cast<size_t>(batch * width * n_pad), T(0));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t k = 0; k < width; ++k)
        out[(b * width + k) * n_pad + j] = a[(b * n + j) * width + k];
  return out;
}


// ---- packs: the pair arithmetic is written once, for a scalar or a SIMD pack -----------
//
// The pair loops' cost is the reciprocal square root. For floats, compilers turn
// 1/sqrt(s) into a full-precision sqrt and division (about 20 cycles a vector), or at
// best into a hardware estimate of sqrt followed by a reciprocal: so on x86 it is spelled
// out here, the hardware estimate of 1/sqrt with one Newton step (float rounding).
// Doubles take the exact sqrt and division. Elsewhere a pack is one scalar.
//
// Packs are 256-bit even where AVX-512 exists: measured on an AVX-512 Xeon, 512-bit packs
// ran the forward kernel 1.5x slower (one 512-bit FMA port and the down-clocking that
// heavy 512-bit code brings, against two 256-bit ports), as LLVM's own default assumes.

template <typename T>
struct Pack {
  using type = T;
  static constexpr int64_t width = 1;
};

inline float rsqrt(float s) { return 1.0f / std::sqrt(s); }
inline double rsqrt(double s) { return 1.0 / std::sqrt(s); }

#if defined(__AVX__)
template <>
struct Pack<float> {
  typedef float type __attribute__((vector_size(32)));
  static constexpr int64_t width = 8;
};
template <>
struct Pack<double> {
  typedef double type __attribute__((vector_size(32)));
  static constexpr int64_t width = 4;
};
inline Pack<float>::type rsqrt(Pack<float>::type s) {
  auto y = (Pack<float>::type)_mm256_rsqrt_ps((__m256)s);
  return y * (1.5f - 0.5f * s * y * y);
}
inline Pack<double>::type rsqrt(Pack<double>::type s) {
  return (Pack<double>::type)_mm256_div_pd(_mm256_set1_pd(1.0), _mm256_sqrt_pd((__m256d)s));
}
#endif

template <typename N, typename T>
inline N splat(T x) {
  N zero = {};
  return zero + x;  // a scalar, or the scalar in every lane of a pack
}

template <typename N, typename T>
inline N load(const T* a) {
  N v;
  std::memcpy(&v, a, sizeof(N));
  return v;
}

template <typename T, typename N>
inline T lane_sum(N v) {
  T lanes[sizeof(N) / sizeof(T)], s = T(0);
  std::memcpy(lanes, &v, sizeof(N));
  for (T x : lanes) s += x;
  return s;
}

template <typename T, typename N>
inline void set_lane(N& v, int64_t lane, T x) {
  T lanes[sizeof(N) / sizeof(T)];
  std::memcpy(lanes, &v, sizeof(N));
  lanes[lane] = x;
  std::memcpy(&v, lanes, sizeof(N));
}


// ---- driver: batch shapes, transposes, threads ----------------------------------------

struct Shape {
  int64_t batch, n, d;
};

Shape shape_of(ffi::Span<const int64_t> dims) {
  Shape s{1, 0, 0};
  if (dims.size() < 2) return s;
  s.n = dims[dims.size() - 2];
  s.d = dims[dims.size() - 1];
  for (size_t k = 0; k + 2 < dims.size(); ++k) s.batch *= dims[k];
  return s;
}


template <typename T, typename Fn>
ffi::Error dispatch_d(int64_t d, Fn fn) {
  switch (d) {
    case 1: fn(std::integral_constant<int, 1>{}); break;
    case 2: fn(std::integral_constant<int, 2>{}); break;
    case 3: fn(std::integral_constant<int, 3>{}); break;
    default:
      return ffi::Error::InvalidArgument("diffsim pairwise kernel: d must be 1, 2 or 3");
  }
  return ffi::Error::Success();
}

}  // namespace
