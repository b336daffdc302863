// Keras recurrent weights in PyTorch's layout, so a Keras-trained SimpleRNN, LSTM or GRU loads
// into seqgrad's RNN, LSTM, GRU (and their cells), whose parameters are torch.nn's.
//
// Keras keeps one kernel per layer with the gates side by side in columns; PyTorch keeps one
// weight per layer with the gates stacked in rows. With H hidden units and I inputs:
//
//   Keras                                   PyTorch
//   kernel            (I, G*H)              weight_ih = kernel^T            (G*H, I)
//   recurrent_kernel  (H, G*H)              weight_hh = recurrent_kernel^T  (G*H, H)
//   bias              (G*H)                 bias_ih = bias, bias_hh = 0     (only their sum acts)
//
// - SimpleRNN (G = 1): as above. Keras's activation must be tanh (or relu with
//   Nonlinearity::relu).
// - LSTM (G = 4): Keras's gate order i, f, c, o is PyTorch's i, f, g, o: no reordering.
//   Keras's activation/recurrent_activation must be the defaults (tanh / sigmoid).
// - GRU (G = 3): Keras's gate order is z, r, h; PyTorch's is r, z, n, so the first two blocks
//   swap. With reset_after=True (the Keras 2.x/3.x default, and what cuDNN computes) the bias is
//   (2, 3H): row 0 is the input bias and row 1 the recurrent bias, and Keras's candidate
//   h~ = tanh(x W_h + b_h + r * (h U_h + b_rh)) is PyTorch's n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
//   exactly; h' = z * h + (1 - z) * h~ is the same in both. reset_after=False (bias (3H), the old
//   Keras 1 / TF1 default) applies r before the recurrent product, (r * h) U_h, which PyTorch's
//   GRU cannot express: it is rejected with an explanation.
// - use_bias=False: pass an undefined bias; the result has undefined biases, for layers built
//   with .bias = false.
// - Bidirectional(LSTM(...)): convert the forward_* and backward_* layers' weights separately;
//   the backward one goes to the "_reverse" names. Stacked layers: one call per layer, layer = k.
//
// Getting the arrays out of Keras without HDF5 in C++: write them to a safetensors file with the
// numpy-only writer in the README ("Checkpoints and data"), read it with load_safetensors, pick the
// three arrays with keras_weights(), convert, and load() the result.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "io/safetensors.h"

namespace seqgrad::io {

enum class KerasCell { simple_rnn, lstm, gru };

struct KerasWeights {
  Tensor kernel;            // (I, G*H)
  Tensor recurrent_kernel;  // (H, G*H)
  Tensor bias;              // (G*H); GRU reset_after: (2, G*H); undefined without bias
};

// PyTorch-layout parameters of one layer and direction.
struct TorchRNNWeights {
  Tensor weight_ih, weight_hh, bias_ih, bias_hh;  // biases undefined when the Keras bias was
  // {"<prefix>weight_ih_l<layer>[_reverse]", ...} for a sequence layer (RNN, LSTM, GRU), or
  // {"<prefix>weight_ih", ...} for a cell when layer < 0.
  NamedTensors named(int layer = 0, bool reverse = false, const std::string& prefix = "") const;
};

// Checks the shapes (std::invalid_argument naming the array, the cell and both shapes) and converts.
TorchRNNWeights keras_to_torch(KerasCell cell, const KerasWeights& w);

// The kernel, recurrent_kernel and bias under `prefix` in a file of Keras weights, accepting
// "<prefix>kernel" and Keras 2's "<prefix>kernel:0" spellings; a missing bias stays undefined.
// Throws std::out_of_range listing the names present when the kernels are missing.
KerasWeights keras_weights(const TensorFile& file, std::string_view prefix);

}  // namespace seqgrad::io
