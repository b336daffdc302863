// GEMM driver: cache blocking, reusable pack buffers and OpenMP over blocks of C. The arithmetic
// (packing, register tiles) lives in gemm_impl.hpp and is picked per CPU by xsimd::dispatch.
//
// When op(B) fits in L1 (K*N <= gemm_small_b_max, e.g. an RNN cell's 8 x 32 weights) the direct
// small kernel runs on row blocks of C. Otherwise C is cut into MC x NC blocks ("tasks"), each
// belonging to one thread, which runs
//   for each kc slice of K:  pack op(A) block (MC x kc), pack op(B) block (kc x NC), micro-kernel.
// The kc slicing and the path depend only on the shape, so every element of C is summed in the
// same order whatever MC, NC and the thread count are: results are bitwise identical for 1 or N
// threads.
#include "autograd/kernels/gemm.h"

#include <omp.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <stdexcept>

#include "autograd/kernels/elementwise.h"
#include "autograd/kernels/gemm_bf16.h"
#include "autograd/kernels/gemm_impl.hpp"
#include "autograd/kernels/parallel.h"

namespace seqgrad::kernels {

namespace {

// Cache budgets, in bytes, next to gemm_kc_max: the kc x NC B block that the A panels sweep stays
// in a 2 MB L2; the A block is only streamed through L1, so it may be larger.
constexpr int64_t b_block_bytes = int64_t(1) << 20;
constexpr int64_t a_block_bytes = int64_t(3) << 19;
// Below this many flops (~10 us on one core) a parallel region costs about what it saves: 64^3
// measured slower on 2 threads than on 1, 128^3 1.5x faster.
constexpr double parallel_min_flops = 2.0 * 96 * 96 * 96;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// One thread's pack buffer, remembering which (call, block, k slice) it holds so that consecutive
// tasks sharing an operand block skip repacking it. Grows only; freed at thread exit.
template <class T>
struct PackBuffer {
  T* data_ = nullptr;
  int64_t capacity_ = 0;
  uint64_t call_ = 0;  // 0: holds nothing
  int64_t block_ = 0, slice_ = 0;

  PackBuffer() = default;
  PackBuffer(const PackBuffer&) = delete;
  PackBuffer& operator=(const PackBuffer&) = delete;
  ~PackBuffer() { std::free(data_); }

