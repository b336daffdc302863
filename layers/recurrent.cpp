#include "layers/recurrent.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>
#include <omp.h>

#include "autograd/debug.h"
#include "autograd/ops.h"
#include "autograd/tape.h"
#include "layers/dropout.h"
#include "layers/quantize.h"

namespace seqgrad {

namespace {
std::atomic<int64_t> g_activation_limit{0};
// The input projection an untaped forward makes at a time: a quarter of a 1 MiB L2, beside W_hh
// (0.25-1 MiB at H = 256) and a step's gates (measured: 1 MiB loses the gain, one step or 512 KiB
// give nearly the same).
constexpr int64_t kUntapedChunkBytes = 256 << 10;

// The default limit. Read once, when the first recurrent layer is made: sysconf(_SC_PHYS_PAGES)
// is a sysinfo() system call (3-5 us the first time here), and every forward asks for the limit.
int64_t physical_memory() {
  static const int64_t bytes = int64_t(::sysconf(_SC_PHYS_PAGES)) * int64_t(::sysconf(_SC_PAGESIZE));
  return bytes;
}
}  // namespace

void set_activation_memory_limit(int64_t bytes) {
  if (bytes < 0) throw std::invalid_argument(fmt::format("set_activation_memory_limit: {} bytes is negative", bytes));
  g_activation_limit = bytes;
}

int64_t activation_memory_limit() {
  if (int64_t limit = g_activation_limit) return limit;
  return physical_memory();
}

Tensor detach_state(const Tensor& h) { return h.defined() ? h.detach() : h; }
LSTMState detach_state(const LSTMState& s) { return {detach_state(s.h), detach_state(s.c)}; }

namespace detail {

int gate_count(CellKind kind) {
  switch (kind) {
    case CellKind::lstm: return 4;
    case CellKind::gru: return 3;
    default: return 1;
  }
}

namespace {
// Every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)), PyTorch's reset_parameters().
Tensor init_uniform(const Shape& s, int64_t hidden, Generator& gen, DType dtype) {
  double k = 1.0 / std::sqrt(double(hidden));
  return uniform(s, -k, k, gen, dtype);
}

std::string layout(bool batch_first) { return batch_first ? "(batch, seq, feature)" : "(seq, batch, feature)"; }
}  // namespace

Tensor input_projection(CellKind kind, const Tensor& x, const Tensor& w_ih, const Tensor& b_ih, const Tensor& b_hh) {
  if (kind == CellKind::gru || !b_ih.defined()) return linear(x, w_ih, b_ih);
  return linear(x, w_ih, add(b_ih, b_hh));
}

LSTMState cell_step(CellKind kind, const Tensor& xp, int time_axis, int64_t t, const LSTMState& s,
                    const PackedWeight& w_hh, const Tensor& b_hh, const Tensor& out) {
  constexpr XpUse use = XpUse::consume;  // xp is the layer's own projection, read by these cells only
  switch (kind) {
    case CellKind::rnn_tanh: return {rnn_cell(xp, time_axis, t, s.h, w_hh, false, use, out), {}};
    case CellKind::rnn_relu: return {rnn_cell(xp, time_axis, t, s.h, w_hh, true, use, out), {}};
    case CellKind::lstm: {
      auto [h, c] = lstm_cell(xp, time_axis, t, s.h, s.c, w_hh, use, out);
      return {h, c};
    }
    case CellKind::gru: return {gru_cell(xp, time_axis, t, s.h, w_hh, b_hh, use, out), {}};
  }
  return {};
}

namespace {
// One direction of a layer when nothing records. The input projection runs a chunk of steps at a
// time, just before their cells, into a buffer that stays in L2 beside W_hh, instead of the whole
// sequence's up front (GRU H=256: 19.6 MB, long evicted when a step reads it). The same kernels and
// row sums as the recorded path, so the same bits. Returns the states (out_shape) and the last
// state; input is contiguous.
std::pair<Tensor, LSTMState> untaped_direction(CellKind kind, const Tensor& input, int time_axis, const Tensor& w_ih,
                                               const Tensor& bias, const PackedWeight& w_hh, const Tensor& b_hh,
                                               bool reverse, LSTMState s, const Shape& out_shape) {
  const bool bf = time_axis == 1;
  const int64_t T = input.size(time_axis), B = input.size(1 - time_axis), I = input.size(2);
  const int64_t H = w_hh.tensor().size(1), GH = gate_count(kind) * H, es = int64_t(dtype_size(input.dtype()));
  const int64_t chunk = std::clamp<int64_t>(kUntapedChunkBytes / (B * GH * es), 1, T);
  const PackedWeight w(w_ih);
  const Tensor xp = Tensor::empty({chunk * B, GH}, input.dtype());
  const Tensor hp = kind == CellKind::lstm ? Tensor() : Tensor::empty({B, GH}, input.dtype());
  // Batch-first, a chunk's input rows are B runs of n steps, T steps apart: gathered, so that one
  // product takes them all. Its rows (and xp's) are then sequence-major, b * n + (t - t0).
  const Tensor gathered = bf && chunk > 1 ? Tensor::empty({chunk * B, I}, input.dtype()) : Tensor();
  const Tensor states = Tensor::empty(out_shape, input.dtype());
  if (s.c.defined()) s.c = s.c.clone();  // updated in place
  auto project = [&](int64_t t0, int64_t n) {
    Tensor rows = !bf ? row_view(input, t0 * B * I, {n * B, I}, I) : row_view(input, t0 * I, {B, I}, T * I);
    if (bf && n > 1) {
      const char* src = static_cast<const char*>(input.raw_rows());
      for (int64_t b = 0; b < B; ++b)
        std::memcpy(static_cast<char*>(gathered.raw_rows()) + b * n * I * es, src + (b * T + t0) * I * es,
                    size_t(n * I * es));
      rows = row_view(gathered, 0, {n * B, I}, I);
    }
    linear_rows_into(rows, w, bias, row_view(xp, 0, {n * B, GH}, GH));
  };
  for (int64_t k = 0; k < T; ++k) {
    const int64_t t = reverse ? T - 1 - k : k, t0 = t / chunk * chunk, n = std::min(chunk, T - t0);
    Scope step("step", t, true);
    if (t == (reverse ? t0 + n - 1 : t0)) project(t0, n);  // the chunk's first step in this direction
    const Tensor x_t = bf ? row_view(xp, (t - t0) * GH, {B, GH}, n * GH) : row_view(xp, (t - t0) * B * GH, {B, GH}, GH);
    const Tensor h = bf ? row_view(states, t * H, {B, H}, T * H) : row_view(states, t * B * H, {B, H}, H);
    cell_forward_untaped(gate_count(kind), kind == CellKind::rnn_relu, x_t, s.h, h, s.c, w_hh, b_hh, hp);
    s.h = h;
  }
  return {states, s};
}
}  // namespace

// ---------------------------------------------------------------- sequence layers
RecurrentBase::RecurrentBase(const RecurrentConfig& c)
    : cfg_(c), dropout_gen_(register_generator("dropout_generator", c.seed ^ 0x2545f4914f6cdd1dULL)) {
  if (c.input_size <= 0 || c.hidden_size <= 0 || c.num_layers <= 0)
    throw std::invalid_argument(
        fmt::format("{}: input_size, hidden_size and num_layers must be positive, got {}, {}, {}", c.name, c.input_size,
                    c.hidden_size, c.num_layers));
  if (!(c.dropout >= 0.0 && c.dropout <= 1.0))
    throw std::invalid_argument(fmt::format("{}: dropout must be in [0, 1], got {}", c.name, c.dropout));
  physical_memory();  // its system call now rather than in the first training step
  Generator gen(c.seed);
  int D = c.bidirectional ? 2 : 1;
  int64_t H = c.hidden_size, GH = gate_count(c.kind) * H;
  // PyTorch's order: per layer, per direction: weight_ih, weight_hh, bias_ih, bias_hh.
  for (int64_t l = 0; l < c.num_layers; ++l)
    for (int d = 0; d < D; ++d) {
      std::string suffix = fmt::format("_l{}{}", l, d ? "_reverse" : "");
      int64_t in = l == 0 ? c.input_size : D * H;
      w_ih_.push_back(register_parameter("weight_ih" + suffix, init_uniform({GH, in}, H, gen, c.dtype)));
      w_hh_.push_back(register_parameter("weight_hh" + suffix, init_uniform({GH, H}, H, gen, c.dtype)));
      b_ih_.push_back(c.bias ? register_parameter("bias_ih" + suffix, init_uniform({GH}, H, gen, c.dtype)) : Tensor());
      b_hh_.push_back(c.bias ? register_parameter("bias_hh" + suffix, init_uniform({GH}, H, gen, c.dtype)) : Tensor());
    }
}

void RecurrentBase::check_state(const Tensor& s, const char* what, int64_t batch) const {
  if (!s.defined()) return;
  int64_t LD = cfg_.num_layers * (cfg_.bidirectional ? 2 : 1);
  Shape expected{LD, batch, cfg_.hidden_size};
  if (s.shape() != expected)
    throw std::invalid_argument(
        fmt::format("{}: {} must have shape {} (num_layers * num_directions, batch, hidden_size), got {}", cfg_.name,
                    what, expected, s.shape()));
  if (s.dtype() != w_ih_[0].dtype())
    throw std::invalid_argument(
        fmt::format("{}: {} is {} but the parameters are {}", cfg_.name, what, s.dtype(), w_ih_[0].dtype()));
}

bool RecurrentBase::records(const Tensor& x) const {
  if (!grad_mode_enabled()) return false;
  bool any = x.requires_grad();
  for (auto* ps : {&w_ih_, &w_hh_, &b_ih_, &b_hh_})
    for (const Tensor& p : *ps) any = any || (p.defined() && p.requires_grad());
  return any;
}

// Elements kept per step and sequence, per layer and direction: the projection (G*H, which the
// cells overwrite with their activations), the output state (H), the LSTM's c (H) or the GRU's
// hp_n (H); per layer, the directions' concat (D*H) and in training the dropout mask and output.
// Masked steps (lengths) add about six (B, H) tensors each.
void RecurrentBase::check_activation_memory(const Tensor& x, int64_t B, int64_t T,
                                            std::span<const int64_t> lengths) const {
  if (!records(x)) return;
  int64_t masked_steps = 0;
  if (!lengths.empty()) {
    auto [lo, hi] = std::minmax_element(lengths.begin(), lengths.end());
    masked_steps = std::max<int64_t>(0, *hi - *lo);
  }
  const int64_t G = gate_count(cfg_.kind), H = cfg_.hidden_size, D = cfg_.bidirectional ? 2 : 1;
  const int64_t per_dir = G * H + H + (G > 1 ? H : 0);
  const int64_t per_layer = D * per_dir + (D > 1 ? D * H : 0) + (is_training() && cfg_.dropout > 0 ? 2 * D * H : 0);
  const double bytes =
      double(dtype_size(x.dtype())) * B * (double(T) * per_layer + 6.0 * H * D * masked_steps) * cfg_.num_layers;
  const int64_t limit = activation_memory_limit();
  if (bytes > double(limit))
    throw std::length_error(fmt::format(
        "{}: the activations kept for backward would take about {:.1f} MiB ({} layer(s) x {} steps x batch {} x {} "
        "values per step, {}) for input {}, above the limit of {:.1f} MiB "
        "(set_activation_memory_limit; default: physical memory); shorten the sequence (truncated BPTT with "
        "detach_state), reduce the batch, or run without grad (NoGradGuard)",
        cfg_.name, bytes / (1 << 20), cfg_.num_layers, T, B, per_layer, x.dtype(), x.shape(),
        double(limit) / (1 << 20)));
}

LSTMOutput RecurrentBase::run(const Tensor& x, const Tensor& h0, const Tensor& c0, std::span<const int64_t> lengths) {
  const char* name = cfg_.name;
  if (!x.defined()) throw std::invalid_argument(fmt::format("{}: input is an undefined tensor", name));
  if (x.rank() != 3)
    throw std::invalid_argument(
        fmt::format("{}: input must have 3 dimensions {}, got {}", name, layout(cfg_.batch_first), x.shape()));
  if (x.size(2) != cfg_.input_size)
    throw std::invalid_argument(
        fmt::format("{}: input.size(-1) must be equal to input_size. Expected {}, got {} (input {})", name,
                    cfg_.input_size, x.size(2), x.shape()));
  if (x.dtype() != w_ih_[0].dtype())
    throw std::invalid_argument(fmt::format("{}: input is {} but the parameters are {}; convert one with to()", name,
                                            x.dtype(), w_ih_[0].dtype()));
  const int time_axis = cfg_.batch_first ? 1 : 0;
  const int64_t B = x.size(1 - time_axis), T = x.size(time_axis), H = cfg_.hidden_size;
  if (B == 0 || T == 0)
    throw std::invalid_argument(
        fmt::format("{}: input {} {} has no batch or no steps", name, x.shape(), layout(cfg_.batch_first)));
  const bool is_lstm = cfg_.kind == CellKind::lstm;
  check_state(h0, is_lstm ? "h0" : "h0 (hx)", B);
  if (is_lstm) check_state(c0, "c0", B);
  if (int8_) {
    if (!lengths.empty()) throw std::invalid_argument(fmt::format("{}: int8 (quantized) layers do not take lengths", name));
    return quant::recurrent_forward(cfg_, *int8_, x, h0, c0, w_ih_[0]);
  }

  check_activation_memory(x, B, T, lengths);
  // Masks for the steps where some sequences have ended: m = [t < length], keep = 1 - m.
  // Steps before min(lengths) need none; steps from max(lengths) on are skipped entirely.
  int64_t max_len = T, min_len = T;
  std::vector<Tensor> mask(T), keep(T);
  if (!lengths.empty()) {
    if (int64_t(lengths.size()) != B)
      throw std::invalid_argument(
          fmt::format("{}: lengths has {} entries but the batch has {} sequences", name, lengths.size(), B));
    for (size_t b = 0; b < lengths.size(); ++b)
      if (lengths[b] < 1 || lengths[b] > T)
        throw std::invalid_argument(fmt::format("{}: lengths[{}] = {} is out of range [1, {}] for an input of {} steps",
                                                name, b, lengths[b], T, T));
    auto [lo, hi] = std::minmax_element(lengths.begin(), lengths.end());
    min_len = *lo;
    max_len = *hi;
    for (int64_t t = min_len; t < max_len; ++t) {
      std::vector<double> m(B);
      for (int64_t b = 0; b < B; ++b) m[b] = t < lengths[b] ? 1.0 : 0.0;
      mask[t] = from_vector(m, {B, 1}, x.dtype());
      keep[t] = add(mul(mask[t], -1.0), 1.0);
    }
  }

  // Nothing records and no sequence ends early: the steps need no ops (the debugging hooks need
  // them). On one thread only: on more, each chunk's product adds a fork and join per few steps,
  // which costs more than its L2 residency saves (LSTM H=256 forward 8% slower on 2 threads).
  const bool untaped = !records(x) && min_len == T && !g_debug && omp_get_max_threads() == 1;
  Scope module(scope_name(name));
  const int D = cfg_.bidirectional ? 2 : 1;
  const Tensor zero_state = zeros({B, H}, x.dtype());
  std::vector<Tensor> h_n, c_n;
  Tensor input = x;
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    Scope layer("layer", l);
    if (l > 0) input = dropout(input, cfg_.dropout, *dropout_gen_, is_training());
    std::vector<Tensor> dir_out;
    for (int d = 0; d < D; ++d) {
      int i = int(l * D + d);
      Scope reverse(d ? "reverse" : "");
      const PackedWeight w_hh(w_hh_[i]);
      LSTMState s{h0.defined() ? select(h0, 0, i) : zero_state, {}};
      if (is_lstm) s.c = c0.defined() ? select(c0, 0, i) : zero_state;
      const Shape out_shape = cfg_.batch_first ? Shape{B, T, H} : Shape{T, B, H};
      if (untaped && input.contiguous()) {
        const Tensor bias = cfg_.kind == CellKind::gru || !b_ih_[i].defined() ? b_ih_[i] : add(b_ih_[i], b_hh_[i]);
        auto [states, last] =
            untaped_direction(cfg_.kind, input, time_axis, w_ih_[i], bias, w_hh, b_hh_[i], d == 1, s, out_shape);
        h_n.push_back(last.h);
        if (is_lstm) c_n.push_back(last.c);
        dir_out.push_back(states);
        continue;
      }
      Tensor proj = input_projection(cfg_.kind, input, w_ih_[i], b_ih_[i], b_hh_[i]);  // (B, T, G*H) or (T, B, G*H)
      std::vector<Tensor> outs(T, zero_state);  // padding beyond max_len stays zero
      // When no sequence ends early each step writes its state straight into the output (rows of
      // step t in a (B, T, H) or (T, B, H) buffer), and concat below finds them in place: one
      // buffer, no copy.
      const Tensor states = min_len == T ? Tensor::empty(out_shape, x.dtype()) : Tensor();
      for (int64_t k = 0; k < T; ++k) {
        int64_t t = d == 0 ? k : T - 1 - k;
        if (t >= max_len) continue;
        Scope step("step", t, true);
        const Tensor out_t = !states.defined()    ? Tensor()
                             : cfg_.batch_first ? detail::row_view(states, t * H, {B, H}, T * H)
                                                : detail::row_view(states, t * B * H, {B, H}, H);
        LSTMState next = cell_step(cfg_.kind, proj, time_axis, t, s, w_hh, b_hh_[i], out_t);
        if (mask[t].defined()) {
          next.h = mul(next.h, mask[t]);  // the output: zero on padding
          outs[t] = next.h;
          next.h = add(next.h, mul(s.h, keep[t]));
          if (is_lstm) next.c = add(mul(next.c, mask[t]), mul(s.c, keep[t]));
        } else {
          outs[t] = next.h;
        }
        s = next;
      }
      h_n.push_back(s.h);
      if (is_lstm) c_n.push_back(s.c);
      // Concatenating the (B, H) steps along batch_first's axis 1 gives (B, T*H); time-major, axis 0 gives (T*B, H).
      Tensor out = concat(outs, time_axis == 1 ? 1 : 0);
      dir_out.push_back(reshape(out, out_shape));
    }
    input = D == 1 ? dir_out[0] : concat(dir_out, 2);
  }
  return {input, stack(h_n, 0), is_lstm ? stack(c_n, 0) : Tensor()};
}

// ---------------------------------------------------------------- streaming
StreamState RecurrentBase::initial_state(int64_t batch, const LSTMState& init) const {
  if (cfg_.bidirectional)
    throw std::invalid_argument(fmt::format(
        "{}: step() runs one direction only; a bidirectional layer needs the whole sequence (use forward())", cfg_.name));
  if (batch <= 0) throw std::invalid_argument(fmt::format("{}: initial_state: batch must be positive, got {}", cfg_.name, batch));
  const bool is_lstm = cfg_.kind == CellKind::lstm;
  check_state(init.h, "initial_state: h0", batch);
  if (is_lstm) check_state(init.c, "initial_state: c0", batch);
  NoGradGuard no_grad;
  const DType dt = w_ih_[0].dtype();
  const int64_t H = cfg_.hidden_size, GH = gate_count(cfg_.kind) * H;
  StreamState s;
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    // A copy: step() updates the state in place, and init's layer slice would be a view of init.
    auto state = [&](const Tensor& init_all) {
      return init_all.defined() ? select(init_all, 0, l).clone() : zeros({batch, H}, dt);
    };
    s.h.push_back(state(init.h));
    if (is_lstm) s.c.push_back(state(init.c));
    s.xp.push_back(Tensor::empty({batch, GH}, dt));
    s.hp.push_back(cfg_.kind == CellKind::lstm ? Tensor() : Tensor::empty({batch, GH}, dt));
    // What input_projection adds, computed the same way.
    const size_t i = size_t(l);
    s.bias.push_back(!b_ih_[i].defined() || cfg_.kind == CellKind::gru ? b_ih_[i] : add(b_ih_[i], b_hh_[i]));
    s.w_ih.emplace_back(w_ih_[i]);
    s.w_hh.emplace_back(w_hh_[i]);
  }
  return s;
}

