// The module system (registration, dotted names, train/eval, to(), load_parameters), the init
// functions and the feed-forward layers: Linear, Embedding, Dropout, activations, Sequential.
#include <catch2/catch.hpp>

#include <cmath>
#include <numbers>

#include "autograd/seqgrad.h"
#include "layers/layers.h"

using namespace seqgrad;

namespace {

std::vector<std::string> names_of(const Module& m) {
  std::vector<std::string> out;
  for (auto& [n, t] : m.named_parameters()) out.push_back(n);
  return out;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector()) m = std::max(m, std::abs(v));
  return m;
}

// A user model: submodules and an own parameter, registered explicitly.
struct Encoder : Module {
  std::shared_ptr<Embedding> embed =
      register_module("embed", std::make_shared<Embedding>(EmbeddingOptions{.num_embeddings = 10, .embedding_dim = 3}));
  std::shared_ptr<LSTM> encoder = register_module(
      "encoder", std::make_shared<LSTM>(LSTMOptions{.input_size = 3, .hidden_size = 4, .num_layers = 2}));
  std::shared_ptr<Dropout> drop = register_module("drop", std::make_shared<Dropout>(DropoutOptions{.p = 0.5}));
  std::shared_ptr<Linear> head =
      register_module("head", std::make_shared<Linear>(LinearOptions{.in_features = 4, .out_features = 2}));
  Tensor scale = register_parameter("scale", ones({2}));
};

}  // namespace

TEST_CASE("named_parameters recurse with PyTorch's dotted names", "[layers][module]") {
  Encoder m;
  std::vector<std::string> expected{"scale",
                                    "embed.weight",
                                    "encoder.weight_ih_l0",
                                    "encoder.weight_hh_l0",
                                    "encoder.bias_ih_l0",
                                    "encoder.bias_hh_l0",
                                    "encoder.weight_ih_l1",
                                    "encoder.weight_hh_l1",
                                    "encoder.bias_ih_l1",
                                    "encoder.bias_hh_l1",
                                    "head.weight",
                                    "head.bias"};
  CHECK(names_of(m) == expected);
  CHECK(m.parameters().size() == expected.size());
  CHECK(m.parameter("encoder.weight_ih_l1").shape() == Shape{16, 4});
  CHECK(m.parameter("head.weight").same(m.head->weight()));
  CHECK(m.num_parameters() == 2 + 30 + (48 + 64 + 32) + (64 + 64 + 32) + 8 + 2);
  for (const Tensor& p : m.parameters()) {
    CHECK(p.requires_grad());
    CHECK(p.is_leaf());
  }
  CHECK_THROWS_WITH(m.parameter("encoder.nope"),
                    Catch::Contains("no parameter named 'encoder.nope'") && Catch::Contains("encoder.weight_hh_l0"));
}

TEST_CASE("registration rejects duplicate and dotted names", "[layers][module]") {
  struct Bad : Module {
    void add(std::string n) { register_parameter(std::move(n), zeros({1})); }
    void add_child(std::string n) { register_module(std::move(n), std::make_shared<ReLU>()); }
  } m;
  m.add("w");
  CHECK_THROWS_WITH(m.add("w"), Catch::Contains("'w' is already registered"));
  CHECK_THROWS_WITH(m.add_child("w"), Catch::Contains("'w' is already registered"));
  CHECK_THROWS_WITH(m.add("a.b"), Catch::Contains("no '.'"));
  CHECK_THROWS_WITH(m.add(""), Catch::Contains("non-empty"));
}

TEST_CASE("a shared submodule's parameters are listed once", "[layers][module]") {
  struct Tied : Module {
    std::shared_ptr<Linear> a =
        register_module("a", std::make_shared<Linear>(LinearOptions{.in_features = 2, .out_features = 2}));
    std::shared_ptr<Linear> b = register_module("b", a);
  } m;
  CHECK(names_of(m) == std::vector<std::string>{"a.weight", "a.bias"});
}

TEST_CASE("zero_grad, train and eval recurse", "[layers][module]") {
  Encoder m;
  for (const Tensor& p : m.parameters()) Tensor(p).set_grad(ones(p.shape()));
  m.zero_grad();
  for (const Tensor& p : m.parameters()) CHECK_FALSE(p.grad().defined());
  CHECK(m.is_training());
  m.eval();
  CHECK_FALSE(m.is_training());
  CHECK_FALSE(m.encoder->is_training());
  CHECK_FALSE(m.drop->is_training());
  m.train();
  CHECK(m.drop->is_training());
}