  bool reserve(int64_t n) {
    if (n <= capacity_) return true;
    std::free(data_);
    const auto bytes = size_t(round_up(n * int64_t(sizeof(T)), 4096));
    data_ = static_cast<T*>(std::aligned_alloc(4096, bytes));
    capacity_ = data_ ? int64_t(bytes / sizeof(T)) : 0;
    call_ = 0;
    return data_ != nullptr;
  }
  bool holds(uint64_t call, int64_t block, int64_t slice) const {
    return call_ == call && block_ == block && slice_ == slice;
  }
  void mark(uint64_t call, int64_t block, int64_t slice) { call_ = call, block_ = block, slice_ = slice; }
};

template <class T>
struct ThreadPacks {
  PackBuffer<T> a_, b_;
  PackBuffer<uint32_t> a16_, b16_;  // the same blocks as bf16 pairs, in bf16 mode
};
template <class T>
thread_local ThreadPacks<T> thread_packs;

std::atomic<uint64_t> next_call{1};

struct Plan {
  int64_t mc, nc, kc;                   // block sizes (the last block of each may be shorter)
  int64_t m_blocks, n_blocks, k_slices;
};

// Blocks sized by the cache budgets, then split further until the task count is a multiple of the
// thread count (splitting the dimension whose blocks hold more tiles), so static scheduling balances.
template <class T>
Plan make_plan(int64_t M, int64_t N, int64_t K, GemmTileSize tile, int64_t threads) {
  constexpr int64_t elem_bytes = sizeof(T);
  Plan p{};
  p.k_slices = ceil_div(K, gemm_kc_max<T>);
  p.kc = ceil_div(K, p.k_slices);
  const int64_t m_tiles = ceil_div(M, tile.mr), n_tiles = ceil_div(N, tile.nr);
  p.m_blocks = std::min(m_tiles, ceil_div(M * gemm_kc_max<T> * elem_bytes, a_block_bytes));  // row panels span kc_max
  p.n_blocks = std::min(n_tiles, ceil_div(N * p.kc * elem_bytes, b_block_bytes));
  for (int it = 0; it < 16 && (p.m_blocks * p.n_blocks) % threads != 0; ++it) {
    const bool split_m = m_tiles * p.n_blocks > n_tiles * p.m_blocks;  // more tiles per M block
    if (split_m && p.m_blocks < m_tiles) ++p.m_blocks;
    else if (p.n_blocks < n_tiles) ++p.n_blocks;
    else if (p.m_blocks < m_tiles) ++p.m_blocks;
    else break;
  }
  p.mc = round_up(ceil_div(M, p.m_blocks), tile.mr);
  p.nc = round_up(ceil_div(N, p.n_blocks), tile.nr);
  p.m_blocks = ceil_div(M, p.mc);
  p.n_blocks = ceil_div(N, p.nc);
  return p;
}

template <class T>
const T* op_at(const T* X, int64_t ld, bool trans, int64_t row, int64_t col) {
  return trans ? X + col * ld + row : X + row * ld + col;
}

// Plain loops for the one case the packed path cannot serve: a pack buffer that fails to allocate.
template <class T>
void gemm_block_naive(bool trans_a, bool trans_b, int64_t i0, int64_t m, int64_t j0, int64_t n, int64_t K, const T* A,
                      int64_t lda, const T* B, int64_t ldb, bool accumulate, T* C, int64_t ldc, const T* bias) {
  for (int64_t i = i0; i < i0 + m; ++i)
    for (int64_t j = j0; j < j0 + n; ++j) {
      T sum = bias ? bias[j] : T(0);
      for (int64_t k = 0; k < K; ++k) sum += *op_at(A, lda, trans_a, i, k) * *op_at(B, ldb, trans_b, k, j);
      C[i * ldc + j] = accumulate ? C[i * ldc + j] + sum : sum;
    }
}

// The dispatched building blocks of gemm_impl.hpp for T.
template <class T>
struct Dispatch {
  decltype(xsimd::dispatch<arch_list>(gemm_pack_a_kernel{})) pack_a = xsimd::dispatch<arch_list>(gemm_pack_a_kernel{});
  decltype(xsimd::dispatch<arch_list>(gemm_pack_b_kernel{})) pack_b = xsimd::dispatch<arch_list>(gemm_pack_b_kernel{});
  decltype(xsimd::dispatch<arch_list>(gemm_micro_kernel{})) micro = xsimd::dispatch<arch_list>(gemm_micro_kernel{});
  decltype(xsimd::dispatch<arch_list>(gemm_small_kernel{})) small = xsimd::dispatch<arch_list>(gemm_small_kernel{});
  GemmTileSize tile = xsimd::dispatch<arch_list>(gemm_tile_size{})(static_cast<const T*>(nullptr));
};
template <class T>
Dispatch<T>& dispatch() {
  static Dispatch<T> d;  // xsimd 8.1's dispatchers have a non-const call operator
  return d;
}

bool run_parallel(int64_t M, int64_t N, int64_t K) {
  return 2.0 * double(M) * double(N) * double(K) >= parallel_min_flops && omp_get_max_threads() > 1 &&
         !omp_in_parallel();
}

// k slices as make_plan cuts them: they depend on K only, so a prepacked B matches every plan.
template <class T>
std::pair<int64_t, int64_t> k_slicing(int64_t K) {
  const int64_t slices = ceil_div(K, gemm_kc_max<T>);
  return {slices, ceil_div(K, slices)};
}

// beta other than 0 or 1 scales C first, and a bias joins C there unless beta is 0 (then the kernels
// add it); K = 0 leaves beta*C + bias. Returns false when nothing is left to do.
template <class T>
bool prepare_c(int64_t M, int64_t N, int64_t K, T& beta, T* C, int64_t ldc, const T*& bias) {
  if (M <= 0 || N <= 0) return false;
  if (beta != T(0) && beta != T(1)) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] *= beta;
    beta = T(1);
  }
  if (bias && (beta != T(0) || K <= 0)) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = (beta != T(0) ? C[i * ldc + j] : T(0)) + bias[j];
    beta = T(1);
    bias = nullptr;
  }
  if (K > 0) return true;
  if (beta == T(0))
    for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, T(0));
  return false;
}

