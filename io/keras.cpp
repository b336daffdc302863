#include "io/keras.h"

#include <fmt/format.h>

#include "autograd/ops.h"
#include "autograd/tape.h"

namespace seqgrad::io {

namespace {

const char* cell_name(KerasCell c) {
  return c == KerasCell::simple_rnn ? "SimpleRNN" : c == KerasCell::lstm ? "LSTM" : "GRU";
}

// PyTorch's GRU rows are r, z, n; Keras's columns are z, r, h. Swaps the first two H-blocks
// along `axis` (an involution, so the same call maps either way).
Tensor swap_zr(const Tensor& t, int axis, int64_t h) {
  Tensor z = slice(t, axis, 0, h), r = slice(t, axis, h, 2 * h), n = slice(t, axis, 2 * h, 3 * h);
  return concat(std::vector<Tensor>{r, z, n}, axis);
}

}  // namespace

NamedTensors TorchRNNWeights::named(int layer, bool reverse, const std::string& prefix) const {
  std::string suffix = layer < 0 ? "" : fmt::format("_l{}{}", layer, reverse ? "_reverse" : "");
  NamedTensors out = {{prefix + "weight_ih" + suffix, weight_ih}, {prefix + "weight_hh" + suffix, weight_hh}};
  if (bias_ih.defined()) out.emplace_back(prefix + "bias_ih" + suffix, bias_ih);
  if (bias_hh.defined()) out.emplace_back(prefix + "bias_hh" + suffix, bias_hh);
  return out;
}

TorchRNNWeights keras_to_torch(KerasCell cell, const KerasWeights& w) {
  const char* name = cell_name(cell);
  auto bad = [&](const std::string& msg) {
    throw std::invalid_argument(fmt::format("keras_to_torch ({}): {}", name, msg));
  };
  if (!w.kernel.defined() || !w.recurrent_kernel.defined()) bad("kernel and recurrent_kernel are required");
  const int64_t g = cell == KerasCell::simple_rnn ? 1 : cell == KerasCell::lstm ? 4 : 3;
  const Tensor& k = w.kernel;
  const Tensor& rk = w.recurrent_kernel;
  if (rk.rank() != 2 || rk.size(1) != g * rk.size(0))
    bad(fmt::format("recurrent_kernel is {}, expected (H, {}*H)", rk.shape(), g));
  const int64_t h = rk.size(0);
  if (k.rank() != 2 || k.size(1) != g * h)
    bad(fmt::format("kernel is {}, expected (input_size, {}) for H = {}", k.shape(), g * h, h));
  if (k.dtype() != rk.dtype()) bad("kernel and recurrent_kernel have different dtypes");

  NoGradGuard no_grad;
  TorchRNNWeights out;
  out.weight_ih = k.t().clone();
  out.weight_hh = rk.t().clone();
  if (w.bias.defined()) {
    const Tensor& b = w.bias;
    if (b.dtype() != k.dtype()) bad("bias and kernel have different dtypes");
    if (cell == KerasCell::gru) {
      if (b.rank() == 1 && b.size(0) == g * h)
        bad(fmt::format("bias is {}: a reset_after=False GRU, which computes (r * h) U_h; PyTorch's GRU computes "
                        "r * (h U_h + b_hn) and cannot represent it. Retrain with reset_after=True (the default)",
                        b.shape()));
      if (b.rank() != 2 || b.size(0) != 2 || b.size(1) != g * h)
        bad(fmt::format("bias is {}, expected (2, {}) (reset_after=True: input and recurrent biases)", b.shape(), g * h));
      out.bias_ih = b.select(0, 0);
      out.bias_hh = b.select(0, 1);
    } else {
      if (b.rank() != 1 || b.size(0) != g * h) bad(fmt::format("bias is {}, expected ({},)", b.shape(), g * h));
      out.bias_ih = b.clone();
      out.bias_hh = zeros({g * h}, b.dtype());
    }
  }
  if (cell == KerasCell::gru) {
    out.weight_ih = swap_zr(out.weight_ih, 0, h);
    out.weight_hh = swap_zr(out.weight_hh, 0, h);
    if (out.bias_ih.defined()) {
      out.bias_ih = swap_zr(out.bias_ih, 0, h);
      out.bias_hh = swap_zr(out.bias_hh, 0, h);
    }
  }
  return out;
}

KerasWeights keras_weights(const TensorFile& file, std::string_view prefix) {
  auto find = [&](const char* what) -> const Tensor* {
    std::string base = std::string(prefix) + what;
    if (const Tensor* t = file.find(base)) return t;
    return file.find(base + ":0");
  };
  KerasWeights w;
  for (const char* need : {"kernel", "recurrent_kernel"})
    if (!find(need)) file.at(std::string(prefix) + need);  // throws, listing the names present
  w.kernel = *find("kernel");
  w.recurrent_kernel = *find("recurrent_kernel");
  if (const Tensor* b = find("bias")) w.bias = *b;
  return w;
}

}  // namespace seqgrad::io