const Tensor& RecurrentBase::step(const Tensor& x, StreamState& s) const {
  const char* name = cfg_.name;
  if (s.h.size() != size_t(cfg_.num_layers) || s.xp.size() != s.h.size())
    throw std::invalid_argument(fmt::format("{}: step: the state is not from this layer's initial_state()", name));
  const int64_t B = s.h[0].size(0), H = cfg_.hidden_size, G = gate_count(cfg_.kind);
  if (!x.defined() || x.shape() != Shape{B, cfg_.input_size} || x.dtype() != w_ih_[0].dtype() || !x.contiguous())
    throw std::invalid_argument(fmt::format("{}: step: x must be a contiguous {} tensor of shape ({}, {}) (batch, input_size), got {}",
                                            name, w_ih_[0].dtype(), B, cfg_.input_size,
                                            x.defined() ? fmt::format("{} {}", x.shape(), x.dtype()) : "undefined"));
  if (int8_) return quant::recurrent_step(cfg_, *int8_, x, s), s.h.back();
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    const size_t i = size_t(l);
    if (s.h[i].shape() != Shape{B, H} || !s.h[i].contiguous() ||
        (cfg_.kind == CellKind::lstm && (s.c[i].shape() != Shape{B, H} || !s.c[i].contiguous())))
      throw std::invalid_argument(fmt::format("{}: step: state of layer {} must be contiguous ({}, {})", name, l, B, H));
    // linear()'s GEMM, rows summed as in forward()'s B*T-row product
    linear_rows_into(l == 0 ? x : s.h[i - 1], s.w_ih[i], s.bias[i], s.xp[i]);
    cell_forward_untaped(int(G), cfg_.kind == CellKind::rnn_relu, s.xp[i], s.h[i], s.h[i],
                         cfg_.kind == CellKind::lstm ? s.c[i] : Tensor(), s.w_hh[i], b_hh_[i], s.hp[i]);
  }
  return s.h.back();
}

