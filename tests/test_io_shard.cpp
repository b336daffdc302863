// DataLoader sharding for data-parallel training: PyTorch's DistributedSampler rules, checked
// here in one process for every shard (tests/dist/ checks it across real ranks).
#include <catch2/catch.hpp>

#include "io/dataloader.h"

using namespace seqgrad;
using namespace seqgrad::io;
using Catch::Matchers::Contains;

namespace {
SequenceDataset numbered(int64_t n) {
  SequenceDataset d({"x"}, {"y"});
  for (int64_t i = 0; i < n; ++i) d.add({fmt::format("s{}", i), full({1, 1}, double(i)), zeros({1, 1})});
  return d;
}
}  // namespace

TEST_CASE("DataLoader shards: positions shard, shard + num_shards, ... of one order, padded or dropped", "[io]") {
  SequenceDataset d = numbered(10);
  using V = std::vector<size_t>;
  // torch.utils.data.DistributedSampler(range(10), num_replicas=3, rank=r, shuffle=False)
  CHECK(DataLoader(d, {.shuffle = false, .num_shards = 3, .shard = 0}).order() == V{0, 3, 6, 9});
  CHECK(DataLoader(d, {.shuffle = false, .num_shards = 3, .shard = 1}).order() == V{1, 4, 7, 0});
  CHECK(DataLoader(d, {.shuffle = false, .num_shards = 3, .shard = 2}).order() == V{2, 5, 8, 1});
  // ... and with drop_last=True
  CHECK(DataLoader(d, {.shuffle = false, .drop_last = true, .num_shards = 3, .shard = 1}).order() == V{1, 4, 7});
  // More shards than sequences: the order wraps around as often as needed.
  CHECK(DataLoader(numbered(2), {.shuffle = false, .num_shards = 5, .shard = 4}).order() == V{0});
  CHECK(DataLoader(numbered(2), {.shuffle = false, .drop_last = true, .num_shards = 5, .shard = 4}).size() == 0);

  // Shuffled: every shard draws the whole dataset's seeded order (the unsharded loader's), per epoch.
  DataLoader whole(d, {.batch_size = 2, .seed = 3});
  std::vector<DataLoader> shards;
  for (int64_t s = 0; s < 3; ++s) shards.emplace_back(d, DataLoaderOptions{.batch_size = 2, .seed = 3, .num_shards = 3, .shard = s});
  for (int epoch = 0; epoch < 3; ++epoch) {
    whole.start_epoch();
    for (int64_t s = 0; s < 3; ++s) {
      shards[size_t(s)].start_epoch();
      const V& got = shards[size_t(s)].order();
      REQUIRE(got.size() == 4);
      CHECK(shards[size_t(s)].size() == 2);
      for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == whole.order()[(i * 3 + size_t(s)) % 10]);
    }
  }
  CHECK_THROWS_WITH(DataLoader(d, {.num_shards = 2, .shard = 2}), Contains("shard 2 of num_shards 2"));
  CHECK_THROWS_WITH(DataLoader(d, {.num_shards = 0}), Contains("num_shards 0"));
}
