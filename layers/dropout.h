// Dropout: in training, zeroes each element with probability p and scales the rest by 1/(1-p)
// (inverted dropout, so eval needs no rescaling); in eval mode it is the identity. The mask is a
// constant drawn from the layer's own seeded Generator, so runs are reproducible.
//
//   Dropout drop({.p = 0.2, .seed = 1});
//   Tensor y = drop.forward(x);   // drop.eval(): y is x
//
//   y = x * m / (1 - p), m_i ~ Bernoulli(1 - p)
#pragma once

#include <cstdint>

#include "layers/module.h"

namespace seqgrad {

// The function form; returns x itself when !training or p == 0.
Tensor dropout(const Tensor& x, double p, Generator& gen, bool training = true);

struct DropoutOptions {
  double p = 0.5;
  uint64_t seed = 0;
};

class Dropout : public Module {
 public:
  explicit Dropout(const DropoutOptions& options = {});
  Tensor forward(const Tensor& x);  // advances the generator

  const DropoutOptions& options() const { return options_; }

 private:
  DropoutOptions options_;
  std::shared_ptr<Generator> gen_;  // registered as "generator"
};

}  // namespace seqgrad