// The blocked path. packed: op(B) laid out by gemm_pack_b, or null to pack each block here.
// bf16: the products run in bfloat16 (packed, if given, holds bf16 pairs).
template <class T>
void gemm_blocked(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
                  int64_t ldb, const T* packed, bool bf16, T beta, T* C, int64_t ldc, const T* bias,
                  T* a_sums = nullptr) {
  Dispatch<T>& d = dispatch<T>();
  const GemmTileSize tile = d.tile;
  constexpr int64_t kp_max = gemm_kc_max<T> / 2;  // pairs in a bf16 A row
  const bool parallel = run_parallel(M, N, K);
  const int threads = parallel ? omp_get_max_threads() : 1;
  const Plan plan = make_plan<T>(M, N, K, tile, threads);
  const int64_t slice_stride = plan.kc * round_up(N, tile.nr);  // of a prepacked B
  const int64_t slice_stride16 = ceil_div(plan.kc, 2) * round_up(N, tile.nr);  // of a prepacked bf16 B, in pairs
  const uint64_t call = next_call.fetch_add(1, std::memory_order_relaxed);
  // Tasks sharing a block index are consecutive along the inner index: with a single k slice, the
  // operand of the outer dimension is packed once per thread rather than once per task.
  const bool m_outer = plan.m_blocks <= plan.n_blocks;
  const int64_t inner_blocks = m_outer ? plan.n_blocks : plan.m_blocks;

  // A's rows [k0, k0 + kc), columns [i0, i0 + mc) (trans_a), added to a_sums in order by the one
  // task of their block at the first column block, just after it read them.
  auto sum_a = [&](int64_t bn, int64_t i0, int64_t mc, int64_t k0, int64_t kc) {
    const T one = 1;
    if (a_sums && bn == 0) axpy_rows(a_sums + i0, &one, 0, A + k0 * lda + i0, lda, mc, kc);
  };
  auto run_task = [&](int64_t task) {
    const int64_t bm = m_outer ? task / inner_blocks : task % inner_blocks;
    const int64_t bn = m_outer ? task % inner_blocks : task / inner_blocks;
    const int64_t i0 = bm * plan.mc, mc = std::min(plan.mc, M - i0);
    const int64_t j0 = bn * plan.nc, nc = std::min(plan.nc, N - j0);
    ThreadPacks<T>& packs = thread_packs<T>;
    if (!packs.a_.reserve(round_up(mc, tile.mr) * gemm_kc_max<T>) ||
        (!packed && !packs.b_.reserve(round_up(nc, tile.nr) * plan.kc)) ||
        (bf16 && (!packs.a16_.reserve(round_up(mc, tile.mr) * kp_max) ||
                  (!packed && !packs.b16_.reserve(round_up(nc, tile.nr) * ceil_div(plan.kc, 2)))))) {
      gemm_block_naive(trans_a, trans_b, i0, mc, j0, nc, K, A, lda, B, ldb, beta != T(0), C, ldc, bias);
      sum_a(bn, i0, mc, 0, K);
      return;
    }
    for (int64_t s = 0; s < plan.k_slices; ++s) {
      const int64_t k0 = s * plan.kc, kc = std::min(plan.kc, K - k0);
      if (!packs.a_.holds(call, bm, s)) {
        d.pack_a(trans_a, op_at(A, lda, trans_a, i0, k0), lda, mc, kc, packs.a_.data_);
        if constexpr (std::is_same_v<T, float>)
          if (bf16) bf16::convert_a(trans_a, packs.a_.data_, trans_a ? kc : gemm_kc_max<T>, mc, kc, packs.a16_.data_, kp_max);
        packs.a_.mark(call, bm, s);
      }
      sum_a(bn, i0, mc, k0, kc);
      if (!packed && !packs.b_.holds(call, bn, s)) {
        d.pack_b(trans_b, op_at(B, ldb, trans_b, k0, j0), ldb, kc, nc, packs.b_.data_);
        if constexpr (std::is_same_v<T, float>)
          if (bf16) bf16::convert_b(packs.b_.data_, kc, nc, packs.b16_.data_);
        packs.b_.mark(call, bn, s);
      }
      const bool accumulate = s > 0 || beta != T(0);
      const T* b_here = s == 0 && bias ? bias + j0 : nullptr;
      if constexpr (std::is_same_v<T, float>) {
        if (bf16) {
          const uint32_t* pb = packed ? reinterpret_cast<const uint32_t*>(packed) + s * slice_stride16 + j0 * ceil_div(kc, 2)
                                      : packs.b16_.data_;
          bf16::micro(mc, nc, kc, packs.a16_.data_, kp_max, pb, C + i0 * ldc + j0, ldc, accumulate, b_here);
          continue;
        }
      }
      const T* pb = packed ? packed + s * slice_stride + j0 * kc : packs.b_.data_;
      d.micro(trans_a, mc, nc, kc, static_cast<const T*>(packs.a_.data_), pb, C + i0 * ldc + j0, ldc, accumulate, b_here);
    }
  };

  const int64_t tasks = plan.m_blocks * plan.n_blocks;
  if (parallel) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t t = 0; t < tasks; ++t) run_task(t);
  } else {
    for (int64_t t = 0; t < tasks; ++t) run_task(t);
  }
}

