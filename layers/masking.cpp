#include "layers/masking.h"

#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "autograd/ops.h"

namespace seqgrad {

namespace {
// Checks values is (B, T, ...) (or (T, B, ...)) against lengths; returns (B, T).
std::pair<int64_t, int64_t> batch_and_steps(const char* fn, const Tensor& values, std::span<const int64_t> lengths,
                                            bool batch_first) {
  if (!values.defined()) throw std::invalid_argument(fmt::format("{}: input is an undefined tensor", fn));
  if (values.rank() < 2)
    throw std::invalid_argument(fmt::format("{}: input must have at least 2 dimensions {}, got {}", fn,
                                            batch_first ? "(batch, seq, ...)" : "(seq, batch, ...)", values.shape()));
  int64_t B = values.size(batch_first ? 0 : 1), T = values.size(batch_first ? 1 : 0);
  if (int64_t(lengths.size()) != B)
    throw std::invalid_argument(
        fmt::format("{}: lengths has {} entries but input {} has {} sequences", fn, lengths.size(), values.shape(), B));
  return {B, T};
}

// The mask shaped to broadcast against values: (B, T, 1, ..., 1) or (T, B, 1, ..., 1).
Tensor broadcast_mask(const char* fn, const Tensor& values, std::span<const int64_t> lengths, bool batch_first,
                      int64_t& valid) {
  auto [B, T] = batch_and_steps(fn, values, lengths, batch_first);
  valid = 0;
  for (size_t b = 0; b < lengths.size(); ++b) {
    if (lengths[b] < 0 || lengths[b] > T)
      throw std::invalid_argument(fmt::format("{}: lengths[{}] = {} is out of range [0, {}]", fn, b, lengths[b], T));
    valid += lengths[b];
  }
  if (valid == 0) throw std::invalid_argument(fmt::format("{}: every length is 0: nothing to average", fn));
  Tensor m = sequence_mask(lengths, T, values.dtype(), batch_first);
  Shape s = m.shape();
  for (int i = 2; i < values.rank(); ++i) s.push_back(1);
  return m.reshape(s);
}
}  // namespace

Tensor sequence_mask(std::span<const int64_t> lengths, int64_t max_len, DType dtype, bool batch_first) {
  int64_t B = int64_t(lengths.size());
  std::vector<double> m(size_t(B * max_len));
  for (int64_t b = 0; b < B; ++b) {
    if (lengths[b] < 0 || lengths[b] > max_len)
      throw std::invalid_argument(
          fmt::format("sequence_mask: lengths[{}] = {} is out of range [0, {}]", b, lengths[b], max_len));
    for (int64_t t = 0; t < lengths[b]; ++t) m[size_t(batch_first ? b * max_len + t : t * B + b)] = 1.0;
  }
  return from_vector(m, batch_first ? Shape{B, max_len} : Shape{max_len, B}, dtype);
}

Tensor masked_mean(const Tensor& values, std::span<const int64_t> lengths, bool batch_first) {
  int64_t valid = 0;
  Tensor m = broadcast_mask("masked_mean", values, lengths, batch_first, valid);
  int64_t per_step = values.numel() / (values.size(0) * values.size(1));
  return mul(sum(mul(values, m)), 1.0 / double(valid * per_step));
}

Tensor masked_mse_loss(const Tensor& input, const Tensor& target, std::span<const int64_t> lengths, bool batch_first) {
  if (!input.defined() || !target.defined() || input.shape() != target.shape())
    throw std::invalid_argument(fmt::format("masked_mse_loss: input is {} but target is {}",
                                            input.defined() ? fmt::format("{}", input.shape()) : "undefined",
                                            target.defined() ? fmt::format("{}", target.shape()) : "undefined"));
  return masked_mean(pow(sub(input, target), 2.0), lengths, batch_first);
}

Tensor masked_cross_entropy(const Tensor& logits, std::span<const int64_t> targets, std::span<const int64_t> lengths,
                            bool batch_first) {
  const char* fn = "masked_cross_entropy";
  auto [B, T] = batch_and_steps(fn, logits, lengths, batch_first);
  if (logits.rank() != 3)
    throw std::invalid_argument(fmt::format("{}: logits must have 3 dimensions {}, got {}", fn,
                                            batch_first ? "(batch, seq, classes)" : "(seq, batch, classes)",
                                            logits.shape()));
  int64_t C = logits.size(2);
  if (int64_t(targets.size()) != B * T)
    throw std::invalid_argument(
        fmt::format("{}: {} targets for logits {}; expected {}", fn, targets.size(), logits.shape(), B * T));
  // One-hot targets (zero rows at padded steps) pick -log p[target]; masked_mean then averages.
  std::vector<double> onehot(size_t(B * T * C), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      if (lengths[b] < 0 || lengths[b] > T)
        throw std::invalid_argument(fmt::format("{}: lengths[{}] = {} is out of range [0, {}]", fn, b, lengths[b], T));
      if (t >= lengths[b]) continue;
      int64_t row = batch_first ? b * T + t : t * B + b;
      if (targets[row] < 0 || targets[row] >= C)
        throw std::invalid_argument(
            fmt::format("{}: target {} at position {} is out of range [0, {})", fn, targets[row], row, C));
      onehot[size_t(row * C + targets[row])] = 1.0;
    }
  Tensor picked = sum(mul(log_softmax(logits, 2), from_vector(onehot, logits.shape(), logits.dtype())), 2);  // (B, T)
  return masked_mean(neg(picked), lengths, batch_first);
}

}  // namespace seqgrad
