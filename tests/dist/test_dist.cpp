// The distributed tests, run by CTest under mpiexec -n 2 and -n 3 (tests/dist/CMakeLists.txt).
// Every rank runs every test case; collectives keep them in step.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <mpi.h>

#include <filesystem>
#include <set>
#include <unistd.h>

#include "io/checkpoint.h"
#include "io/dataloader.h"
#include "tests/dist/common.h"

using namespace seqgrad;
using namespace seqgrad::dist_test;

namespace {
// Every rank's copy of t's bytes equals rank 0's.
bool same_on_all_ranks(const Tensor& t) {
  size_t bytes = size_t(t.numel()) * dtype_size(t.dtype());
  std::vector<char> root(static_cast<const char*>(t.raw()), static_cast<const char*>(t.raw()) + bytes);
  MPI_Bcast(root.data(), int(bytes), MPI_CHAR, 0, MPI_COMM_WORLD);
  int same = std::memcmp(root.data(), t.raw(), bytes) == 0, all = 0;
  MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return all == 1;
}

std::vector<int64_t> gather(std::vector<int64_t> mine) {
  std::vector<int64_t> all(mine.size() * size_t(dist::world_size()));
  MPI_Allgather(mine.data(), int(mine.size()), MPI_INT64_T, all.data(), int(mine.size()), MPI_INT64_T, MPI_COMM_WORLD);
  return all;
}
}  // namespace

TEST_CASE("Environment: ranks and the world as mpirun started them", "[dist]") {
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  REQUIRE(size != nullptr);
  CHECK(dist::world_size() == std::atoi(size));
  CHECK(dist::rank() == std::atoi(std::getenv("OMPI_COMM_WORLD_RANK")));
  int N = dist::world_size();
  CHECK(dist::allreduce_mean(dist::rank()) == double(N * (N - 1) / 2) / N);
}

TEST_CASE("broadcast_parameters: every rank gets root's values", "[dist]") {
  for (int root : {0, dist::world_size() - 1}) {
    Net net(DType::f32, uint64_t(10 + dist::rank()));  // different values on every rank
    Net expected(DType::f32, uint64_t(10 + root));
    dist::broadcast_parameters(net, root);
    auto got = net.named_parameters(), want = expected.named_parameters();
    for (size_t i = 0; i < got.size(); ++i) {
      INFO(got[i].first);
      CHECK(same_bits(got[i].second, want[i].second));
    }
  }
}

TEST_CASE("broadcast_parameters: differing models fail on every rank naming the first mismatch", "[dist]") {
  const int last = dist::world_size() - 1;
  {
    Net net(DType::f32, 1, dist::rank() == last ? 9 : 8);
    REQUIRE_THROWS_WITH(dist::broadcast_parameters(net),
                        Catch::Contains(fmt::format("rank {}", last)) && Catch::Contains("lstm.weight_ih_l0 float32 (36, 3)") &&
                            Catch::Contains("lstm.weight_ih_l0 float32 (32, 3)"));
  }
  {
    Net net(DType::f32, 1);
    if (dist::rank() == last) net.to(DType::f64);
    REQUIRE_THROWS_WITH(dist::broadcast_parameters(net), Catch::Contains("float64"));
  }
  {
    struct Bigger : Net {
      Bigger() : Net(DType::f32) { extra = register_module("extra", std::make_shared<Linear>(LinearOptions{.in_features = 2, .out_features = 2})); }
      std::shared_ptr<Linear> extra;
    };
    std::unique_ptr<Net> net = dist::rank() == last ? std::make_unique<Bigger>() : std::make_unique<Net>(DType::f32);
    REQUIRE_THROWS_WITH(dist::broadcast_parameters(*net), Catch::Contains("extra.weight") && Catch::Contains("(none)"));
  }
  Net ok(DType::f32);
  REQUIRE_NOTHROW(dist::broadcast_parameters(ok));  // the ranks are still in step
}

TEST_CASE("allreduce_gradients: N ranks equal one process adding N micro-batches, bit for bit", "[dist]") {
  const int N = dist::world_size();
  for (DType dtype : {DType::f32, DType::f64})
    for (size_t bucket : {size_t(16) << 20, size_t(512)}) {  // one bucket; many (and parameters larger than one)
      INFO(dtype_name(dtype) << " bucket " << bucket);
      Net parallel(dtype), reference(dtype);
      train_parallel(parallel, 4, 3, dtype, bucket);
      train_reference(reference, N, 4, 3, dtype);
      auto p = parallel.named_parameters(), r = reference.named_parameters();
      for (size_t i = 0; i < p.size(); ++i) {
        INFO(p[i].first);
        CHECK(same_bits(p[i].second, r[i].second));
        CHECK(same_on_all_ranks(p[i].second));
      }
    }
}