// Matrix-vector shapes (a Linear(H, 1) head and its gradients), which the tiles would mostly pad:
// with M = 1 or N = 1, C is a row of dot products of contiguous vectors, or a sum of scaled
// contiguous rows. Returns false for the layouts where neither holds (then the tiles serve).
template <class T>
bool gemv(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
          int64_t ldb, bool accumulate, T* C, int64_t ldc) {
  // C[i] = dot(X row i, v) for rows of X with stride ldx, into C with stride ldy; threads take
  // fixed blocks of rows.
  auto dots = [&](int64_t rows, const T* X, int64_t ldx, const T* v, int64_t ldy) {
    constexpr int64_t kRows = 256;
    const int64_t blocks = ceil_div(rows, kRows);
    parallel_for(blocks, blocks > 1 && rows * K >= kParallelMin && !omp_in_parallel(), [&](int64_t b) {
      const int64_t i0 = b * kRows;
      dot_rows(C + i0 * ldy, ldy, X + i0 * ldx, ldx, v, K, std::min(kRows, rows - i0), accumulate);
    });
  };
  // C[0:n] (contiguous) = sum_k a[k * inc] * X row k (stride ldx), k in order.
  auto rows_sum = [&](int64_t n, const T* a, int64_t inc, const T* X, int64_t ldx) {
    if (!accumulate) std::fill(C, C + n, T(0));
    axpy_rows(C, a, inc, X, ldx, n, K);
  };
  if (N == 1) {
    const bool b_contiguous = trans_b || ldb == 1;  // op(B) is K x 1
    if (!trans_a && b_contiguous) return dots(M, A, lda, B, ldc), true;
    if (trans_a && ldc == 1) return rows_sum(M, B, trans_b ? 1 : ldb, A, lda), true;
    return false;
  }
  if (M == 1) {
    const int64_t inc_a = trans_a ? lda : 1;  // op(A) is 1 x K
    if (!trans_b) return rows_sum(N, A, inc_a, B, ldb), true;
    if (inc_a == 1) return dots(N, B, ldb, A, 1), true;
  }
  return false;
}

}  // namespace

