// The output error of seqgrad's int8 model against its float model, on weights and an input that
// bench/quant_error.py writes from PyTorch (which measures PyTorch's quantize_dynamic the same way).
//
//   quant_error lstm|gru FILE.safetensors
//
// FILE holds the layer's parameters under PyTorch's names (weight_ih_l0, ...) and "input" (B, T, I).
// Prints one JSON line: max_abs, mean_abs (int8 output vs float output) and max_abs_float (the float
// output's own largest magnitude, for scale).
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/core.h>

#include "autograd/seqgrad.h"
#include "io/io.h"
#include "layers/layers.h"
#include "layers/quantize.h"

using namespace seqgrad;

int main(int argc, char** argv) try {
  if (argc != 3 || (std::string(argv[1]) != "lstm" && std::string(argv[1]) != "gru")) {
    std::fprintf(stderr, "usage: quant_error lstm|gru FILE.safetensors\n");
    return 2;
  }
  io::TensorFile file = io::load_safetensors(argv[2]);
  const Tensor x = file.at("input");
  io::NamedTensors weights;
  for (const auto& [name, t] : file.tensors)
    if (name != "input") weights.emplace_back(name, t);
  const int64_t hidden = file.at("weight_hh_l0").size(1), input = x.size(2);
  std::unique_ptr<Module> layer;
  if (std::string(argv[1]) == "lstm") layer = std::make_unique<LSTM>(LSTMOptions{.input_size = input, .hidden_size = hidden});
  else layer = std::make_unique<GRU>(GRUOptions{.input_size = input, .hidden_size = hidden});
  io::load(*layer, weights, {}, argv[2]);
  auto run = [&] {
    if (auto* l = dynamic_cast<LSTM*>(layer.get())) return l->forward(x).output;
    return dynamic_cast<GRU*>(layer.get())->forward(x).output;
  };
  NoGradGuard no_grad;
  const Tensor ref = run();
  quantize_dynamic(*layer);
  const Tensor q = run();
  double max_abs = 0, sum_abs = 0, max_ref = 0;
  const float *a = q.data<float>(), *b = ref.data<float>();
  for (int64_t i = 0; i < ref.numel(); ++i) {
    max_abs = std::max(max_abs, double(std::abs(a[i] - b[i])));
    sum_abs += std::abs(a[i] - b[i]);
    max_ref = std::max(max_ref, double(std::abs(b[i])));
  }
  fmt::print("{{\"max_abs\": {:.6g}, \"mean_abs\": {:.6g}, \"max_abs_float\": {:.6g}}}\n", max_abs,
             sum_abs / double(ref.numel()), max_ref);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "quant_error: %s\n", e.what());
  return 1;
}
