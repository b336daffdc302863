// quantize_dynamic and the int8 forward passes of Linear and the RNN/LSTM/GRU sequence layers.
#include "layers/quantize.h"

#include <algorithm>
#include <functional>
#include <stdexcept>

#include <fmt/format.h>

#include "autograd/kernels/cells.h"
#include "autograd/ops_internal.h"
#include "autograd/tape.h"
#include "layers/linear.h"

namespace seqgrad {

namespace quant {
namespace {
using seqgrad::detail::CellKind;

std::vector<float> values(const Tensor& t) { return t.defined() ? std::vector<float>(t.span<float>().begin(), t.span<float>().end()) : std::vector<float>{}; }

// In grad mode the output is recorded as coming from the float weight through an op whose
// backward throws, so that a backward reaching it says why instead of silently skipping it.
void mark(Tensor& out, const Tensor& x, const Tensor& weight, const char* layer) {
  if (out.defined() && seqgrad::detail::records("int8_inference", {&x, &weight}))
    seqgrad::detail::record({.op = Op::Int8Inference, .in = {x, weight}, .out = out,
                    .shared = std::make_shared<std::string>(layer)});
}

void check_f32(const char* layer, const Tensor& x) {
  if (!x.defined()) throw std::invalid_argument(fmt::format("{} (int8): input is an undefined tensor", layer));
  if (x.dtype() != DType::f32)
    throw std::invalid_argument(fmt::format("{} (int8): input is {}; quantized layers run float32", layer, dtype_name(x.dtype())));
}

// One step of a cell with the int8 hidden product: gates (B rows, stride ldg) hold the step's input
// projection and become the activations; the state h (B rows, stride ldh) goes to h_out (stride
// ldo; it may be h itself), c (B, H) is updated in place; hp is scratch.
void cell_step(CellKind kind, int64_t B, int64_t H, float* gates, int64_t ldg, const float* h, int64_t ldh, float* h_out,
               int64_t ldo, float* c, float* hp, const QMatrix& w_hh, const std::vector<float>& b_hh) {
  namespace k = kernels;
  if (kind == CellKind::lstm) {
    qlinear(B, h, ldh, w_hh, true, gates, ldg, nullptr);
    for (int64_t b = 0; b < B; ++b) k::lstm_cell_fwd<float>(h_out + b * ldo, c + b * H, gates + b * ldg, nullptr, c + b * H, H);
  } else if (kind == CellKind::gru) {
    qlinear(B, h, ldh, w_hh, false, hp, 3 * H, b_hh.empty() ? nullptr : b_hh.data());
    for (int64_t b = 0; b < B; ++b)
      k::gru_cell_fwd<float>(h_out + b * ldo, gates + b * ldg, hp + b * 3 * H + 2 * H, gates + b * ldg, hp + b * 3 * H,
                             h + b * ldh, H);
  } else {
    qlinear(B, h, ldh, w_hh, false, hp, H, nullptr);
    for (int64_t b = 0; b < B; ++b) {
      k::rnn_cell_fwd<float>(hp + b * H, gates + b * ldg, kind == CellKind::rnn_relu, H);
      std::copy_n(hp + b * H, H, h_out + b * ldo);
    }
  }
}
}  // namespace

// Access to the layers' private parts, for quantize_dynamic and io.
struct Quantizer {
  static void quantize(Linear& l) {
    auto q = std::make_shared<QuantizedLinear>();
    q->w = QMatrix::quantize(l.weight_.data<float>(), l.weight_.size(0), l.weight_.size(1));
    l.int8_ = q;
    refresh(l);
  }
  static void quantize(seqgrad::detail::RecurrentBase& r) {
    auto q = std::make_shared<QuantizedRecurrent>();
    for (size_t i = 0; i < r.w_ih_.size(); ++i) {
      q->w_ih.push_back(QMatrix::quantize(r.w_ih_[i].data<float>(), r.w_ih_[i].size(0), r.w_ih_[i].size(1)));
      q->w_hh.push_back(QMatrix::quantize(r.w_hh_[i].data<float>(), r.w_hh_[i].size(0), r.w_hh_[i].size(1)));
    }
    r.int8_ = q;
    refresh(r);
  }
  // The float weights become q * scale; the biases are read again.
  static void refresh(Linear& l) {
    std::vector<float> w = l.int8_->w.dequantize();
    std::copy(w.begin(), w.end(), l.weight_.data<float>());
    l.int8_->bias = values(l.bias_);
  }
  static void refresh(seqgrad::detail::RecurrentBase& r) {
    QuantizedRecurrent& q = *r.int8_;
    q.bias_x.clear();
    q.b_hh.clear();
    for (size_t i = 0; i < r.w_ih_.size(); ++i) {
      for (auto [m, t] : {std::pair{&q.w_ih[i], &r.w_ih_[i]}, std::pair{&q.w_hh[i], &r.w_hh_[i]}}) {
        std::vector<float> w = m->dequantize();
        std::copy(w.begin(), w.end(), t->data<float>());
      }
      std::vector<float> bx = values(r.b_ih_[i]), bh = values(r.b_hh_[i]);
      if (r.cfg_.kind != CellKind::gru)
        for (size_t j = 0; j < bx.size(); ++j) bx[j] += bh[j];  // as input_projection's add(b_ih, b_hh)
      q.bias_x.push_back(bx);
      q.b_hh.push_back(bh);
    }
  }
  // Calls f(layer, dotted prefix) for every Linear / RecurrentBase in m.
  static void visit(Module& m, const std::string& prefix, const std::function<void(Module&, const std::string&)>& f) {
    f(m, prefix);
    for (auto& [name, child] : m.children()) visit(*child, prefix + name + ".", f);
  }
  static bool quantized(Module& m) {
    if (auto* l = dynamic_cast<Linear*>(&m)) return l->int8_ != nullptr;
    if (auto* r = dynamic_cast<seqgrad::detail::RecurrentBase*>(&m)) return r->int8_ != nullptr;
    return false;
  }
  static std::vector<std::pair<std::string, QMatrix*>> weights(Module& root) {
    std::vector<std::pair<std::string, QMatrix*>> out;
    visit(root, "", [&](Module& m, const std::string& prefix) {
      if (auto* l = dynamic_cast<Linear*>(&m); l && l->int8_) out.emplace_back(prefix + "weight", &l->int8_->w);
      auto* r = dynamic_cast<seqgrad::detail::RecurrentBase*>(&m);
      if (!r || !r->int8_) return;
      const int D = r->cfg_.bidirectional ? 2 : 1;
      for (size_t i = 0; i < r->w_ih_.size(); ++i) {
        std::string suffix = fmt::format("_l{}{}", i / size_t(D), i % size_t(D) ? "_reverse" : "");
        out.emplace_back(prefix + "weight_ih" + suffix, &r->int8_->w_ih[i]);
        out.emplace_back(prefix + "weight_hh" + suffix, &r->int8_->w_hh[i]);
      }
    });
    return out;
  }
};

std::vector<std::pair<std::string, QMatrix*>> named_int8_weights(Module& m) { return Quantizer::weights(m); }

void refresh_quantized(Module& root) {
  Quantizer::visit(root, "", [](Module& m, const std::string&) {
    if (!Quantizer::quantized(m)) return;
    if (auto* l = dynamic_cast<Linear*>(&m)) Quantizer::refresh(*l);
    else Quantizer::refresh(dynamic_cast<seqgrad::detail::RecurrentBase&>(m));
  });
}

Tensor linear_forward(const QuantizedLinear& q, const Tensor& x, const Tensor& weight) {
  check_f32("Linear", x);
  Shape shape = x.shape();
  shape[x.rank() - 1] = q.w.N;
  Tensor y = Tensor::empty(shape, DType::f32);
  qlinear(x.numel() / q.w.K, x.data<float>(), q.w.K, q.w, false, y.data<float>(), q.w.N, q.bias.empty() ? nullptr : q.bias.data());
  mark(y, x, weight, "Linear");
  return y;
}

LSTMOutput recurrent_forward(const seqgrad::detail::RecurrentConfig& cfg, const QuantizedRecurrent& q, const Tensor& x,
                             const Tensor& h0, const Tensor& c0, const Tensor& weight) {
  check_f32(cfg.name, x);
  const bool bf = cfg.batch_first, is_lstm = cfg.kind == CellKind::lstm;
  const int64_t B = x.size(bf ? 0 : 1), T = x.size(bf ? 1 : 0), H = cfg.hidden_size, G = seqgrad::detail::gate_count(cfg.kind);
  const int64_t D = cfg.bidirectional ? 2 : 1;
  // The layers run time-major, so that the B rows of one step (its projection, gates and states) are
  // contiguous: batch-first, they would lie T rows apart, each on its own page and cache set.
  // The input projection runs a chunk of steps at a time, small enough for the L2 cache, where the
  // hidden products then add to it (the whole sequence's would come back from memory).
  const int64_t chunk = std::clamp<int64_t>((1 << 20) / (B * G * H * 4), 1, T);
  const auto time_major = [&] {
    NoGradGuard no_grad;  // an inference copy, not part of any graph (mark() below records the layer)
    return transpose(x, 0, 1);
  };
  Tensor input = bf ? time_major() : x, xp = Tensor::empty({chunk * B, G * H}), hp = Tensor::empty({B, G * H});
  Tensor h_n = Tensor::empty({cfg.num_layers * D, B, H}), c_n = is_lstm ? Tensor::empty({cfg.num_layers * D, B, H}) : Tensor();
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    // The last layer writes straight into the caller's layout.
    const bool out_bf = bf && l == cfg.num_layers - 1;
    Tensor out = Tensor::empty(out_bf ? Shape{B, T, D * H} : Shape{T, B, D * H});
    const int64_t out_row = out_bf ? D * H : B * D * H, out_col = out_bf ? T * D * H : D * H;  // strides of t and b
    const int64_t in_size = input.size(2);
    for (int64_t d = 0; d < D; ++d) {
      const size_t i = size_t(l * D + d);
      float* h_last = h_n.data<float>() + int64_t(i) * B * H;
      float* c = is_lstm ? c_n.data<float>() + int64_t(i) * B * H : nullptr;
      if (h0.defined()) std::copy_n(h0.data<float>() + int64_t(i) * B * H, B * H, h_last);
      else std::fill_n(h_last, B * H, 0.f);
      if (c) {
        if (c0.defined()) std::copy_n(c0.data<float>() + int64_t(i) * B * H, B * H, c);
        else std::fill_n(c, B * H, 0.f);
      }
      // Each step's state is written where the output wants it and read from there by the next step.
      const float* h = h_last;
      int64_t ldh = H;
      for (int64_t k = 0; k < T; ++k) {
        const int64_t t = d == 0 ? k : T - 1 - k;
        // Steps [t0, t0 + n) are projected together when the first of them (in this direction) comes up.
        const int64_t t0 = t / chunk * chunk, n = std::min(chunk, T - t0);
        if (t == (d == 0 ? t0 : t0 + n - 1))
          qlinear(n * B, input.data<float>() + t0 * B * in_size, in_size, q.w_ih[i], false, xp.data<float>(), G * H,
                  q.bias_x[i].empty() ? nullptr : q.bias_x[i].data());
        float* h_t = out.data<float>() + t * out_row + d * H;
        cell_step(cfg.kind, B, H, xp.data<float>() + (t - t0) * B * G * H, G * H, h, ldh, h_t, out_col, c, hp.data<float>(),
                  q.w_hh[i], q.b_hh[i]);
        h = h_t;
        ldh = out_col;
      }
      for (int64_t b = 0; b < B; ++b) std::copy_n(h + b * ldh, H, h_last + b * H);
    }
    input = out;
  }
  mark(input, x, weight, cfg.name);
  mark(h_n, x, weight, cfg.name);
  mark(c_n, x, weight, cfg.name);
  return {input, h_n, c_n};
}

void recurrent_step(const seqgrad::detail::RecurrentConfig& cfg, const QuantizedRecurrent& q, const Tensor& x, StreamState& s) {
  const int64_t B = x.size(0), H = cfg.hidden_size, GH = seqgrad::detail::gate_count(cfg.kind) * H;
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    const size_t i = size_t(l);
    const Tensor& in = l == 0 ? x : s.h[i - 1];
    qlinear(B, in.data<float>(), in.size(1), q.w_ih[i], false, s.xp[i].data<float>(), GH,
            q.bias_x[i].empty() ? nullptr : q.bias_x[i].data());
    cell_step(cfg.kind, B, H, s.xp[i].data<float>(), GH, s.h[i].data<float>(), H, s.h[i].data<float>(), H,
              cfg.kind == CellKind::lstm ? s.c[i].data<float>() : nullptr, s.hp[i].defined() ? s.hp[i].data<float>() : nullptr,
              q.w_hh[i], q.b_hh[i]);
  }
}

}  // namespace quant

int64_t quantize_dynamic(Module& model) {
  int64_t converted = 0;
  quant::Quantizer::visit(model, "", [&](Module& m, const std::string& prefix) {
    auto* l = dynamic_cast<Linear*>(&m);
    auto* r = dynamic_cast<seqgrad::detail::RecurrentBase*>(&m);
    if ((!l && !r) || quant::Quantizer::quantized(m)) return;
    for (const auto& [name, p] : m.named_parameters())
      if (p.dtype() != DType::f32)
        throw std::invalid_argument(fmt::format("quantize_dynamic: {}{} is {}; int8 quantization takes float32 layers",
                                                prefix, name, dtype_name(p.dtype())));
    NoGradGuard no_grad;
    if (l) quant::Quantizer::quantize(*l);
    else quant::Quantizer::quantize(*r);
    ++converted;
  });
  return converted;
}

bool is_quantized(const Module& m) {
  bool any = false;
  quant::Quantizer::visit(const_cast<Module&>(m), "", [&](Module& x, const std::string&) { any = any || quant::Quantizer::quantized(x); });
  return any;
}

}  // namespace seqgrad
