// The smallest end-to-end use of the engine: fit y = tanh(x W + b) to data made by a hidden
// "teacher" (W*, b*) with plain gradient descent, printing the loss as it falls.
#include <string_view>

#include <fmt/core.h>
#include <seqgrad/version.h>

#include "autograd/seqgrad.h"

using namespace seqgrad;

int main(int argc, char** argv) {
  if (argc == 2 && std::string_view(argv[1]) == "--version") {
    fmt::print("fit_tanh (seqgrad {})\n", SEQGRAD_VERSION_STRING);
    return 0;
  }
  if (argc > 1) {
    fmt::print(stderr, "usage: fit_tanh [--version]\n");
    return 2;
  }
  Generator gen(0);
  Tensor x = uniform({256, 5}, -1, 1, gen);
  Tensor w_true = uniform({5, 3}, -1, 1, gen), b_true = uniform({3}, -0.5, 0.5, gen);
  Tensor y = tanh(matmul(x, w_true) + b_true);

  Tensor w = zeros({5, 3}).requires_grad_(), b = zeros({3}).requires_grad_();
  const double lr = 0.5;
  for (int step = 0; step <= 200; ++step) {
    Tensor loss = mse_loss(tanh(matmul(x, w) + b), y);
    loss.backward();
    if (step % 20 == 0) fmt::print("step {:3d}  loss {:.6f}\n", step, loss.item());
    for (Tensor p : {w, b}) {  // p -= lr * grad, outside the tape
      NoGradGuard no_grad;
      p.copy_(p - p.grad() * lr);
      p.zero_grad();
    }
  }
}
