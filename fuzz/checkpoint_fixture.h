// What fuzz_checkpoint loads into, shared with tests/test_io_checkpoint.cpp, which writes the seed
// corpus (fuzz/corpus/checkpoint/) from it and checks that every seed loads: a small LSTM tagger
// with dropout (a model generator), Adam, StepLR, ReduceLROnPlateau and a shuffling DataLoader
// (mid-epoch state), everything TrainingState can restore.
#pragma once

#include <memory>
#include <string>

#include "io/checkpoint.h"
#include "layers/layers.h"
#include "optim/optim.h"

namespace seqgrad::fuzz {

struct CheckpointFixture {
  struct Model : Module {
    std::shared_ptr<LSTM> lstm = register_module(
        "lstm", std::make_shared<LSTM>(LSTMOptions{.input_size = 2, .hidden_size = 3, .num_layers = 2, .dropout = 0.5}));
    std::shared_ptr<Linear> head =
        register_module("head", std::make_shared<Linear>(LinearOptions{.in_features = 3, .out_features = 1}));
  };
  Model model;
  optim::Adam opt{model.parameters(), {.lr = 0.01}};
  optim::StepLR sched{opt, {.step_size = 2, .gamma = 0.5}};
  optim::ReduceLROnPlateau plateau{opt, {}};
  io::SequenceDataset data{{"a", "b"}, {"y"}};
  std::unique_ptr<io::DataLoader> loader;
  Generator extra{9};

  CheckpointFixture() {
    for (int i = 0; i < 7; ++i) data.add({std::to_string(i), full({2 + i % 3, 2}, 0.1 * i), full({2 + i % 3, 1}, 1.0)});
    loader = std::make_unique<io::DataLoader>(data, io::DataLoaderOptions{.batch_size = 2, .seed = 4});
  }
  io::TrainingState state() {
    return {.optimizer = &opt, .scheduler = &sched, .plateau = &plateau, .generators = {{"extra", &extra}},
            .loader = loader.get()};
  }
  // A few real steps, so that every state is non-trivial; stops after batch `batches` of epoch 2.
  io::TrainingState train(int64_t batches) {
    io::TrainingState st = state();
    for (const io::Batch& b : loader->epoch()) {
      opt.zero_grad();
      sum(model.head->forward(model.lstm->forward(b.x, {}, b.lengths).output)).backward();
      opt.step();
    }
    sched.step();
    plateau.step(0.5);
    st.epoch = 1;
    for (const io::Batch& b : loader->epoch()) {
      opt.zero_grad();
      sum(model.head->forward(model.lstm->forward(b.x, {}, b.lengths).output)).backward();
      opt.step();
      if ((st.step = loader->state().position) == batches) break;
    }
    return st;
  }
};

}  // namespace seqgrad::fuzz