TEST_CASE("to(f64) converts parameters in place and keeps handles", "[layers][module]") {
  Linear lin({.in_features = 3, .out_features = 2});
  Tensor w = lin.weight();
  std::vector<double> before = w.to_vector();
  Tensor(w).set_grad(ones(w.shape()));
  lin.to(DType::f64);
  CHECK(w.dtype() == DType::f64);
  CHECK(lin.weight().dtype() == DType::f64);
  CHECK(lin.parameters()[0].same(w));
  CHECK(w.to_vector() == before);  // float -> double is exact
  CHECK_FALSE(w.grad().defined());
  CHECK(w.requires_grad());
  Tensor y = lin.forward(ones({4, 3}, DType::f64));
  CHECK(y.dtype() == DType::f64);
  CHECK_THROWS_WITH(lin.forward(ones({4, 3})),
                    Catch::Contains("Linear: input is float32 but the parameters are float64"));
}

TEST_CASE("load_parameters copies by name and reports every problem at once", "[layers][module]") {
  LSTM a({.input_size = 3, .hidden_size = 4, .seed = 1});
  LSTM b({.input_size = 3, .hidden_size = 4, .seed = 2});
  Generator gen(3);
  Tensor x = uniform({2, 5, 3}, -1, 1, gen);
  CHECK_FALSE(allclose(a.forward(x).output, b.forward(x).output));
  LoadReport r = b.load_parameters(a.named_parameters());
  CHECK(r.ok());
  CHECK(allclose(a.forward(x).output, b.forward(x).output, 0, 0));
  CHECK_FALSE(b.parameter("weight_ih_l0").same(a.parameter("weight_ih_l0")));  // values copied, not shared

  // A float64 source is converted.
  NamedTensors src = a.named_parameters();
  for (auto& [n, t] : src) t = t.to(DType::f64);
  CHECK(b.load_parameters(src).ok());

  NamedTensors bad = a.named_parameters();
  bad.erase(bad.begin() + 1);                        // weight_hh_l0 missing
  bad[0].second = zeros({16, 5});                    // weight_ih_l0 wrong shape
  bad.emplace_back("weight_ih_l1", zeros({16, 4}));  // unexpected
  Tensor w_before = b.parameter("bias_ih_l0").clone();
  try {
    b.load_parameters(bad);
    FAIL("no exception");
  } catch (const std::invalid_argument& e) {
    std::string msg = e.what();
    CHECK_THAT(msg, Catch::Contains("nothing was loaded") && Catch::Contains("1 missing: weight_hh_l0") &&
                        Catch::Contains("1 unexpected: weight_ih_l1") &&
                        Catch::Contains("weight_ih_l0: expected (16, 3), got (16, 5)"));
  }
  CHECK(allclose(b.parameter("bias_ih_l0"), w_before, 0, 0));  // strict: all or nothing

  LoadReport loose = b.load_parameters(bad, false);
  CHECK(loose.missing == std::vector<std::string>{"weight_hh_l0"});
  CHECK(loose.unexpected == std::vector<std::string>{"weight_ih_l1"});
  CHECK(loose.shape_mismatch.size() == 1);
  CHECK(allclose(b.parameter("bias_ih_l0"), a.parameter("bias_ih_l0"), 0, 0));  // the rest was loaded
}

TEST_CASE("init functions: PyTorch's bounds and orthogonality", "[layers][init]") {
  Generator gen(11);
  Tensor w = Tensor::empty({64, 100}, DType::f64);
  init::kaiming_uniform_(w, gen, std::sqrt(5.0));
  CHECK(max_abs(w) <= 0.1);  // 1/sqrt(100)
  CHECK(max_abs(w) > 0.099);
  init::xavier_uniform_(w, gen);
  double b = std::sqrt(6.0 / 164.0);
  CHECK(max_abs(w) <= b);
  CHECK(max_abs(w) > 0.99 * b);
  CHECK(init::fans(Tensor::empty({8, 3, 5})) == std::pair<int64_t, int64_t>{15, 40});

  auto check_orthonormal_columns = [](const Tensor& q, int64_t rows, int64_t cols, double gain) {
    auto v = q.to_vector();
    for (int64_t a = 0; a < cols; ++a)
      for (int64_t c = 0; c < cols; ++c) {
        double dot = 0;
        for (int64_t r = 0; r < rows; ++r) dot += v[r * cols + a] * v[r * cols + c];
        CHECK(dot == Approx(a == c ? gain * gain : 0.0).margin(1e-10));
      }
  };
  Tensor tall = Tensor::empty({12, 4}, DType::f64);
  init::orthogonal_(tall, gen, 2.0);
  check_orthonormal_columns(tall, 12, 4, 2.0);
  Tensor wide = Tensor::empty({3, 7}, DType::f64);
  init::orthogonal_(wide, gen);
  check_orthonormal_columns(transpose(wide, 0, 1), 7, 3, 1.0);

  LSTM lstm({.input_size = 3, .hidden_size = 4, .dtype = DType::f64});
  Tensor before = lstm.parameter("weight_ih_l0").clone();
  init::orthogonal_recurrent_(lstm, gen);
  CHECK(allclose(lstm.parameter("weight_ih_l0"), before, 0, 0));  // untouched
  Tensor whh = lstm.parameter("weight_hh_l0");
  for (int g = 0; g < 4; ++g) {
    Tensor block = slice(whh, 0, 4 * g, 4 * g + 4);
    check_orthonormal_columns(block, 4, 4, 1.0);
  }
  CHECK_THROWS_WITH(init::orthogonal_gates_(Tensor::empty({5, 4}), gen), Catch::Contains("(gates * hidden, hidden)"));
}

