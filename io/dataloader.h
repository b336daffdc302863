// DataLoader: mini-batches of a SequenceDataset, padded to the batch's longest sequence, with the
// lengths vector the recurrent layers take and seeded shuffling per epoch.
//
//   DataLoader loader(data, {.batch_size = 32, .shuffle = true, .seed = 7});
//   for (int epoch = 0; epoch < 10; ++epoch)
//     for (const Batch& b : loader.epoch()) {         // draws this epoch's order, then yields batches
//       auto out = lstm.forward(b.x, {}, b.lengths);  // b.x (B, T, input_size), T = longest in batch
//       Tensor loss = masked_mse_loss(head.forward(out.output), b.y, b.lengths);
//       ...
//     }
//
// Shuffling draws a fresh permutation from the loader's Generator at the start of each epoch
// (Fisher-Yates with Generator::below), so the order of epoch k depends only on the seed and k.
// To resume a run bit-identically, from any batch, checkpoint state() (io/checkpoint.h does this
// when TrainingState::loader is set) and set_state() it on a fresh loader before the next
// epoch(): that epoch then draws the interrupted epoch's order again and starts at the first batch
// not yet handed out. Padded steps hold pad_value in x and y; the recurrent layers and the masked
// losses (layers/masking.h) ignore them given the lengths.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "io/csv_dataset.h"

namespace seqgrad::io {

struct Batch {
  Tensor x;                      // (B, T, input_size), or (T, B, input_size) if !batch_first
  Tensor y;                      // (B, T, label_size), or (T, B, label_size)
  std::vector<int64_t> lengths;  // B real lengths; T = max(lengths)
  std::vector<size_t> indices;   // which dataset sequences, in batch order
  int64_t size() const { return int64_t(lengths.size()); }
};

// Where a loader is: its generator now and at the start of the current epoch, and how many of that
// epoch's batches epoch()'s range has handed out.
struct LoaderState {
  std::array<uint64_t, 4> rng{}, epoch_rng{};
  int64_t position = 0;
};

struct DataLoaderOptions {
  int64_t batch_size = 32;  // >= 1
  bool shuffle = true;
  bool drop_last = false;   // drop a final batch smaller than batch_size
  bool batch_first = true;  // the recurrent layers' default
  uint64_t seed = 0;
  double pad_value = 0;
  // Data-parallel sharding, PyTorch's DistributedSampler rules: every shard draws the same
  // seeded order of the whole dataset, then takes positions shard, shard + num_shards, ... of it.
  // Shards have equal lengths: ceil(n / num_shards), the order wrapping around to pad the last
  // ones; with drop_last, floor(n / num_shards), the tail left out this epoch.
  int64_t num_shards = 1;  // e.g. dist::world_size()
  int64_t shard = 0;       // e.g. dist::rank(); in [0, num_shards)
};

class DataLoader {
 public:
  // Keeps a reference: the dataset must outlive the loader.
  DataLoader(const SequenceDataset& data, DataLoaderOptions options = {});

  // Batches per epoch (of this shard).
  size_t size() const;
  // Starts the next epoch: draws a new order if shuffling (advancing the generator).
  void start_epoch();
  // Batch i (< size()) of the current epoch's order.
  Batch batch(size_t i) const;
  // The sequences in `indices`, padded and stacked (any indices, any order).
  Batch collate(const std::vector<size_t>& indices) const;

  // start_epoch(), then the epoch's batches, built on demand: for (const Batch& b : loader.epoch()).
  class Range;
  Range epoch();

  LoaderState state() const { return {gen_.state(), epoch_rng_, position_}; }
  // Position p > 0: the next epoch() draws that state's epoch again and starts at batch p (an
  // interrupted epoch). Position 0: the next epoch() is a new one, drawn from rng (an epoch
  // boundary). Throws std::invalid_argument when the position is past this loader's size().
  void set_state(const LoaderState& s);

  // This epoch's sequences, in batch order (this shard's only).
  const std::vector<size_t>& order() const { return order_; }
  Generator& generator() { return gen_; }
  const DataLoaderOptions& options() const { return options_; }

 private:
  void take_shard();  // order_ (the whole dataset's) -> this shard's positions

  const SequenceDataset& data_;
  DataLoaderOptions options_;
  Generator gen_;
  std::vector<size_t> order_;
  std::array<uint64_t, 4> epoch_rng_{};
  int64_t position_ = 0, resume_at_ = 0;
};

class DataLoader::Range {
 public:
  class Iterator {
   public:
    Iterator(DataLoader* loader, size_t i) : loader_(loader), i_(i) {}
    // Handing batch i out moves the loader's position past it: a checkpoint taken while training
    // on it resumes with the next one.
    Batch operator*() const {
      loader_->position_ = int64_t(i_) + 1;
      return loader_->batch(i_);
    }
    Iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator==(const Iterator& o) const { return i_ == o.i_; }

   private:
    DataLoader* loader_;
    size_t i_;
  };
  Range(DataLoader* loader, size_t first) : loader_(loader), first_(first) {}
  Iterator begin() const { return {loader_, first_}; }
  Iterator end() const { return {loader_, loader_->size()}; }

 private:
  DataLoader* loader_;
  size_t first_;
};

}  // namespace seqgrad::io
