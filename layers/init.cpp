#include "layers/init.h"

#include <cmath>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "layers/module.h"

namespace seqgrad::init {

namespace {
void check_defined(const char* fn, const Tensor& t) {
  if (!t.defined()) throw std::invalid_argument(fmt::format("{}: the tensor is undefined", fn));
}

// (rows, cols) of t viewed as a matrix: the first axis against all the others.
std::pair<int64_t, int64_t> as_matrix(const char* fn, const Tensor& t) {
  check_defined(fn, t);
  if (t.rank() < 2 || t.numel() == 0)
    throw std::invalid_argument(
        fmt::format("{}: needs a non-empty tensor with at least 2 dimensions, got {}", fn, t.shape()));
  return {t.size(0), t.numel() / t.size(0)};
}

// Orthonormalises the columns of a (rows x cols, rows >= cols) row-major matrix in place by
// modified Gram-Schmidt, run twice for accuracy. Positive projections keep R's diagonal positive.
void orthonormal_columns(std::vector<double>& a, int64_t rows, int64_t cols) {
  for (int64_t j = 0; j < cols; ++j) {
    for (int pass = 0; pass < 2; ++pass)
      for (int64_t k = 0; k < j; ++k) {
        double dot = 0;
        for (int64_t i = 0; i < rows; ++i) dot += a[i * cols + k] * a[i * cols + j];
        for (int64_t i = 0; i < rows; ++i) a[i * cols + j] -= dot * a[i * cols + k];
      }
    double norm = 0;
    for (int64_t i = 0; i < rows; ++i) norm += a[i * cols + j] * a[i * cols + j];
    norm = std::sqrt(norm);
    for (int64_t i = 0; i < rows; ++i) a[i * cols + j] /= norm;
  }
}

// A (rows x cols) orthogonal matrix, row-major, scaled by gain.
std::vector<double> orthogonal_matrix(int64_t rows, int64_t cols, Generator& gen, double gain) {
  bool wide = rows < cols;
  int64_t r = wide ? cols : rows, c = wide ? rows : cols;  // work on the tall orientation
  std::vector<double> a(size_t(r * c));
  for (double& v : a) v = gen.normal();
  orthonormal_columns(a, r, c);
  std::vector<double> out(size_t(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) out[size_t(i * cols + j)] = gain * (wide ? a[j * c + i] : a[i * c + j]);
  return out;
}
}  // namespace

std::pair<int64_t, int64_t> fans(const Tensor& t) {
  auto [rows, cols] = as_matrix("fans", t);
  int64_t receptive = cols / t.size(1);
  return {t.size(1) * receptive, rows * receptive};
}

void uniform_(const Tensor& t, double lo, double hi, Generator& gen) {
  check_defined("uniform_", t);
  Tensor(t).copy_(uniform(t.shape(), lo, hi, gen, t.dtype()));
}

void normal_(const Tensor& t, double mean, double stddev, Generator& gen) {
  check_defined("normal_", t);
  Tensor(t).copy_(normal(t.shape(), mean, stddev, gen, t.dtype()));
}

void xavier_uniform_(const Tensor& t, Generator& gen, double gain) {
  auto [fan_in, fan_out] = fans(t);
  double b = gain * std::sqrt(6.0 / double(fan_in + fan_out));
  uniform_(t, -b, b, gen);
}

void xavier_normal_(const Tensor& t, Generator& gen, double gain) {
  auto [fan_in, fan_out] = fans(t);
  normal_(t, 0.0, gain * std::sqrt(2.0 / double(fan_in + fan_out)), gen);
}

void kaiming_uniform_(const Tensor& t, Generator& gen, double a) {
  double b = std::sqrt(6.0 / ((1.0 + a * a) * double(fans(t).first)));
  uniform_(t, -b, b, gen);
}

void orthogonal_(const Tensor& t, Generator& gen, double gain) {
  auto [rows, cols] = as_matrix("orthogonal_", t);
  std::vector<double> q = orthogonal_matrix(rows, cols, gen, gain);
  Tensor(t).copy_(from_vector(q, t.shape(), t.dtype()));
}

void orthogonal_gates_(const Tensor& t, Generator& gen, double gain) {
  auto [rows, cols] = as_matrix("orthogonal_gates_", t);
  if (t.rank() != 2 || rows % cols != 0)
    throw std::invalid_argument(
        fmt::format("orthogonal_gates_: expected a recurrent weight (gates * hidden, hidden), got {}", t.shape()));
  std::vector<double> all;
  for (int64_t g = 0; g < rows / cols; ++g) {
    std::vector<double> q = orthogonal_matrix(cols, cols, gen, gain);
    all.insert(all.end(), q.begin(), q.end());
  }
  Tensor(t).copy_(from_vector(all, t.shape(), t.dtype()));
}

void orthogonal_recurrent_(Module& m, Generator& gen, double gain) {
  for (auto& [name, t] : m.named_parameters()) {
    size_t dot = name.rfind('.');
    std::string own = dot == std::string::npos ? name : name.substr(dot + 1);
    if (own.rfind("weight_hh", 0) == 0) orthogonal_gates_(t, gen, gain);
  }
}

}  // namespace seqgrad::init
