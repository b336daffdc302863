// char_lstm: a character-level LSTM language model, the template to copy for a custom sequence
// model. It reads a small text (three of Shakespeare's sonnets by default), learns to predict
// each next character, prints the loss falling and samples new text, and saves a checkpoint.
//
// The pieces: a custom Module (Embedding -> LSTM -> Linear), the CSV-free SequenceDataset +
// DataLoader (seeded shuffling), cross-entropy, Adam, clip_grad_norm, a cosine LR schedule and a
// crash-safe training checkpoint (model + optimizer + schedule + RNG) that --resume continues.
// Under mpirun each rank trains on its shard of the windows with gradients averaged over the
// ranks; rank 0 alone prints, writes the checkpoint and reads it back on --resume.
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <seqgrad/version.h>

#include "autograd/seqgrad.h"
#include "examples/parallel.h"
#include "examples/trainer.h"
#include "io/checkpoint.h"
#include "io/dataloader.h"
#include "layers/layers.h"
#include "optim/optim.h"
#include "layers/quantize.h"

using namespace seqgrad;

// ids (B*T) -> next-character logits (B, T, V); state carried for sampling.
class CharModel : public Module {
 public:
  CharModel(int64_t vocab, int64_t hidden, uint64_t seed) {
    emb_ = register_module("emb", std::make_shared<Embedding>(EmbeddingOptions{.num_embeddings = vocab, .embedding_dim = 32, .seed = seed}));
    lstm_ = register_module("lstm", std::make_shared<LSTM>(LSTMOptions{.input_size = 32, .hidden_size = hidden, .seed = seed + 1}));
    head_ = register_module("head", std::make_shared<Linear>(LinearOptions{.in_features = hidden, .out_features = vocab, .seed = seed + 2}));
  }
  Tensor forward(std::span<const int64_t> ids, int64_t batch, int64_t steps, LSTMState& state) {
    LSTMOutput out = lstm_->forward(emb_->forward(ids, {batch, steps}), state);
    state = out.state();
    return head_->forward(out.output);
  }
  // Streaming: one character -> next-character logits (V), the LSTM state carried in s.
  StreamState initial_state() const { return lstm_->initial_state(1); }
  Tensor step(int64_t id, StreamState& s) { return head_->forward(lstm_->step(emb_->forward({&id, 1}, {1}), s)).reshape({-1}); }

 private:
  std::shared_ptr<Embedding> emb_;
  std::shared_ptr<LSTM> lstm_;
  std::shared_ptr<Linear> head_;
};

// Continues `prompt` by drawing each next character from softmax(logits / temperature).
std::string sample(CharModel& model, const std::string& vocab, const std::string& prompt, int n, Generator& gen) {
  NoGradGuard no_grad;
  StreamState state = model.initial_state();  // one step at a time, as a deployed model runs
  std::string text = prompt;
  Tensor logits;
  for (char ch : prompt) logits = model.step(int64_t(vocab.find(ch)), state);
  for (int i = 0; i < n; ++i) {
    Tensor p = softmax(logits * (1 / 0.7), 0);
    double r = gen.uniform(), acc = 0;
    int64_t next = 0;
    for (auto v = p.to_vector(); next + 1 < int64_t(v.size()) && (acc += v[size_t(next)]) < r;) ++next;
    text += vocab[size_t(next)];
    logits = model.step(next, state);
  }
  return text;
}

// Mean next-character cross-entropy over every window of the text, as one batch without the tape.
double text_loss(CharModel& model, const std::string& text, const std::string& vocab, int64_t steps) {
  NoGradGuard no_grad;
  std::vector<int64_t> ids, next;
  for (size_t start = 0; start + size_t(steps) < text.size(); start += size_t(steps))
    for (size_t t = start; t < start + size_t(steps); ++t) {
      ids.push_back(int64_t(vocab.find(text[t])));
      next.push_back(int64_t(vocab.find(text[t + 1])));
    }
  LSTMState fresh;
  Tensor logits = model.forward(ids, int64_t(ids.size()) / steps, steps, fresh);
  return cross_entropy(logits.reshape({-1, int64_t(vocab.size())}), next).item();
}

