#include "examples/trainer.h"

#include <chrono>
#include <cmath>
#include <memory>
#include <optional>

#include "autograd/seqgrad.h"
#include "examples/parallel.h"
#include "io/checkpoint.h"
#include "io/dataloader.h"
#include "optim/optim.h"

namespace seqgrad::examples {

io::SequenceDataset make_task(uint64_t seed, int64_t sequences, int64_t steps, int64_t delay) {
  io::SequenceDataset data({"signal", "noise1", "noise2", "noise3", "noise4"}, {"y"});
  Generator gen(seed);
  for (int64_t s = 0; s < sequences; ++s) {
    std::vector<double> u(size_t(steps + delay));
    for (double& v : u) v = gen.uniform(-1, 1);
    Tensor x = Tensor::empty({steps, 5}), y = Tensor::empty({steps, 1});
    for (int64_t t = 0; t < steps; ++t) {
      float* row = x.data<float>() + t * 5;
      row[0] = float(u[size_t(t + delay)]);
      for (int f = 1; f < 5; ++f) row[f] = float(gen.uniform(-1, 1));
      y.data<float>()[t] = u[size_t(t)] > 0 ? 1.f : 0.f;
    }
    data.add({fmt::format("seq{}", s), x, y});
  }
  return data;
}

Tagger::Tagger(const std::string& cell, int64_t input, int64_t hidden, int64_t labels, uint64_t seed) {
  if (cell == "lstm")
    rnn_ = register_module("rnn", std::make_shared<LSTM>(LSTMOptions{.input_size = input, .hidden_size = hidden, .seed = seed}));
  else if (cell == "gru")
    rnn_ = register_module("rnn", std::make_shared<GRU>(GRUOptions{.input_size = input, .hidden_size = hidden, .seed = seed}));
  else if (cell == "rnn")
    rnn_ = register_module("rnn", std::make_shared<RNN>(RNNOptions{.input_size = input, .hidden_size = hidden, .seed = seed}));
  else
    throw std::invalid_argument(fmt::format("Tagger: unknown cell '{}' (rnn, lstm or gru)", cell));
  head_ = register_module(
      "head", std::make_shared<Linear>(LinearOptions{.in_features = hidden, .out_features = labels, .seed = seed + 1}));
}

Tensor Tagger::forward(const Tensor& x, std::span<const int64_t> lengths) {
  Tensor out = std::visit([&](auto& layer) { return layer->forward(x, {}, lengths).output; }, rnn_);
  return head_->forward(out);
}

double masked_accuracy(const Tensor& logits, const Tensor& y, std::span<const int64_t> lengths) {
  int64_t T = logits.size(1), L = logits.size(2), hit = 0, total = 0;
  const float *z = logits.data<float>(), *t = y.data<float>();
  for (size_t b = 0; b < lengths.size(); ++b)
    for (int64_t s = 0; s < lengths[b]; ++s)
      for (int64_t l = 0; l < L; ++l, ++total) {
        int64_t i = (int64_t(b) * T + s) * L + l;
        hit += (z[i] > 0) == (t[i] > 0.5f);
      }
  return total ? double(hit) / double(total) : 0.0;
}

void check_loss(const Tensor& loss, int64_t epoch, int64_t batch) {
  const double v = loss.item();
  if (!std::isfinite(v))
    throw AnomalyError(fmt::format(
        "the loss is {} at epoch {}, batch {}: training stopped (--detect-anomaly names the op that produced it)", v,
        epoch, batch));
}

std::vector<EpochMetrics> train(Tagger& model, const io::SequenceDataset& data, const TrainConfig& c,
                                const BatchCallback& on_batch, const std::function<void(const EpochMetrics&)>& on_epoch) {
  if (!c.init.empty()) io::load(model, c.init);
  std::vector<Tensor> params;
  for (auto& [name, p] : model.named_parameters()) {
    if (c.no_recurrence && name.starts_with("rnn.weight_hh")) {
      p.fill_(0);  // no memory: h_t depends on x_t alone
      p.requires_grad_(false);
      continue;
    }
    params.push_back(p);
  }
  std::unique_ptr<optim::Optimizer> opt;
  if (c.optimizer == "sgd")
    opt = std::make_unique<optim::SGD>(params, optim::SGDOptions{.lr = c.lr});
  else if (c.optimizer == "adam")
    opt = std::make_unique<optim::Adam>(params, optim::AdamOptions{.lr = c.lr});
  else
    throw std::invalid_argument(fmt::format("train: unknown optimizer '{}' (sgd or adam)", c.optimizer));
  // Under mpirun each rank trains on its shard with the gradients averaged over the ranks: one
  // step of the global batch (batch_size per rank). Alone this is the plain loop.
  dist::broadcast_parameters(model);
  io::DataLoader loader(data, {.batch_size = c.batch_size, .shuffle = c.shuffle, .seed = c.seed + 3,
                               .num_shards = dist::world_size(), .shard = dist::rank()});

  std::optional<DetectAnomaly> anomaly;
  if (c.detect_anomaly) anomaly.emplace();
  std::vector<EpochMetrics> history;
  for (int epoch = 1; epoch <= c.epochs; ++epoch) {
    auto start = std::chrono::steady_clock::now();
    double loss_sum = 0, acc_sum = 0;
    int batches = 0;
    for (const io::Batch& b : loader.epoch()) {
      Tensor logits = model.forward(b.x, b.lengths);
      Tensor loss;
      {
        Scope scope("loss");
        loss = masked_mean(bce_with_logits_elementwise(logits, b.y), b.lengths);
      }
      check_loss(loss, epoch, batches + 1);  // before the collective: a non-finite loss ends the whole job
      loss_sum += dist::allreduce_mean(loss.item());
      acc_sum += dist::allreduce_mean(masked_accuracy(logits, b.y, b.lengths));
      ++batches;
      loss.backward();
      dist::allreduce_gradients(params);
      opt->step();
      opt->zero_grad();
      if (on_batch) on_batch(epoch, batches, int(loader.size()), loss_sum / batches, acc_sum / batches);
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    history.push_back({epoch, loss_sum / batches, acc_sum / batches, seconds});
    if (on_epoch) on_epoch(history.back());
  }
  return history;
}

}  // namespace seqgrad::examples
