// Linear: y = x W^T + b over the last axis of an input of any rank, so (batch, steps, in) ->
// (batch, steps, out) directly. One fused tape op (linear) per call.
//
//   Linear head({.in_features = 8, .out_features = 1});
//   Tensor y = head.forward(rnn_out);   // (B, T, 8) -> (B, T, 1)
//
//   x: (..., in), W: (out, in) "weight", b: (out) "bias" -> y: (..., out)
//   Init as PyTorch: W ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), b ~ U(-1/sqrt(in), 1/sqrt(in)).
#pragma once

#include <cstdint>

#include "layers/module.h"

namespace seqgrad {
namespace quant {
struct QuantizedLinear;
struct Quantizer;
}  // namespace quant

struct LinearOptions {
  int64_t in_features = 0;
  int64_t out_features = 0;
  bool bias = true;
  DType dtype = DType::f32;
  uint64_t seed = 0;  // initialisation
};

class Linear : public Module {
 public:
  explicit Linear(const LinearOptions& options);
  Tensor forward(const Tensor& x) const;  // int8 products once quantized (quant/quantize.h)

  const LinearOptions& options() const { return options_; }
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }  // undefined without bias

 private:
  friend struct quant::Quantizer;
  LinearOptions options_;
  Tensor weight_, bias_;
  std::shared_ptr<quant::QuantizedLinear> int8_;  // set by quantize_dynamic
};

}  // namespace seqgrad