// ---------------------------------------------------------------- cells
CellBase::CellBase(const char* name, CellKind kind, int64_t input_size, int64_t hidden_size, bool bias, DType dtype,
                   uint64_t seed)
    : name_(name), kind_(kind), input_size_(input_size), hidden_size_(hidden_size) {
  if (input_size <= 0 || hidden_size <= 0)
    throw std::invalid_argument(
        fmt::format("{}: input_size and hidden_size must be positive, got {} and {}", name, input_size, hidden_size));
  Generator gen(seed);
  int64_t GH = gate_count(kind) * hidden_size;
  w_ih_ = register_parameter("weight_ih", init_uniform({GH, input_size}, hidden_size, gen, dtype));
  w_hh_ = register_parameter("weight_hh", init_uniform({GH, hidden_size}, hidden_size, gen, dtype));
  if (bias) {
    b_ih_ = register_parameter("bias_ih", init_uniform({GH}, hidden_size, gen, dtype));
    b_hh_ = register_parameter("bias_hh", init_uniform({GH}, hidden_size, gen, dtype));
  }
}

LSTMState CellBase::step(const Tensor& x, const LSTMState& s) const {
  if (!x.defined()) throw std::invalid_argument(fmt::format("{}: input is an undefined tensor", name_));
  if (x.rank() != 2 || x.size(1) != input_size_)
    throw std::invalid_argument(fmt::format("{}: input must have shape (batch, {}) (input_size = {}), got {}", name_,
                                            input_size_, input_size_, x.shape()));
  if (x.dtype() != w_ih_.dtype())
    throw std::invalid_argument(fmt::format("{}: input is {} but the parameters are {}; convert one with to()", name_,
                                            x.dtype(), w_ih_.dtype()));
  const int64_t B = x.size(0);
  LSTMState state{state_or_zeros(s.h, "h", B), kind_ == CellKind::lstm ? state_or_zeros(s.c, "c", B) : Tensor()};
  Scope scope(scope_name(name_));
  return cell_step(kind_, input_projection(kind_, x, w_ih_, b_ih_, b_hh_), 1, 0, state, w_hh_, b_hh_);
}

Tensor CellBase::state_or_zeros(const Tensor& s, const char* what, int64_t batch) const {
  if (!s.defined()) return zeros({batch, hidden_size_}, w_ih_.dtype());
  Shape expected{batch, hidden_size_};
  if (s.shape() != expected)
    throw std::invalid_argument(
        fmt::format("{}: {} must have shape {} (batch, hidden_size), got {}", name_, what, expected, s.shape()));
  if (s.dtype() != w_ih_.dtype())
    throw std::invalid_argument(
        fmt::format("{}: {} is {} but the parameters are {}", name_, what, s.dtype(), w_ih_.dtype()));
  return s;
}

}  // namespace detail
}  // namespace seqgrad
