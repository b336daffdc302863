// quantize_dynamic: int8 Linear and RNN/LSTM/GRU against the float model within bounds derived
// from the scales, streaming steps equal to the int8 sequence forward, the same outputs on every
// int8 ISA, inference only (backward throws), and the conversion's errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "autograd/seqgrad.h"
#include "layers/layers.h"
#include "io/io.h"
#include "layers/quantize.h"

using namespace seqgrad;

namespace {
// Per output element, |x w - x~ w~| <= sum_k |x_k| s_w / 2 + |w_k| s_x / 2 + s_x s_w / 4 for the
// row's activation scale s_x = max|x| / 127 and the channel's weight scale s_w.
std::vector<double> product_bound(const Tensor& x, const Tensor& w_float, const quant::QMatrix& q) {
  const int64_t M = x.numel() / q.K;
  std::vector<double> bound(size_t(M * q.N));
  const float *xv = x.data<float>(), *wv = w_float.data<float>();
  for (int64_t m = 0; m < M; ++m) {
    double amax = 0;
    for (int64_t k = 0; k < q.K; ++k) amax = std::max(amax, std::abs(double(xv[m * q.K + k])));
    const double sx = amax / 127;
    for (int64_t n = 0; n < q.N; ++n) {
      double b = 0, sw = q.scale[size_t(n)];
      for (int64_t k = 0; k < q.K; ++k) b += std::abs(xv[m * q.K + k]) * sw / 2 + std::abs(wv[n * q.K + k]) * sx / 2 + sx * sw / 4;
      bound[size_t(m * q.N + n)] = b * (1 + 1e-5) + 1e-6;  // + the float product's own rounding
    }
  }
  return bound;
}

quant::QMatrix* int8_weight(Module& m, const std::string& name) {
  for (auto& [n, q] : quant::named_int8_weights(m))
    if (n == name) return q;
  return nullptr;
}

std::shared_ptr<detail::RecurrentBase> make_layer(int kind, int64_t I, int64_t H, int64_t L) {
  if (kind == 0) return std::make_shared<RNN>(RNNOptions{.input_size = I, .hidden_size = H, .num_layers = L, .seed = 1});
  if (kind == 1) return std::make_shared<LSTM>(LSTMOptions{.input_size = I, .hidden_size = H, .num_layers = L, .seed = 2});
  return std::make_shared<GRU>(GRUOptions{.input_size = I, .hidden_size = H, .num_layers = L, .seed = 3});
}

Tensor sequence(detail::RecurrentBase& layer, const Tensor& x) {
  if (auto* l = dynamic_cast<LSTM*>(&layer)) return l->forward(x).output;
  if (auto* g = dynamic_cast<GRU*>(&layer)) return g->forward(x).output;
  return dynamic_cast<RNN&>(layer).forward(x).output;
}

}  // namespace

TEST_CASE("int8 Linear: within the bound of its scales", "[quant]") {
  NoGradGuard no_grad;
  Generator gen(1);
  Linear lin({.in_features = 37, .out_features = 29, .seed = 2});
  Tensor x = normal({4, 3, 37}, 0, 1, gen), w = lin.weight().clone();
  Tensor ref = lin.forward(x);
  CHECK(quantize_dynamic(lin) == 1);
  CHECK(is_quantized(lin));
  Tensor y = lin.forward(x);
  REQUIRE(y.shape() == ref.shape());
  std::vector<double> bound = product_bound(x, w, *int8_weight(lin, "weight"));
  for (int64_t i = 0; i < y.numel(); ++i) CHECK(std::abs(y.data<float>()[i] - ref.data<float>()[i]) <= bound[size_t(i)]);
  CHECK(quantize_dynamic(lin) == 0);  // already converted
}

