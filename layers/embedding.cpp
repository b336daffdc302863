#include "layers/embedding.h"

#include <stdexcept>

#include <fmt/format.h>

#include "autograd/debug.h"
#include "autograd/ops.h"

namespace seqgrad {

Embedding::Embedding(const EmbeddingOptions& o) : options_(o) {
  if (o.num_embeddings <= 0 || o.embedding_dim <= 0)
    throw std::invalid_argument(
        fmt::format("Embedding: num_embeddings and embedding_dim must be positive, got {} and {}", o.num_embeddings,
                    o.embedding_dim));
  Generator gen(o.seed);
  weight_ = register_parameter("weight", normal({o.num_embeddings, o.embedding_dim}, 0.0, 1.0, gen, o.dtype));
}

Tensor Embedding::forward(std::span<const int64_t> indices, const Shape& index_shape) const {
  for (size_t i = 0; i < indices.size(); ++i)
    if (indices[i] < 0 || indices[i] >= options_.num_embeddings)
      throw std::invalid_argument(fmt::format("Embedding: index {} at position {} is out of range [0, {})", indices[i],
                                              i, options_.num_embeddings));
  Scope scope(scope_name("Embedding"));
  return embedding(weight_, indices, index_shape);
}

Tensor Embedding::forward(std::span<const int64_t> indices) const {
  return forward(indices, Shape{int64_t(indices.size())});
}

}  // namespace seqgrad
