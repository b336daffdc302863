// What RNN, LSTM and GRU share: their results, the state-detaching helpers for truncated BPTT, and
// (in detail::) the one time loop all three sequence layers run. The per-step equations live in
// rnn.h, lstm.h and gru.h. Nothing here has a backward: the loop calls ordinary tape ops, so the T
// unrolled steps are on the tape and backprop through time is the tape's ordinary reverse sweep.
//
// The loop (per layer l and direction d; D = 2 if bidirectional):
//   P     = linear(input, W_ih, b_ih)           one (B*T, I) x (I, G*H) product before the loop
//   s_t   = cell(select(P, time, t), s_{t-1})   t = 0..T-1 (reverse direction: T-1..0)
//   input of layer l+1 = dropout(concat over directions of the h_t's)   (training, p > 0)
// With lengths, step t of sequence b is padding when t >= lengths[b]: there the state is carried
// unchanged, s_t = m * cell(...) + (1 - m) * s_{t-1} with m = [t < lengths[b]], and the output
// is m * h_t = 0. So h_n is each sequence's state at its own last step, and the reverse direction
// starts at step lengths[b]-1 from h0, exactly as PyTorch's packed sequences.
//
// Truncated BPTT (stateful training): run a long sequence in chunks and carry the final state into
// the next chunk, detached, so each backward() stops at the chunk boundary:
//   LSTMState state;                                     // zeros
//   for (auto& chunk : chunks) {
//     auto out = lstm.forward(chunk, detach_state(state)); state = out.state();
//     loss(out.output).backward(); opt.step(); lstm.zero_grad();
//   }
// Without detach_state the second chunk's forward throws: its state was computed on a tape that
// backward() already freed ("... detach() it to carry it into a new step (truncated BPTT)").
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "autograd/ops.h"
#include "layers/module.h"