TEST_CASE("int8 RNN/LSTM/GRU: a step from zero state within the bound of the scales", "[quant]") {
  NoGradGuard no_grad;
  const int64_t B = 3, I = 40, H = 24;
  for (int kind = 0; kind < 3; ++kind) {
    INFO("kind " << kind << " (RNN, LSTM, GRU)");
    auto layer = make_layer(kind, I, H, 1);
    Generator gen{uint64_t(kind)};
    Tensor x = normal({B, I}, 0, 1, gen), w_ih = layer->parameter("weight_ih_l0").clone();
    Tensor b_hh = layer->parameter("bias_hh_l0").clone();
    StreamState fs = layer->initial_state(B);
    Tensor ref = layer->step(x, fs).clone();
    quantize_dynamic(*layer);
    StreamState qs = layer->initial_state(B);
    Tensor y = layer->step(x, qs);
    // From h = 0 the hidden product is exactly 0 (+ b_hh), so each gate's pre-activation errs by at
    // most e (product_bound); sigmoid's Lipschitz constant 1/4 and tanh's 1 carry it on.
    std::vector<double> e = product_bound(x, w_ih, *int8_weight(*layer, "weight_ih_l0"));
    const int64_t G = detail::gate_count(kind == 0 ? detail::CellKind::rnn_tanh : kind == 1 ? detail::CellKind::lstm : detail::CellKind::gru);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < H; ++j) {
        auto err = [&](int64_t gate) { return e[size_t(b * G * H + gate * H + j)]; };
        double bound = err(0);                                                // RNN: tanh
        if (kind == 1) bound = err(3) / 4 + err(0) / 4 + err(2);              // h = o tanh(i g)
        if (kind == 2) bound = err(1) / 4 + err(2) + err(0) / 4 * std::abs(b_hh.data<float>()[2 * H + j]);  // (1-z) n
        CHECK(std::abs(y.data<float>()[b * H + j] - ref.data<float>()[b * H + j]) <= bound + 1e-6);
      }
  }
}

TEST_CASE("int8 RNN/LSTM/GRU: a stacked sequence stays close; steps equal the int8 forward", "[quant]") {
  NoGradGuard no_grad;
  const int64_t B = 4, I = 32, H = 64, T = 40;
  for (int kind = 0; kind < 3; ++kind) {
    INFO("kind " << kind << " (RNN, LSTM, GRU)");
    auto layer = make_layer(kind, I, H, 2);
    Generator gen{uint64_t(kind + 7)};
    Tensor x = normal({B, T, I}, 0, 1, gen);
    Tensor ref = sequence(*layer, x);
    quantize_dynamic(*layer);
    Tensor y = sequence(*layer, x);
    double max_err = 0, mean_err = 0;
    for (int64_t i = 0; i < y.numel(); ++i) {
      double d = std::abs(y.data<float>()[i] - ref.data<float>()[i]);
      max_err = std::max(max_err, d);
      mean_err += d / double(y.numel());
    }
    INFO("max abs error " << max_err << ", mean " << mean_err);
    CHECK(max_err < 0.03);  // PyTorch's quantize_dynamic LSTM/GRU, H 256/512: 0.007-0.02
    CHECK(mean_err < 0.005);
    StreamState s = layer->initial_state(B);
    for (int64_t t = 0; t < T; ++t) {
      Tensor step = layer->step(select(x, 1, t), s);
      REQUIRE(std::memcmp(step.data<float>(), select(y, 1, t).data<float>(), size_t(B * H) * 4) == 0);
    }
  }
}

TEST_CASE("int8 layers: same outputs on every int8 ISA, bidirectional and time-major", "[quant]") {
  NoGradGuard no_grad;
  GRU gru({.input_size = 19, .hidden_size = 33, .num_layers = 2, .batch_first = false, .bidirectional = true});
  quantize_dynamic(gru);
  Generator gen(4);
  Tensor x = normal({7, 3, 19}, 0, 1, gen);
  const quant::QIsa saved = quant::qisa();
  std::vector<std::vector<float>> outs;
  for (quant::QIsa isa : {quant::QIsa::scalar, quant::QIsa::avx2, quant::QIsa::avx512_vnni}) {
    if (int(isa) > int(quant::best_qisa())) continue;
    quant::set_qisa(isa);
    auto out = gru.forward(x);
    REQUIRE(out.output.shape() == Shape{7, 3, 66});
    std::vector<float> v(out.output.span<float>().begin(), out.output.span<float>().end());
    outs.push_back(v);
  }
  quant::set_qisa(saved);
  for (size_t i = 1; i < outs.size(); ++i) CHECK(outs[i] == outs[0]);
}

