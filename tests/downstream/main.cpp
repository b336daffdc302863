// A program outside seqgrad, built against it the ways users do (scripts/check-install.sh): it
// trains a small LSTM a few steps, saves and reloads it, and exits non-zero unless the loss fell
// and the reloaded model computes the same output.
#include <filesystem>

#include <seqgrad/seqgrad.h>

using namespace seqgrad;

static_assert(SEQGRAD_VERSION_MAJOR == 0 && SEQGRAD_VERSION_MINOR >= 2, "built against seqgrad 0.2 or later");

struct Delay : Module {  // y_t = x_{t-1}: needs the recurrent state
  std::shared_ptr<LSTM> lstm = register_module("lstm", std::make_shared<LSTM>(LSTMOptions{.input_size = 1, .hidden_size = 16}));
  std::shared_ptr<Linear> head = register_module("head", std::make_shared<Linear>(LinearOptions{.in_features = 16, .out_features = 1}));
  Tensor forward(const Tensor& x) { return head->forward(lstm->forward(x).output); }
};

int main() {
  Generator gen(1);
  Tensor x = normal({16, 12, 1}, 0, 1, gen);
  Tensor y = concat(std::vector{zeros({16, 1, 1}), x.slice(1, 0, 11)}, 1);
  Delay model;
  optim::Adam opt(model.parameters(), {.lr = 0.02});
  double first = 0, last = 0;
  for (int step = 0; step < 40; ++step) {
    Tensor loss = mse_loss(model.forward(x), y);
    loss.backward();
    opt.step();
    opt.zero_grad();
    (step == 0 ? first : last) = loss.item();
  }
  const auto path = std::filesystem::temp_directory_path() / "seqgrad_downstream.safetensors";
  io::save(model, path);
  Delay reloaded;
  io::load(reloaded, path);
  std::filesystem::remove(path);
  NoGradGuard no_grad;
  bool same = allclose(reloaded.forward(x), model.forward(x), 0, 0);
  fmt::print("seqgrad {}: loss {:.4f} -> {:.4f}, reloaded model {}\n", SEQGRAD_VERSION_STRING, first, last,
             same ? "matches" : "DIFFERS");
  return last < 0.5 * first && same ? 0 : 1;
}