int main(int argc, char** argv) {
  dist::Environment env(argc, argv);
  const bool lead = env.rank() == 0;
  std::string path = SEQGRAD_SOURCE_DIR "/examples/data/sonnets.txt", checkpoint = "char_lstm.safetensors";
  int epochs = 40;
  int64_t hidden = 128, steps = 32, batch = 16;
  bool resume = false, detect_anomaly = false, quantize = false;
  std::string profile;
  CLI::App app{"Trains a character-level LSTM language model on a text and samples from it."};
  app.set_version_flag("--version", "char_lstm (seqgrad " SEQGRAD_VERSION_STRING ")");
  app.add_option("--text", path, "Training text")->check(CLI::ExistingFile)->capture_default_str();
  app.add_option("--epochs", epochs, "Epochs (total, counting resumed ones)")->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--hidden", hidden, "LSTM hidden units")->check(CLI::Range(1, 4096))->capture_default_str();
  app.add_option("--checkpoint", checkpoint, "Training checkpoint written after every epoch")->capture_default_str();
  app.add_flag("--resume", resume, "Continue from --checkpoint");
  app.add_flag("--detect-anomaly", detect_anomaly, "Check every op's output and gradients for NaN/Inf; stop at the first");
  app.add_option("--profile", profile, "Print per-op times and write a Chrome trace (Perfetto) to FILE");
  app.add_flag("--quantize", quantize, "After training, convert to int8 weights (quantize_dynamic), report the float and int8 loss on the text and sample from the int8 model");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return e.get_exit_code() == 0 ? app.exit(e) : (fmt::print(stderr, "char_lstm: {}\n", e.what()), env.fail(2));
  }
  try {
    std::stringstream ss;
    ss << std::ifstream(path).rdbuf();
    std::string text = ss.str(), vocab = text;
    std::sort(vocab.begin(), vocab.end());
    vocab.erase(std::unique(vocab.begin(), vocab.end()), vocab.end());
    if (int64_t(text.size()) < steps + 1) throw std::invalid_argument(path + ": too short to train on");

    // Windows of `steps` characters; the label of each is the character that follows it.
    io::SequenceDataset data({"char"}, {"next"});
    for (size_t start = 0; start + size_t(steps) < text.size(); start += size_t(steps)) {
      Tensor x = Tensor::empty({steps, 1}), y = Tensor::empty({steps, 1});
      for (int64_t t = 0; t < steps; ++t) {
        x.data<float>()[t] = float(vocab.find(text[start + size_t(t)]));
        y.data<float>()[t] = float(vocab.find(text[start + size_t(t) + 1]));
      }
      data.add({fmt::format("w{}", start), x, y});
    }
    io::DataLoader loader(data, {.batch_size = batch, .seed = 1, .num_shards = env.world_size(), .shard = env.rank()});
    CharModel model(int64_t(vocab.size()), hidden, 7);
    dist::broadcast_parameters(model);
    optim::Adam opt(model.parameters(), {.lr = 0.01});
    optim::CosineAnnealingLR schedule(opt, {.T_max = epochs, .eta_min = 1e-3});
    Generator sampler(3);
    io::TrainingState ts{.optimizer = &opt, .scheduler = &schedule, .generators = {{"loader", &loader.generator()}, {"sampler", &sampler}}};
    if (resume) {
      if (lead) io::load_checkpoint(checkpoint, model, ts);
      dist::broadcast_training_state(model, ts);
    }
    if (lead)
      fmt::print("{} characters, vocabulary {}, {} windows of {}, LSTM({}), {} parameters\n", text.size(),
                 vocab.size(), data.size(), steps, hidden, model.num_parameters());

    std::optional<DetectAnomaly> anomaly;
    if (detect_anomaly) anomaly.emplace();
    std::optional<Profiler> prof;
    if (!profile.empty()) prof.emplace();
    for (int64_t epoch = ts.epoch + 1; epoch <= epochs; ++epoch) {
      double total = 0;
      int64_t batch_no = 0;
      for (const io::Batch& b : loader.epoch()) {
        std::vector<int64_t> ids, next;
        for (float v : b.x.span<float>()) ids.push_back(int64_t(v));
        for (float v : b.y.span<float>()) next.push_back(int64_t(v));
        LSTMState fresh;
        Tensor logits = model.forward(ids, b.size(), steps, fresh);
        Tensor loss = cross_entropy(logits.reshape({-1, int64_t(vocab.size())}), next);
        examples::check_loss(loss, epoch, ++batch_no);
        loss.backward();
        dist::allreduce_gradients(model.parameters());
        optim::clip_grad_norm(model.parameters(), 1.0);
        opt.step();
        opt.zero_grad();
        total += dist::allreduce_mean(loss.item()) / double(loader.size());
      }
      schedule.step();
      ts.epoch = epoch;
      if (!lead) continue;
      io::save_checkpoint(checkpoint, model, ts);
      if (epoch % 10 == 0 || epoch == epochs)
        fmt::print("epoch {:3d}  loss {:.3f} (perplexity {:.1f})  lr {:.4f}\n", epoch, total, std::exp(total), opt.lr());
    }
    if (prof) {
      if (lead) {
        prof->save_chrome_trace(profile);
        fmt::print("\n{}Chrome trace: {}\n", prof->table(12), profile);
      }
      prof.reset();
    }
    if (quantize) {
      const double float_loss = text_loss(model, text, vocab, steps);
      quantize_dynamic(model);
      const double int8_loss = text_loss(model, text, vocab, steps);
      if (lead) fmt::print("loss on the text: float32 {:.4f}, int8 {:.4f}\n", float_loss, int8_loss);
    }
    if (lead) fmt::print("\nSample:\n{}\n", sample(model, vocab, "Shall I ", 200, sampler));
  } catch (const std::exception& e) {
    fmt::print(stderr, "char_lstm: {}\n", e.what());
    return env.fail(2);
  }
}