TEST_CASE("default init: recurrent U(-1/sqrt(H), 1/sqrt(H)), Linear 1/sqrt(in)", "[layers][init]") {
  GRU gru({.input_size = 7, .hidden_size = 16, .num_layers = 2, .bidirectional = true});
  for (auto& [n, t] : gru.named_parameters()) {
    INFO(n);
    CHECK(max_abs(t) <= 0.25);
    CHECK(max_abs(t) > 0.2);  // uses the range
  }
  Linear lin({.in_features = 25, .out_features = 30});
  CHECK(max_abs(lin.weight()) <= 0.2);
  CHECK(max_abs(lin.weight()) > 0.19);
  CHECK(max_abs(lin.bias()) <= 0.2);
  // Seeded: same seed, same values; another seed, other values.
  Linear same({.in_features = 25, .out_features = 30}), other({.in_features = 25, .out_features = 30, .seed = 1});
  CHECK(allclose(lin.weight(), same.weight(), 0, 0));
  CHECK_FALSE(allclose(lin.weight(), other.weight()));
}

TEST_CASE("Linear applies to the last axis of any rank", "[layers][linear]") {
  Linear lin({.in_features = 3, .out_features = 2, .dtype = DType::f64});
  Generator gen(5);
  Tensor x = uniform({4, 5, 3}, -1, 1, gen, DType::f64);
  Tensor y = lin.forward(x);
  REQUIRE(y.shape() == Shape{4, 5, 2});
  Tensor row = lin.forward(select(select(x, 0, 2), 0, 3));  // (3,) -> (2,)
  CHECK(allclose(select(select(y, 0, 2), 0, 3), row, 1e-12));
  auto w = lin.weight().to_vector(), bias = lin.bias().to_vector(), xv = x.to_vector();
  double expect = bias[1];
  for (int i = 0; i < 3; ++i) expect += w[3 + i] * xv[i];
  CHECK(y.to_vector()[1] == Approx(expect).epsilon(1e-12));
  CHECK_THROWS_WITH(lin.forward(ones({4, 5}, DType::f64)),
                    Catch::Contains("Linear: input must have shape (..., 3) (in_features = 3), got (4, 5)"));
  Linear nobias({.in_features = 3, .out_features = 2, .bias = false});
  CHECK(names_of(nobias) == std::vector<std::string>{"weight"});
  GradcheckResult r = gradcheck([&](const std::vector<Tensor>& in) { return lin.forward(in[0]); },
                                {x.requires_grad_(), lin.weight(), lin.bias()});
  INFO(r.summary());
  CHECK(r.ok);
}

TEST_CASE("Embedding looks up rows and accumulates their gradient", "[layers][embedding]") {
  Embedding emb({.num_embeddings = 5, .embedding_dim = 3, .dtype = DType::f64});
  std::vector<int64_t> ids{4, 0, 4, 2, 1, 1};
  Tensor y = emb.forward(ids, {2, 3});
  REQUIRE(y.shape() == Shape{2, 3, 3});
  CHECK(allclose(select(select(y, 0, 0), 0, 0), select(emb.weight(), 0, 4), 0, 0));
  sum(y).backward();
  auto g = emb.weight().grad().to_vector();
  std::vector<double> per_row{1, 2, 1, 0, 2};  // occurrences
  for (int v = 0; v < 5; ++v)
    for (int d = 0; d < 3; ++d) CHECK(g[v * 3 + d] == per_row[v]);
  CHECK(emb.forward(std::vector<int64_t>{1, 2}).shape() == Shape{2, 3});
  CHECK_THROWS_WITH(emb.forward(std::vector<int64_t>{1, 5}),
                    Catch::Contains("Embedding: index 5 at position 1 is out of range [0, 5)"));
}

