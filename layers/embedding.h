// Embedding: a lookup table of num_embeddings vectors of size embedding_dim. Indices of any
// shape S give S + (embedding_dim); the gradient accumulates into the rows that were used.
//
//   Embedding emb({.num_embeddings = 100, .embedding_dim = 16});
//   Tensor x = emb.forward(tokens, {batch, steps});   // tokens: batch*steps ids -> (batch, steps, 16)
//
//   weight: (num_embeddings, embedding_dim) "weight", init N(0, 1) as PyTorch; y[s] = weight[idx[s]].
#pragma once

#include <cstdint>
#include <span>

#include "layers/module.h"

namespace seqgrad {

struct EmbeddingOptions {
  int64_t num_embeddings = 0;
  int64_t embedding_dim = 0;
  DType dtype = DType::f32;
  uint64_t seed = 0;
};

class Embedding : public Module {
 public:
  explicit Embedding(const EmbeddingOptions& options);
  // indices (row-major, index_shape.numel() of them), each in [0, num_embeddings).
  Tensor forward(std::span<const int64_t> indices, const Shape& index_shape) const;
  Tensor forward(std::span<const int64_t> indices) const;  // 1-D: (N, embedding_dim)

  const EmbeddingOptions& options() const { return options_; }
  const Tensor& weight() const { return weight_; }

 private:
  EmbeddingOptions options_;
  Tensor weight_;
};

}  // namespace seqgrad