TEST_CASE("allreduce_gradients: the first step's gradient matches the full batch within 1e-6", "[dist]") {
  Net parallel(DType::f32, uint64_t(1 + dist::rank())), full(DType::f32);
  dist::DataParallel dp(parallel);  // broadcasts rank 0's values (seed 1) to every rank
  auto [x, y] = micro_batch(0, dist::rank(), 4, dist::world_size(), DType::f32);
  mse_loss(parallel.forward(x), y).backward();
  dp.sync_gradients();
  auto [X, Y] = micro_batch(0, -1, 4, dist::world_size(), DType::f32);
  mse_loss(full.forward(X), Y).backward();
  double largest = 0, worst = 0;
  auto p = parallel.parameters(), f = full.parameters();
  for (size_t i = 0; i < p.size(); ++i) {
    auto a = p[i].grad().to_vector(), b = f[i].grad().to_vector();
    for (size_t j = 0; j < a.size(); ++j) largest = std::max(largest, std::abs(b[j])), worst = std::max(worst, std::abs(a[j] - b[j]));
  }
  CHECK(worst <= 1e-6 * largest);
}

TEST_CASE("allreduce_gradients: a parameter without a gradient on some ranks counts as zero there", "[dist]") {
  const int N = dist::world_size();
  Net net(DType::f64);
  auto params = net.parameters();
  Tensor unused = zeros({3}, DType::f64).requires_grad_();  // no gradient anywhere: stays without one
  params.push_back(unused);
  auto [x, y] = micro_batch(0, dist::rank(), 2, N, DType::f64);
  // Rank 0 skips the head's bias entirely (no gradient); the others use it.
  Tensor out = dist::rank() == 0 ? matmul(net.lstm->forward(x).output.reshape({-1, 8}), net.head->parameter("weight").t()).reshape({2, 6, 2})
                                  : net.forward(x);
  mse_loss(out, y).backward();
  REQUIRE(net.head->parameter("bias").grad().defined() == (dist::rank() != 0));
  Tensor mine = dist::rank() == 0 ? zeros({2}, DType::f64) : net.head->parameter("bias").grad().clone();
  dist::allreduce_gradients(params);
  CHECK_FALSE(unused.grad().defined());
  Tensor bias_grad = net.head->parameter("bias").grad();
  REQUIRE(bias_grad.defined());
  CHECK(same_on_all_ranks(bias_grad));
  // The mean of the ranks' own gradients, with zeros on rank 0.
  std::vector<double> sum(2, 0.0);
  for (int r = 0; r < N; ++r) {
    std::vector<double> theirs = mine.to_vector();
    MPI_Bcast(theirs.data(), 2, MPI_DOUBLE, r, MPI_COMM_WORLD);
    for (size_t j = 0; j < 2; ++j) sum[j] = r == 0 ? theirs[j] : sum[j] + theirs[j];
  }
  for (size_t j = 0; j < 2; ++j) CHECK(bias_grad.to_vector()[j] == sum[j] / N);
}

TEST_CASE("DataLoader shards: equal lengths, disjoint, covering, reshuffled per epoch", "[dist]") {
  const int N = dist::world_size();
  io::SequenceDataset data({"x"}, {"y"});
  const int64_t n = 10;  // not a multiple of 3
  for (int64_t i = 0; i < n; ++i) data.add({fmt::format("s{}", i), full({1, 1}, double(i)), zeros({1, 1})});
  for (bool drop_last : {false, true}) {
    io::DataLoader loader(data, {.batch_size = 2, .drop_last = drop_last, .seed = 5, .num_shards = N, .shard = dist::rank()});
    std::vector<int64_t> previous;
    for (int epoch = 0; epoch < 2; ++epoch) {
      loader.start_epoch();
      std::vector<int64_t> mine(loader.order().begin(), loader.order().end());
      const size_t per = drop_last ? size_t(n / N) : size_t((n + N - 1) / N);
      REQUIRE(mine.size() == per);
      std::vector<int64_t> all = gather(mine);
      std::set<int64_t> distinct(all.begin(), all.end());
      CHECK(distinct.size() == (drop_last ? per * size_t(N) : size_t(n)));  // disjoint, or covering with wrap-around
      CHECK(all != previous);
      previous = all;
    }
  }
}