// gemm(); one_row_gemv: whether M == 1 may take the matrix-vector path (gemm_packed_rows: not).
template <class T>
void gemm_impl(bool one_row_gemv, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
               const T* B, int64_t ldb, T beta, T* C, int64_t ldc, const T* bias, T* a_sums = nullptr) {
  const bool vector_shape = (M == 1 && one_row_gemv) || N == 1, small = K * N <= gemm_small_b_max;
  if (a_sums && M > 0 && K > 0 && (N <= 0 || vector_shape || small || !trans_a)) {  // else summed as A is packed
    if (trans_a)
      column_sums(a_sums, A, lda, K, M);
    else
      for (int64_t i = 0; i < M; ++i) a_sums[i] += sum(A + i * lda, K);
    a_sums = nullptr;
  }
  if (!prepare_c(M, N, K, beta, C, ldc, bias)) return;
  if (bias && (vector_shape || small)) {  // only the register tiles seed it; the other paths add onto it
    for (int64_t i = 0; i < M; ++i) std::copy_n(bias, N, C + i * ldc);
    beta = T(1), bias = nullptr;
  }
  if (vector_shape && gemv<T>(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta != T(0), C, ldc)) return;
  if (!small)
    return gemm_blocked<T>(trans_a, trans_b, M, N, K, A, lda, B, ldb, nullptr, std::is_same_v<T, float> && bf16::enabled(),
                           beta, C, ldc, bias, a_sums);

  // op(B) fits in L1: no blocking, no packing; threads split the rows.
  const bool parallel = run_parallel(M, N, K);
  const int threads = parallel ? omp_get_max_threads() : 1;
  const int64_t rows = ceil_div(M, threads);  // the strips take any row count
  auto run_rows = [&](int64_t i0) {
    dispatch<T>().small(trans_a, trans_b, std::min(rows, M - i0), N, K, op_at(A, lda, trans_a, i0, 0), lda, B, ldb,
                        beta != T(0), C + i0 * ldc, ldc);
  };
  if (parallel && rows < M) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i0 = 0; i0 < M; i0 += rows) run_rows(i0);
  } else {
    run_rows(0);
  }
}

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc, const T* bias, T* a_sums) {
  gemm_impl<T>(true, trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc, bias, a_sums);
}

template <class T>
int64_t gemm_packed_size(int64_t K, int64_t N) {
  if (K <= 0 || N <= 0 || K * N <= gemm_small_b_max) return 0;
  auto [slices, kc] = k_slicing<T>(K);
  return slices * kc * round_up(N, dispatch<T>().tile.nr);
}