TEST_CASE("int8 layers: bidirectional, stacked, both layouts stay close to float (outputs and final states)", "[quant]") {
  NoGradGuard no_grad;
  for (bool batch_first : {true, false}) {
    INFO("batch_first " << batch_first);
    LSTM lstm({.input_size = 12, .hidden_size = 40, .num_layers = 2, .batch_first = batch_first, .bidirectional = true,
               .seed = 8});
    Generator gen(9);
    Tensor x = normal(batch_first ? Shape{3, 25, 12} : Shape{25, 3, 12}, 0, 1, gen);
    const LSTMOutput ref = lstm.forward(x);
    quantize_dynamic(lstm);
    const LSTMOutput q = lstm.forward(x);
    auto max_diff = [](const Tensor& a, const Tensor& b) {
      REQUIRE(a.shape() == b.shape());
      double m = 0;
      for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, double(std::abs(a.data<float>()[i] - b.data<float>()[i])));
      return m;
    };
    CHECK(max_diff(q.output, ref.output) < 0.03);
    CHECK(max_diff(q.h_n, ref.h_n) < 0.03);
    CHECK(max_diff(q.c_n, ref.c_n) < 0.06);
  }
}

TEST_CASE("int8 layers are inference only; conversion errors", "[quant][errors]") {
  Generator gen(5);
  LSTM lstm({.input_size = 3, .hidden_size = 4});
  Linear head({.in_features = 4, .out_features = 1});
  quantize_dynamic(lstm);
  quantize_dynamic(head);
  Tensor loss = head.forward(lstm.forward(uniform({2, 5, 3}, -1, 1, gen)).output).sum();
  CHECK_THROWS_WITH(loss.backward(), Catch::Contains("Linear runs int8 weights") && Catch::Contains("inference only"));
  Tape::current().clear();
  Tensor loss2 = lstm.forward(uniform({2, 5, 3}, -1, 1, gen)).output.sum();
  CHECK_THROWS_WITH(loss2.backward(), Catch::Contains("LSTM runs int8 weights"));
  Tape::current().clear();
  std::vector<int64_t> lengths{5, 3};
  CHECK_THROWS_WITH(lstm.forward(uniform({2, 5, 3}, -1, 1, gen), {}, lengths), Catch::Contains("do not take lengths"));
  CHECK_THROWS_WITH(head.forward(ones({2, 4}, DType::f64)), Catch::Contains("float32"));
  RNN f64({.input_size = 3, .hidden_size = 4, .dtype = DType::f64});
  CHECK_THROWS_WITH(quantize_dynamic(f64), Catch::Contains("weight_ih_l0") && Catch::Contains("float32"));
  CHECK_FALSE(is_quantized(f64));
}

namespace {
struct Tagger : Module {
  explicit Tagger(uint64_t seed) {
    lstm = register_module("lstm", std::make_shared<LSTM>(LSTMOptions{.input_size = 6, .hidden_size = 20, .num_layers = 2, .seed = seed}));
    head = register_module("head", std::make_shared<Linear>(LinearOptions{.in_features = 20, .out_features = 3, .seed = seed + 1}));
  }
  Tensor forward(const Tensor& x) { return head->forward(lstm->forward(x).output); }
  std::shared_ptr<LSTM> lstm;
  std::shared_ptr<Linear> head;
};
}  // namespace

TEST_CASE("int8 models save and load through safetensors: I8 weights, F32 scales", "[quant][io]") {
  NoGradGuard no_grad;
  const std::string path = "test_quant_model.safetensors", float_path = "test_quant_float.safetensors";
  Generator gen(9);
  Tensor x = normal({2, 7, 6}, 0, 1, gen);
  Tagger a(1);
  io::save(a, float_path);
  quantize_dynamic(a);
  io::save(a, path);
  io::TensorFile file = io::load_safetensors(path);
  CHECK(file.int8 == io::Int8Names{"head.weight", "lstm.weight_hh_l0", "lstm.weight_hh_l1", "lstm.weight_ih_l0", "lstm.weight_ih_l1"});
  CHECK(file.at("lstm.weight_ih_l0_scale").shape() == Shape{80});
  CHECK(file.at("lstm.bias_ih_l0").dtype() == DType::f32);

  Tagger b(2);  // other weights, replaced by the file's
  quantize_dynamic(b);
  io::load(b, path);
  CHECK(b.forward(x).to_vector() == a.forward(x).to_vector());

  Tagger float_model(3);
  CHECK_THROWS_WITH(io::load(float_model, path), Catch::Contains("int8 (quantized) weights") && Catch::Contains("quantize_dynamic"));
  CHECK_THROWS_WITH(io::load(b, float_path), Catch::Contains("'lstm.weight_ih_l0' is a float tensor but the model is quantized"));
  CHECK(b.forward(x).to_vector() == a.forward(x).to_vector());  // nothing changed
  std::remove(path.c_str());
  std::remove(float_path.c_str());
}