TEST_CASE("Dropout: seeded, scaled, identity in eval", "[layers][dropout]") {
  Dropout drop({.p = 0.25, .seed = 9});
  Tensor x = ones({100, 100});
  Tensor y = drop.forward(x);
  int zeros_count = 0;
  for (double v : y.to_vector()) {
    if (v == 0)
      ++zeros_count;
    else
      CHECK(v == Approx(1 / 0.75));
  }
  CHECK(zeros_count > 2200);
  CHECK(zeros_count < 2800);
  Dropout again({.p = 0.25, .seed = 9});
  CHECK(allclose(again.forward(x), y, 0, 0));       // same seed, same mask
  CHECK_FALSE(allclose(drop.forward(x), y, 0, 0));  // the generator advances
  drop.eval();
  CHECK(drop.forward(x).same(x));
  CHECK(Dropout({.p = 0}).forward(x).same(x));
  CHECK(max_abs(Dropout({.p = 1}).forward(x)) == 0);
  CHECK_THROWS_WITH(Dropout({.p = 1.5}), Catch::Contains("Dropout: probability p must be in [0, 1], got 1.5"));

  // The gradient flows through the kept elements only, scaled.
  Tensor xg = ones({3, 4}).requires_grad_();
  Dropout d2({.p = 0.5, .seed = 1});
  Tensor out = d2.forward(xg);
  sum(out).backward();
  CHECK(xg.grad().to_vector() == out.to_vector());
}

TEST_CASE("activations: functions, modules and gradients", "[layers][activation]") {
  Tensor x = tensor({-2.0, -0.5, 0.3, 1.7}, DType::f64);
  auto v = x.to_vector();
  auto lr = leaky_relu(x, 0.1).to_vector();
  auto si = silu(x).to_vector();
  auto ge = gelu(x).to_vector();
  for (int i = 0; i < 4; ++i) {
    CHECK(lr[i] == Approx(v[i] > 0 ? v[i] : 0.1 * v[i]).epsilon(1e-14));
    CHECK(si[i] == Approx(v[i] / (1 + std::exp(-v[i]))).epsilon(1e-14));
    double c = std::sqrt(2 / std::numbers::pi);
    CHECK(ge[i] == Approx(0.5 * v[i] * (1 + std::tanh(c * (v[i] + 0.044715 * v[i] * v[i] * v[i])))).epsilon(1e-14));
  }
  CHECK(allclose(LeakyReLU(0.1).forward(x), leaky_relu(x, 0.1), 0, 0));
  CHECK(allclose(GELU().forward(x), gelu(x), 0, 0));
  CHECK(allclose(SiLU().forward(x), silu(x), 0, 0));
  CHECK(allclose(Tanh().forward(x), tanh(x), 0, 0));
  CHECK(allclose(Sigmoid().forward(x), sigmoid(x), 0, 0));
  CHECK(allclose(ReLU().forward(x), relu(x), 0, 0));
  for (auto f : {+[](const Tensor& t) { return leaky_relu(t, 0.2); }, +[](const Tensor& t) { return silu(t); },
                 +[](const Tensor& t) { return gelu(t); }}) {
    GradcheckResult r =
        gradcheck([&](const std::vector<Tensor>& in) { return f(in[0]); }, {x.clone().requires_grad_()});
    INFO(r.summary());
    CHECK(r.ok);
  }
}

TEST_CASE("Sequential chains modules and names them 0, 1, ...", "[layers][sequential]") {
  auto lin1 = std::make_shared<Linear>(LinearOptions{.in_features = 3, .out_features = 4, .dtype = DType::f64});
  auto lin2 =
      std::make_shared<Linear>(LinearOptions{.in_features = 4, .out_features = 2, .dtype = DType::f64, .seed = 1});
  Sequential mlp(lin1, std::make_shared<Tanh>(), lin2);
  CHECK(mlp.size() == 3);
  CHECK(names_of(mlp) == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  Generator gen(2);
  Tensor x = uniform({5, 3}, -1, 1, gen, DType::f64);
  CHECK(allclose(mlp.forward(x), lin2->forward(tanh(lin1->forward(x))), 0, 0));

  // A recurrent layer passes its per-step output on.
  Sequential seq;
  auto gru = std::make_shared<GRU>(GRUOptions{.input_size = 3, .hidden_size = 4, .dtype = DType::f64});
  seq.push_back(gru).push_back(
      std::make_shared<Linear>(LinearOptions{.in_features = 4, .out_features = 1, .dtype = DType::f64}));
  Tensor xs = uniform({2, 6, 3}, -1, 1, gen, DType::f64);
  CHECK(seq.forward(xs).shape() == Shape{2, 6, 1});
  CHECK(names_of(seq)[0] == "0.weight_ih_l0");
  CHECK(seq[0] == gru);
}
