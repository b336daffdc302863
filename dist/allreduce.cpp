// allreduce_gradients: the mean of every rank's gradients in a fixed order (see dist.h,
// "Determinism"), in few large buckets.
#include <chrono>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "dist/dist.h"
#include "dist/internal.h"

namespace seqgrad::dist {

namespace {
using detail::check_mpi;

Stats g_stats;

template <class T>
MPI_Datatype mpi_type() {
  return sizeof(T) == 4 ? MPI_FLOAT : MPI_DOUBLE;
}

// One bucket: pack the members' gradients (zeros where a rank has none), rank r sums chunk r of
// every rank's bucket in rank order and divides by N, then everyone gathers every chunk.
template <class T>
void reduce_bucket(std::span<const Tensor> members, int64_t n) {
  const int N = world_size(), me = rank();
  if (n > INT32_MAX) throw std::invalid_argument(fmt::format("dist::allreduce_gradients: bucket of {} elements", n));
  thread_local std::vector<T> bucket, received;
  thread_local std::vector<int> counts, displs, rcounts, rdispls;
  bucket.resize(size_t(n));
  T* b = bucket.data();
  for (const Tensor& p : members) {
    Tensor g = p.grad();
    if (g.defined()) std::memcpy(b, g.data<T>(), size_t(p.numel()) * sizeof(T));
    else std::fill(b, b + p.numel(), T(0));
    b += p.numel();
  }
  counts.resize(size_t(N)), displs.resize(size_t(N)), rcounts.resize(size_t(N)), rdispls.resize(size_t(N));
  for (int q = 0; q < N; ++q) {
    displs[size_t(q)] = int(n * q / N);
    counts[size_t(q)] = int(n * (q + 1) / N) - displs[size_t(q)];
  }
  const int mine = counts[size_t(me)];
  for (int q = 0; q < N; ++q) rcounts[size_t(q)] = mine, rdispls[size_t(q)] = q * mine;
  received.resize(size_t(N) * size_t(mine));
  check_mpi(MPI_Alltoallv(bucket.data(), counts.data(), displs.data(), mpi_type<T>(), received.data(), rcounts.data(),
                          rdispls.data(), mpi_type<T>(), detail::comm()),
            "MPI_Alltoallv");
  T* out = bucket.data() + displs[size_t(me)];
  std::memcpy(out, received.data(), size_t(mine) * sizeof(T));
  for (int q = 1; q < N; ++q) {
    const T* in = received.data() + size_t(q) * size_t(mine);
    for (int i = 0; i < mine; ++i) out[i] += in[i];
  }
  for (int i = 0; i < mine; ++i) out[i] /= T(N);
  check_mpi(MPI_Allgatherv(MPI_IN_PLACE, 0, mpi_type<T>(), bucket.data(), counts.data(), displs.data(), mpi_type<T>(),
                           detail::comm()),
            "MPI_Allgatherv");
  b = bucket.data();
  for (Tensor p : members) {
    if (!p.grad().defined()) p.set_grad(Tensor::empty(p.shape(), p.dtype()));
    std::memcpy(p.grad().data<T>(), b, size_t(p.numel()) * sizeof(T));
    b += p.numel();
  }
  g_stats.bytes_sent += int64_t(n - mine + int64_t(mine) * (N - 1)) * int64_t(sizeof(T));
  g_stats.calls += 2;
}
}  // namespace

void allreduce_gradients(std::span<const Tensor> params, const AllreduceOptions& options) {
  if (!detail::active() || world_size() == 1) return;
  auto start = std::chrono::steady_clock::now();
  // Which parameters have a gradient on any rank (a bitwise OR: exact, order-free).
  std::vector<unsigned char> has(params.size());
  for (size_t i = 0; i < params.size(); ++i) has[i] = params[i].grad().defined();
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, has.data(), int(has.size()), MPI_UNSIGNED_CHAR, MPI_BOR, detail::comm()),
            "MPI_Allreduce");
  g_stats.bytes_sent += int64_t(has.size());
  g_stats.calls += 1;
  for (DType dtype : {DType::f32, DType::f64}) {
    std::vector<Tensor> members;
    int64_t n = 0;
    auto flush = [&] {
      if (members.empty()) return;
      if (dtype == DType::f32) reduce_bucket<float>(members, n);
      else reduce_bucket<double>(members, n);
      members.clear();
      n = 0;
    };
    for (size_t i = 0; i < params.size(); ++i) {
      const Tensor& p = params[i];
      if (!has[i] || p.dtype() != dtype) continue;
      if (n > 0 && size_t(n + p.numel()) * dtype_size(dtype) > options.bucket_bytes) flush();
      members.push_back(p);
      n += p.numel();
    }
    flush();
  }
  g_stats.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

Stats stats() { return g_stats; }
void reset_stats() { g_stats = {}; }

}  // namespace seqgrad::dist
