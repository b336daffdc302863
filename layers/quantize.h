// int8 dynamic quantization of a trained model, for inference on CPUs (as PyTorch's
// torch.quantization.quantize_dynamic):
//
//   quantize_dynamic(model);        // in place: every Linear and RNN/LSTM/GRU inside model
//   NoGradGuard no_grad;
//   Tensor y = model.forward(x);    // same API, int8 products
//   io::save(model, "model-int8.safetensors");   // I8 weights + F32 scales (io/safetensors.h)
//
// Each weight matrix W (out, in) becomes int8 with one scale per output channel (row); each
// product's input is quantized per row at run time, the product summed in int32 by qgemm
// (quant/qgemm.h: AVX-512 VNNI, AVX2 or plain C++, picked at run time) and scaled back to float32.
// The point-wise gates, biases and states stay float32. The layers' float parameters stay
// registered, overwritten with the dequantized values (q * scale), so named_parameters() still
// describes what runs. Quantized layers are inference only: a backward through one throws.
// Variable-length batches (lengths) are not supported by the int8 sequence layers; the cells
// (RNNCell, LSTMCell, GRUCell) and float64 models are not converted (float64 throws).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"
#include "layers/recurrent.h"
#include "autograd/kernels/qgemm.h"

namespace seqgrad {

// Converts model and its submodules in place; returns how many layers it converted (already
// quantized layers are left as they are). Throws std::invalid_argument for a float64 layer.
int64_t quantize_dynamic(Module& model);
// Whether m or any of its submodules runs int8 weights.
bool is_quantized(const Module& m);

namespace quant {

// What a quantized Linear runs.
struct QuantizedLinear {
  QMatrix w;
  std::vector<float> bias;  // empty without bias
};

// What a quantized RNN/LSTM/GRU runs, index layer * D + direction.
struct QuantizedRecurrent {
  std::vector<QMatrix> w_ih, w_hh;
  std::vector<std::vector<float>> bias_x;  // added to the input projection: b_ih (+ b_hh for RNN and LSTM)
  std::vector<std::vector<float>> b_hh;    // GRU's, added to the hidden product
};

// The int8 forward passes the layers call once quantized. weight: the layer's float weight,
// recorded with the output so that a backward reaching it throws.
Tensor linear_forward(const QuantizedLinear& q, const Tensor& x, const Tensor& weight);
LSTMOutput recurrent_forward(const seqgrad::detail::RecurrentConfig& cfg, const QuantizedRecurrent& q, const Tensor& x,
                             const Tensor& h0, const Tensor& c0, const Tensor& weight);
void recurrent_step(const seqgrad::detail::RecurrentConfig& cfg, const QuantizedRecurrent& q, const Tensor& x, StreamState& s);

// For io: the int8 weight matrices of m's quantized layers by parameter name ("lstm.weight_ih_l0"),
// and, after those or the float biases were replaced, the update of what derives from them.
std::vector<std::pair<std::string, QMatrix*>> named_int8_weights(Module& m);
void refresh_quantized(Module& m);

}  // namespace quant
}  // namespace seqgrad
