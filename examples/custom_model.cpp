#include "autograd/seqgrad.h"
#include "layers/layers.h"
#include "optim/optim.h"
using namespace seqgrad;

// A custom sequence model: a GRU over the steps, then a Linear head on every step's hidden state.
struct Forecaster : Module {
  std::shared_ptr<GRU> gru = register_module("gru", std::make_shared<GRU>(GRUOptions{.input_size = 3, .hidden_size = 32}));
  std::shared_ptr<Linear> head = register_module("head", std::make_shared<Linear>(LinearOptions{.in_features = 32, .out_features = 1}));
  Tensor forward(const Tensor& x) { return head->forward(gru->forward(x).output); }  // (B, T, 3) -> (B, T, 1)
};

int main() {
  Generator gen(0);
  Tensor x = normal({64, 50, 3}, 0, 1, gen);                                         // (batch, steps, features)
  Tensor y = concat(std::vector{zeros({64, 1, 1}), x.slice(1, 0, 49).slice(2, 0, 1)}, 1);  // y_t = x_{t-1}[0]: needs memory
  Forecaster model;
  optim::Adam opt(model.parameters(), {.lr = 0.01});
  for (int step = 1; step <= 100; ++step) {
    Tensor loss = mse_loss(model.forward(x), y);
    loss.backward();  // backpropagation through the 50 unrolled steps on the tape
    opt.step();
    opt.zero_grad();
    if (step % 20 == 0) fmt::print("step {:3d}  loss {:.4f}\n", step, loss.item());
  }
}