template <class T>
void gemm_pack_b(const PackedB<T>& b) {
  if (!b.data) return;
  Dispatch<T>& d = dispatch<T>();
  const std::pair<int64_t, int64_t> slicing = k_slicing<T>(b.K);  // not a structured binding: the lambda uses it
  const int64_t slices = slicing.first, kc = slicing.second, nr = d.tile.nr, npad = round_up(b.N, nr);
  constexpr int64_t panels_per_chunk = 8;
  const int64_t chunks = ceil_div(npad / nr, panels_per_chunk), jobs = slices * chunks;
  auto pack = [&](int64_t job) {
    const int64_t s = job / chunks, j0 = job % chunks * panels_per_chunk * nr;
    const int64_t k0 = s * kc, kcs = std::min(kc, b.K - k0), nc = std::min(panels_per_chunk * nr, b.N - j0);
    const T* src = op_at(b.src, b.ldb, b.trans, k0, j0);
    if constexpr (std::is_same_v<T, float>) {
      if (b.bf16) {  // float panels aside, then their pairs in place (gemm_blocked's layout)
        thread_local PackBuffer<float> aside;  // aligned, as the packing's stores need
        if (!aside.reserve(round_up(nc, nr) * kcs)) throw std::bad_alloc();
        d.pack_b(b.trans, src, b.ldb, kcs, nc, aside.data_);
        const int64_t kp = ceil_div(kc, 2), kps = ceil_div(kcs, 2);
        bf16::convert_b(aside.data_, kcs, nc, reinterpret_cast<uint32_t*>(b.data) + s * kp * npad + j0 * kps);
        return;
      }
    }
    d.pack_b(b.trans, src, b.ldb, kcs, nc, b.data + s * kc * npad + j0 * kcs);
  };
  if (b.K * b.N >= (int64_t(1) << 18) && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (int64_t job = 0; job < jobs; ++job) pack(job);
  } else {
    for (int64_t job = 0; job < jobs; ++job) pack(job);
  }
}

template <class T>
void gemm_packed(int64_t M, const T* A, int64_t lda, const PackedB<T>& B, T beta, T* C, int64_t ldc, const T* bias) {
  if (!B.data || M == 1 || B.N == 1)  // gemm's unpacked paths, for the same bits
    return gemm<T>(false, B.trans, M, B.N, B.K, A, lda, B.src, B.ldb, beta, C, ldc, bias);
  if (!prepare_c(M, B.N, B.K, beta, C, ldc, bias)) return;
  gemm_blocked<T>(false, B.trans, M, B.N, B.K, A, lda, B.src, B.ldb, B.data, B.bf16, beta, C, ldc, bias);
}

template <class T>
void gemm_packed_rows(int64_t M, const T* A, int64_t lda, const PackedB<T>& B, T* C, int64_t ldc, const T* bias) {
  if (!B.data || B.N == 1)
    return gemm_impl<T>(false, false, B.trans, M, B.N, B.K, A, lda, B.src, B.ldb, T(0), C, ldc, bias);
  T beta = T(0);
  if (!prepare_c(M, B.N, B.K, beta, C, ldc, bias)) return;
  gemm_blocked<T>(false, B.trans, M, B.N, B.K, A, lda, B.src, B.ldb, B.data, B.bf16, beta, C, ldc, bias);
}

namespace bf16 {
namespace {
std::atomic<bool> mode{false};
}
bool cpu_supported() { return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw"); }
bool enabled() { return mode.load(std::memory_order_relaxed); }
void set_enabled(bool on) {
  if (on && !cpu_supported())
    throw std::runtime_error("bfloat16 matmul: this CPU has no AVX512_BF16 (vdpbf16ps); float32 is the only precision");
  mode.store(on, std::memory_order_relaxed);
}
}  // namespace bf16

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float,
                          float*, int64_t, const float*, float*);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, const double*, int64_t, const double*, int64_t,
                           double, double*, int64_t, const double*, double*);
template void gemm_packed_rows<float>(int64_t, const float*, int64_t, const PackedB<float>&, float*, int64_t,
                                      const float*);
template void gemm_packed_rows<double>(int64_t, const double*, int64_t, const PackedB<double>&, double*, int64_t,
                                       const double*);
template int64_t gemm_packed_size<float>(int64_t, int64_t);
template int64_t gemm_packed_size<double>(int64_t, int64_t);
template void gemm_pack_b<float>(const PackedB<float>&);
template void gemm_pack_b<double>(const PackedB<double>&);
template void gemm_packed<float>(int64_t, const float*, int64_t, const PackedB<float>&, float, float*, int64_t,
                                 const float*);
template void gemm_packed<double>(int64_t, const double*, int64_t, const PackedB<double>&, double, double*, int64_t,
                                  const double*);

}  // namespace seqgrad::kernels