TEST_CASE("broadcast_optimizer_state: ranks continue like root after only root stepped", "[dist]") {
  Net net(DType::f32);
  optim::Adam opt(net.parameters(), {.lr = 0.01});
  if (dist::rank() == 0) {  // one step on rank 0 only: its moments and step counts differ
    auto [x, y] = micro_batch(0, 0, 2, 1, DType::f32);
    mse_loss(net.forward(x), y).backward();
    opt.step();
    opt.zero_grad();
  }
  dist::broadcast_parameters(net);
  dist::broadcast_optimizer_state(opt);
  for (auto& [name, t] : opt.state()) {
    INFO(name);
    CHECK(same_on_all_ranks(t));
  }
  train_parallel(net, 2, 2, DType::f32);
  for (const Tensor& p : net.parameters()) CHECK(same_on_all_ranks(p));

  // A rank whose optimizer cannot take root's state: every rank throws, naming it.
  Net other(DType::f32, 1, dist::rank() == 1 ? 4 : 8);
  optim::Adam bad(other.parameters(), {.lr = 0.01});
  auto [x, y] = micro_batch(0, 0, 2, 1, DType::f32);
  mse_loss(other.forward(x), y).backward();
  bad.step();
  REQUIRE_THROWS_WITH(dist::broadcast_optimizer_state(bad), Catch::Contains("rank 1"));
}

TEST_CASE("Checkpoint resume under mpirun is bit-identical (only rank 0 reads the file)", "[dist]") {
  const int N = dist::world_size();
  io::SequenceDataset data({"a", "b", "c"}, {"y0", "y1"});
  Generator g(3);
  for (int i = 0; i < 13; ++i) data.add({fmt::format("s{}", i), normal({6, 3}, 0, 1, g), normal({6, 2}, 0, 1, g)});
  int64_t pid = getpid();
  MPI_Bcast(&pid, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
  const auto path = std::filesystem::temp_directory_path() / fmt::format("seqgrad_dist_resume_{}.safetensors", pid);

  // Trains epochs [from, to); returns the parameters. Saves after `save_after` on rank 0.
  auto run = [&](Net& net, optim::Adam& opt, io::DataLoader& loader, int from, int to, int save_after) {
    io::TrainingState st{.optimizer = &opt, .generators = {{"loader", &loader.generator()}}};
    for (int e = from; e < to; ++e) {
      for (const io::Batch& b : loader.epoch()) {
        mse_loss(net.forward(b.x), b.y).backward();
        dist::allreduce_gradients(net.parameters());
        opt.step();
        opt.zero_grad();
      }
      st.epoch = e + 1;
      if (e + 1 == save_after && dist::rank() == 0) io::save_checkpoint(path, net, st);
    }
  };
  io::DataLoaderOptions lo{.batch_size = 2, .seed = 9, .num_shards = N, .shard = dist::rank()};
  Net straight(DType::f32);
  optim::Adam opt1(straight.parameters(), {.lr = 0.01});
  io::DataLoader loader1(data, lo);
  run(straight, opt1, loader1, 0, 3, 1);
  dist::barrier();

  Net resumed(DType::f32, uint64_t(50 + dist::rank()));  // fresh, different values everywhere
  optim::Adam opt2(resumed.parameters(), {.lr = 0.01});
  io::DataLoader loader2(data, lo);
  io::TrainingState st{.optimizer = &opt2, .generators = {{"loader", &loader2.generator()}}};
  if (dist::rank() == 0) io::load_checkpoint(path, resumed, st);
  dist::broadcast_training_state(resumed, st);
  CHECK(st.epoch == 1);
  run(resumed, opt2, loader2, int(st.epoch), 3, 0);
  auto a = straight.parameters(), b = resumed.parameters();
  for (size_t i = 0; i < a.size(); ++i) CHECK(same_bits(a[i], b[i]));
  dist::barrier();
  if (dist::rank() == 0) std::filesystem::remove(path);
}

int main(int argc, char** argv) {
  dist::Environment env(argc, argv);
  return Catch::Session().run(argc, argv);
}
