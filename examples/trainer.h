// The example trainer's engine, shared by examples/seed_trace and its tests: the tutorial's
// delayed-memory task, the model (a recurrent layer "rnn" + a per-step Linear "head") and the
// Keras-style training loop. Printing and command-line parsing live in seed_trace.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "examples/report.h"
#include "io/csv_dataset.h"
#include "layers/layers.h"

namespace seqgrad::examples {

struct TrainConfig {
  int epochs = 5;
  uint64_t seed = 144;  // chosen because its trace is the closest to the tutorial's (README)
  int64_t hidden = 8;
  std::string cell = "rnn";       // rnn | lstm | gru
  std::string optimizer = "adam"; // adam | sgd
  double lr = 0.13;
  int64_t batch_size = 25;
  bool shuffle = true;
  bool no_recurrence = false;     // ablation: weight_hh zeroed and frozen
  std::string init;               // safetensors to start from, by name
  bool detect_anomaly = false;    // every op checks its output and gradients (autograd/debug.h)
};

// Throws AnomalyError when a batch's loss is NaN or infinite: the trainers stop there instead of
// training on NaNs, saying where and how to find the op that produced it.
void check_loss(const Tensor& loss, int64_t epoch, int64_t batch);

// The tutorial's task from a seed: for each sequence u_0..u_{T+d-1} ~ U[-1, 1);
// x[t] = (u_{t+d}, four distractors ~ U[-1, 1)), y[t] = [u_t > 0].
io::SequenceDataset make_task(uint64_t seed, int64_t sequences = 100, int64_t steps = 10, int64_t delay = 2);

// Parameters rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0, head.weight, head.bias.
class Tagger : public Module {
 public:
  Tagger(const std::string& cell, int64_t input, int64_t hidden, int64_t labels, uint64_t seed);
  // x (B, T, I) -> logits (B, T, labels)
  Tensor forward(const Tensor& x, std::span<const int64_t> lengths = {});

 private:
  std::variant<std::shared_ptr<RNN>, std::shared_ptr<LSTM>, std::shared_ptr<GRU>> rnn_;
  std::shared_ptr<Linear> head_;
};

// Fraction of real steps (t < lengths[b]) whose prediction, logit > 0, matches the 0/1 label.
double masked_accuracy(const Tensor& logits, const Tensor& y, std::span<const int64_t> lengths);

// Called after every batch with (epoch, batch, batches, running loss, running accuracy).
using BatchCallback = std::function<void(int, int, int, double, double)>;

// Trains `model` on `data` as configured and returns one EpochMetrics per epoch: the mean over
// the epoch's batches of each batch's loss (BCE-with-logits over real steps) and accuracy, both
// from the batch's forward pass before its update.
std::vector<EpochMetrics> train(Tagger& model, const io::SequenceDataset& data, const TrainConfig& config,
                                const BatchCallback& on_batch = {}, const std::function<void(const EpochMetrics&)>& on_epoch = {});

}  // namespace seqgrad::examples