namespace seqgrad {
namespace quant {
struct QuantizedRecurrent;
struct Quantizer;
}  // namespace quant

// (output (B, T, D*H) batch_first or (T, B, D*H), h_n (num_layers*D, B, H)).
struct RNNOutput {
  Tensor output;
  Tensor h_n;
};

// An LSTM's state: hidden h and cell c, each (B, H) for a cell or (num_layers*D, B, H) for a
// sequence layer. An undefined h or c means zeros.
struct LSTMState {
  Tensor h;
  Tensor c;
};

struct LSTMOutput {
  Tensor output;
  Tensor h_n;
  Tensor c_n;
  LSTMState state() const { return {h_n, c_n}; }
};

// A sequence forward that records for backward first estimates the activations the tape will keep
// (projections, states, cell memories, dropout masks) and, above this limit, throws
// std::length_error naming the estimate, the limit and the input shape before allocating anything,
// rather than meeting the OOM killer. Default (and after setting 0): the machine's physical memory.
void set_activation_memory_limit(int64_t bytes);
int64_t activation_memory_limit();

// Same values, no history: the carried state of truncated BPTT. Undefined stays undefined.
Tensor detach_state(const Tensor& h);
LSTMState detach_state(const LSTMState& s);

// Streaming inference: a sequence layer's state between calls to step(), from initial_state().
// h[l] (and c[l] for LSTM) is layer l's state (B, H); read or overwrite them between steps. The
// rest are buffers and packings of the weights made once and reused by every step, so a step
// allocates nothing; the packings copy W_hh as it was when the state was made (make a new state
// after changing the weights).
struct StreamState {
  std::vector<Tensor> h, c;
  std::vector<Tensor> xp, hp, bias;  // per layer: input projection, hidden-product scratch, folded bias
  std::vector<PackedWeight> w_ih, w_hh;
};

namespace detail {

enum class CellKind : uint8_t { rnn_tanh, rnn_relu, lstm, gru };
int gate_count(CellKind kind);  // G: 1, 1, 4, 3

// The input projection every step reads: x W_ih^T + b_ih, plus b_hh for RNN and LSTM, whose cells
// add it outside any nonlinearity (GRU's cell takes b_hh itself: r multiplies it).
Tensor input_projection(CellKind kind, const Tensor& x, const Tensor& w_ih, const Tensor& b_ih, const Tensor& b_hh);

// One step: the cell op of `kind` (ops.h) on the projection xp and the previous state, xp being one
// step's (B, G*H), or the whole sequence's (B, T, G*H) / (T, B, G*H) (time_axis 1 / 0) read at step
// t in place. One tape op per step, the hidden product included. b_hh is only read for GRU.
// The cells consume xp (XpUse::consume): it must come from input_projection for this loop alone,
// with one PackedWeight per xp.
// `out`, when given, receives h' (see the cells' `out` in ops.h).
LSTMState cell_step(CellKind kind, const Tensor& xp, int time_axis, int64_t t, const LSTMState& s,
                    const PackedWeight& w_hh, const Tensor& b_hh, const Tensor& out = {});

struct RecurrentConfig {
  const char* name;  // "RNN", "LSTM", "GRU": prefixes every error message
  CellKind kind;
  int64_t input_size, hidden_size, num_layers;
  bool bias, batch_first;
  double dropout;
  bool bidirectional;
  DType dtype;
  uint64_t seed;
};

// The config of a sequence layer from its options (RNNOptions, LSTMOptions, GRUOptions).
template <class Options>
RecurrentConfig make_config(const char* name, CellKind kind, const Options& o) {
  return {name,          kind,      o.input_size,    o.hidden_size, o.num_layers, o.bias,
          o.batch_first, o.dropout, o.bidirectional, o.dtype,       o.seed};
}

// The sequence layers' shared body: parameters weight_ih_l{k}[_reverse] etc. and the time loop.
// forward() with nothing recording (NoGradGuard, or no input or parameter wanting grad) on one
// OpenMP thread, without lengths and with no DetectAnomaly or Profiler on, runs no ops per step:
// each chunk of steps' input projection is made just before them and stays in L2. The same bits as
// the recorded forward, 3-5% faster; the debugging hooks see the op-by-op path.
class RecurrentBase : public Module {
 public:
  // Streaming inference, one step at a time, no tape (for unidirectional layers; bidirectional ones
  // need the whole sequence and throw):
  //   StreamState s = lstm.initial_state(1);                 // zeros; or from {h0, c0} (L, B, H)
  //   for (...) { const Tensor& y = lstm.step(x_t, s); }     // x_t (B, I) -> y (B, H), the top layer's h
  // y is s.h.back(): overwritten by the next step (copy it to keep it). The outputs are bitwise
  // those of forward() over the same steps (dropout off, as in eval()) — except that a forward()
  // of a single step at batch 1 takes the GEMM's matrix-vector path, whose sums run in another order.
  StreamState initial_state(int64_t batch, const LSTMState& init = {}) const;
  const Tensor& step(const Tensor& x, StreamState& s) const;

 protected:
  explicit RecurrentBase(const RecurrentConfig& config);
  // c0 is only read for LSTM; c_n is undefined for the others.
  LSTMOutput run(const Tensor& x, const Tensor& h0, const Tensor& c0, std::span<const int64_t> lengths);

 private:
  void check_state(const Tensor& s, const char* what, int64_t batch) const;
  bool records(const Tensor& x) const;  // whether forward(x) records on the tape (grad mode, some input wanting grad)
  void check_activation_memory(const Tensor& x, int64_t B, int64_t T, std::span<const int64_t> lengths) const;

  friend struct quant::Quantizer;
  RecurrentConfig cfg_;
  std::vector<Tensor> w_ih_, w_hh_, b_ih_, b_hh_;  // index layer * D + direction
  std::shared_ptr<Generator> dropout_gen_;  // registered as "dropout_generator"
  std::shared_ptr<quant::QuantizedRecurrent> int8_;  // set by quantize_dynamic: run() and step() use it
};

// The cells' shared body: parameters weight_ih, weight_hh, bias_ih, bias_hh and input checks.
class CellBase : public Module {
 protected:
  CellBase(const char* name, CellKind kind, int64_t input_size, int64_t hidden_size, bool bias, DType dtype,
           uint64_t seed);
  // Checks x (B, input_size) and the state, then runs one cell_step.
  LSTMState step(const Tensor& x, const LSTMState& s) const;
  // Checks a state against (B, hidden_size); an undefined one becomes zeros.
  Tensor state_or_zeros(const Tensor& s, const char* what, int64_t batch) const;

  const char* name_;
  CellKind kind_;
  int64_t input_size_, hidden_size_;
  Tensor w_ih_, w_hh_, b_ih_, b_hh_;
};

}  // namespace detail
}  // namespace seqgrad
