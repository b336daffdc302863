#include "layers/sequential.h"

namespace seqgrad {

Tensor Sequential::forward(const Tensor& x) const {
  Tensor y = x;
  for (auto& step : steps_) y = step(y);
  return y;
}

}  // namespace seqgrad
