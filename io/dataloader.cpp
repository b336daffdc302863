#include "io/dataloader.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <utility>

#include <fmt/format.h>

namespace seqgrad::io {

DataLoader::DataLoader(const SequenceDataset& data, DataLoaderOptions options)
    : data_(data), options_(options), gen_(options.seed) {
  if (options_.batch_size < 1)
    throw std::invalid_argument(fmt::format("DataLoader: batch_size must be >= 1, got {}", options_.batch_size));
  if (options_.num_shards < 1 || options_.shard < 0 || options_.shard >= options_.num_shards)
    throw std::invalid_argument(fmt::format("DataLoader: shard {} of num_shards {} (need 0 <= shard < num_shards)",
                                            options_.shard, options_.num_shards));
  order_.resize(data_.size());
  std::iota(order_.begin(), order_.end(), size_t(0));
  take_shard();
}

size_t DataLoader::size() const {
  size_t n = order_.size(), b = size_t(options_.batch_size);
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

void DataLoader::take_shard() {
  if (options_.num_shards == 1) return;
  const size_t n = order_.size(), shards = size_t(options_.num_shards);
  const size_t per_shard = options_.drop_last ? n / shards : (n + shards - 1) / shards;
  std::vector<size_t> mine;
  mine.reserve(per_shard);
  for (size_t i = 0; i < per_shard; ++i) mine.push_back(order_[(i * shards + size_t(options_.shard)) % n]);
  order_ = std::move(mine);
}

void DataLoader::start_epoch() {
  // The order always restarts from the identity, so an epoch's order depends only on the
  // generator's state when it starts (not on earlier epochs' orders).
  order_.resize(data_.size());
  std::iota(order_.begin(), order_.end(), size_t(0));
  epoch_rng_ = gen_.state();
  position_ = 0;
  if (options_.shuffle)
    for (size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[gen_.below(i)]);
  take_shard();
}

DataLoader::Range DataLoader::epoch() {
  start_epoch();
  const int64_t first = std::exchange(resume_at_, 0);
  position_ = first;
  return Range(this, size_t(first));
}

void DataLoader::set_state(const LoaderState& s) {
  if (s.position < 0 || s.position > int64_t(size()))
    throw std::invalid_argument(fmt::format("DataLoader: position {} is outside the {} batches of an epoch",
                                            s.position, size()));
  const bool mid_epoch = s.position > 0;
  gen_.set_state(mid_epoch ? s.epoch_rng : s.rng);
  resume_at_ = mid_epoch ? s.position : 0;
  epoch_rng_ = s.epoch_rng;
  position_ = s.position;
}

Batch DataLoader::batch(size_t i) const {
  if (i >= size()) throw std::out_of_range(fmt::format("DataLoader: batch {} of an epoch of {}", i, size()));
  size_t b = size_t(options_.batch_size);
  size_t begin = i * b, end = std::min(begin + b, order_.size());
  return collate(std::vector<size_t>(order_.begin() + begin, order_.begin() + end));
}

Batch DataLoader::collate(const std::vector<size_t>& indices) const {
  Batch out;
  out.indices = indices;
  int64_t t_max = 0;
  for (size_t k : indices) {
    int64_t len = data_[k].length();  // operator[] checks the index
    out.lengths.push_back(len);
    t_max = std::max(t_max, len);
  }
  const int64_t B = int64_t(indices.size()), F = data_.input_size(), L = data_.label_size();
  const DType dt = data_.dtype();
  const bool bf = options_.batch_first;
  out.x = full(bf ? Shape{B, t_max, F} : Shape{t_max, B, F}, options_.pad_value, dt);
  out.y = full(bf ? Shape{B, t_max, L} : Shape{t_max, B, L}, options_.pad_value, dt);
  const size_t es = dtype_size(dt);
  // Row (b, t) of x starts at element (b*T + t)*F batch-first, (t*B + b)*F otherwise.
  auto copy_rows = [&](const Tensor& dst, const Tensor& src, int64_t b, int64_t width) {
    if (width == 0) return;
    auto d = static_cast<char*>(dst.raw());
    auto s = static_cast<const char*>(src.raw());
    int64_t len = src.size(0);
    if (bf) {
      std::memcpy(d + size_t(b * t_max * width) * es, s, size_t(len * width) * es);
    } else {
      for (int64_t t = 0; t < len; ++t)
        std::memcpy(d + size_t((t * B + b) * width) * es, s + size_t(t * width) * es, size_t(width) * es);
    }
  };
  for (int64_t b = 0; b < B; ++b) {
    const Sequence& s = data_[indices[size_t(b)]];
    copy_rows(out.x, s.x, b, F);
    copy_rows(out.y, s.y, b, L);
  }
  return out;
}

}  // namespace seqgrad::io
