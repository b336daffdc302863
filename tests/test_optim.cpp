// Optimizer update rules against float64 references written out from the torch.optim
// documentation's pseudo-code, one scalar at a time, for every optimizer and option: three steps
// on two small parameters (11 and 3x7 values: SIMD tails on every instruction set), float64 to
// 1e-12 and float32 to 1e-5. Plus checkpoints (state / load_state), skipped parameters, and bad
// configurations.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <map>
#include <memory>

#include "autograd/seqgrad.h"
#include "optim/optim.h"
#include "optim/update_impl.hpp"

using namespace seqgrad;
using namespace seqgrad::optim;

namespace {

using Vec = std::vector<double>;

// One parameter's reference state: the step count and buffers by their PyTorch names.
struct Ref {
  int64_t t = 0;
  std::map<std::string, Vec> buf;
  Vec& operator[](const std::string& name) { return buf[name]; }
};
using RefStep = std::function<void(Ref&, Vec& p, const Vec& g)>;

Vec zeros_of(size_t n) { return Vec(n, 0.0); }

// ---- The published algorithms, written out.
RefStep sgd_ref(SGDOptions o) {
  return [o](Ref& r, Vec& p, const Vec& grad) {
    r.t += 1;
    Vec& b = r["momentum_buffer"];
    if (b.empty()) b = zeros_of(p.size());
    for (size_t i = 0; i < p.size(); ++i) {
      double g = grad[i];
      if (o.weight_decay != 0) g = g + o.weight_decay * p[i];
      if (o.momentum != 0) {
        if (r.t > 1)
          b[i] = o.momentum * b[i] + (1 - o.dampening) * g;
        else
          b[i] = g;
        g = o.nesterov ? g + o.momentum * b[i] : b[i];
      }
      p[i] = p[i] - o.lr * g;
    }
    if (o.momentum == 0) r.buf.erase("momentum_buffer");
  };
}

RefStep adam_ref(AdamOptions o, bool decoupled) {
  return [o, decoupled](Ref& r, Vec& p, const Vec& grad) {
    r.t += 1;
    const double b1 = o.betas[0], b2 = o.betas[1];
    Vec &m = r["exp_avg"], &v = r["exp_avg_sq"];
    if (m.empty()) m = v = zeros_of(p.size());
    Vec* vmax = nullptr;
    if (o.amsgrad) {
      vmax = &r["max_exp_avg_sq"];
      if (vmax->empty()) *vmax = zeros_of(p.size());
    }
    for (size_t i = 0; i < p.size(); ++i) {
      double g = grad[i];
      if (decoupled)
        p[i] = p[i] - o.lr * o.weight_decay * p[i];
      else if (o.weight_decay != 0)
        g = g + o.weight_decay * p[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      double m_hat = m[i] / (1 - std::pow(b1, double(r.t)));
      double v_hat;
      if (vmax) {
        (*vmax)[i] = std::max((*vmax)[i], v[i]);
        v_hat = (*vmax)[i] / (1 - std::pow(b2, double(r.t)));
      } else {
        v_hat = v[i] / (1 - std::pow(b2, double(r.t)));
      }
      p[i] = p[i] - o.lr * m_hat / (std::sqrt(v_hat) + o.eps);
    }
  };
}

RefStep rmsprop_ref(RMSpropOptions o) {
  return [o](Ref& r, Vec& p, const Vec& grad) {
    r.t += 1;
    Vec& v = r["square_avg"];
    if (v.empty()) v = zeros_of(p.size());
    Vec *b = nullptr, *g_ave = nullptr;
    if (o.momentum > 0) {
      b = &r["momentum_buffer"];
      if (b->empty()) *b = zeros_of(p.size());
    }
    if (o.centered) {
      g_ave = &r["grad_avg"];
      if (g_ave->empty()) *g_ave = zeros_of(p.size());
    }
    for (size_t i = 0; i < p.size(); ++i) {
      double g = grad[i];
      if (o.weight_decay != 0) g = g + o.weight_decay * p[i];
      v[i] = o.alpha * v[i] + (1 - o.alpha) * g * g;
      double v_tilde = v[i];
      if (g_ave) {
        (*g_ave)[i] = (*g_ave)[i] * o.alpha + (1 - o.alpha) * g;
        v_tilde = v_tilde - (*g_ave)[i] * (*g_ave)[i];
      }
      if (b) {
        (*b)[i] = o.momentum * (*b)[i] + g / (std::sqrt(v_tilde) + o.eps);
        p[i] = p[i] - o.lr * (*b)[i];
      } else {
        p[i] = p[i] - o.lr * g / (std::sqrt(v_tilde) + o.eps);
      }
    }
  };
}

RefStep adagrad_ref(AdagradOptions o) {
  return [o](Ref& r, Vec& p, const Vec& grad) {
    r.t += 1;
    Vec& sum = r["sum"];
    if (sum.empty()) sum = Vec(p.size(), o.initial_accumulator_value);
    double lr_t = o.lr / (1 + double(r.t - 1) * o.lr_decay);
    for (size_t i = 0; i < p.size(); ++i) {
      double g = grad[i];
      if (o.weight_decay != 0) g = g + o.weight_decay * p[i];
      sum[i] = sum[i] + g * g;
      p[i] = p[i] - lr_t * g / (std::sqrt(sum[i]) + o.eps);
    }
  };
}

struct StepCase {
  std::string name;
  std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)> make;
  RefStep ref;
  bool counts_steps = true;
};

template <class Opt, class Options> std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)> maker(Options o) {
  return [o](std::vector<Tensor> ps) { return std::make_unique<Opt>(std::move(ps), o); };
}

std::vector<StepCase> step_cases() {
  std::vector<StepCase> c;
  auto sgd = [&](std::string name, SGDOptions o) { c.push_back({"SGD " + name, maker<SGD>(o), sgd_ref(o), false}); };
  sgd("plain", {.lr = 0.1});
  sgd("momentum", {.lr = 0.1, .momentum = 0.9});
  sgd("momentum dampening", {.lr = 0.1, .momentum = 0.9, .dampening = 0.3});
  sgd("nesterov", {.lr = 0.1, .momentum = 0.8, .nesterov = true});
  sgd("weight_decay", {.lr = 0.1, .weight_decay = 0.05});
  sgd("momentum weight_decay", {.lr = 0.05, .momentum = 0.5, .weight_decay = 0.1});
  auto adam = [&](std::string name, AdamOptions o) {
    c.push_back({"Adam " + name, maker<Adam>(o), adam_ref(o, false)});
  };
  adam("default", {.lr = 0.1});
  adam("betas eps", {.lr = 0.13, .betas = {0.5, 0.7}, .eps = 1e-3});
  adam("weight_decay", {.lr = 0.1, .weight_decay = 0.2});
  adam("amsgrad", {.lr = 0.1, .betas = {0.8, 0.6}, .amsgrad = true});
  adam("amsgrad weight_decay", {.lr = 0.1, .betas = {0.9, 0.5}, .weight_decay = 0.1, .amsgrad = true});
  auto adamw = [&](std::string name, AdamWOptions o) {
    AdamOptions a{.lr = o.lr, .betas = o.betas, .eps = o.eps, .weight_decay = o.weight_decay, .amsgrad = o.amsgrad};
    c.push_back({"AdamW " + name, maker<AdamW>(o), adam_ref(a, true)});
  };
  adamw("default", {.lr = 0.1});
  adamw("weight_decay", {.lr = 0.1, .weight_decay = 0.3});
  adamw("amsgrad", {.lr = 0.1, .betas = {0.8, 0.6}, .weight_decay = 0.1, .amsgrad = true});
  auto rms = [&](std::string name, RMSpropOptions o) {
    c.push_back({"RMSprop " + name, maker<RMSprop>(o), rmsprop_ref(o)});
  };
  rms("default", {});
  rms("alpha eps", {.lr = 0.05, .alpha = 0.8, .eps = 1e-2});
  rms("weight_decay", {.lr = 0.05, .weight_decay = 0.1});
  rms("momentum", {.lr = 0.02, .momentum = 0.9});
  rms("centered", {.lr = 0.02, .alpha = 0.9, .centered = true});
  rms("centered momentum", {.lr = 0.02, .alpha = 0.9, .weight_decay = 0.05, .momentum = 0.5, .centered = true});
  auto ada = [&](std::string name, AdagradOptions o) {
    c.push_back({"Adagrad " + name, maker<Adagrad>(o), adagrad_ref(o)});
  };
  ada("default", {.lr = 0.1});
  ada("lr_decay", {.lr = 0.1, .lr_decay = 0.5});
  ada("weight_decay", {.lr = 0.1, .weight_decay = 0.2});
  ada("initial_accumulator_value eps", {.lr = 0.1, .initial_accumulator_value = 0.3, .eps = 1e-3});
  return c;
}

// Parameter initial values and the gradient at step t: g = w*p + u*s_t, so the gradient depends
// on the parameter (weight decay and momentum interact with it) and shrinks at step 3 (amsgrad's
// max takes over).
Vec initial_values(size_t n, double phase) {
  Vec v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::sin(1.3 * double(i) + phase) * 1.5;
  return v;
}
Vec gradient_at(const Vec& p, int t) {
  const double s[] = {1.0, -0.6, 0.02};
  Vec g(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    double w = 0.5 + 0.1 * double(i % 5), u = std::cos(0.7 * double(i)) * 2.0;
    g[i] = w * p[i] + u * s[t - 1];
  }
  return g;
}

}  // namespace

TEST_CASE("each optimizer and option matches its published update rule for three steps", "[optim]") {
  auto c = GENERATE(from_range(step_cases()));
  auto dtype = GENERATE(DType::f64, DType::f32);
  INFO(c.name << " " << dtype_name(dtype));
  const double tol = dtype == DType::f64 ? 1e-12 : 2e-5;

  std::vector<Shape> shapes{{11}, {3, 7}};
  std::vector<Tensor> params;
  std::vector<Vec> ref_p;
  for (size_t k = 0; k < shapes.size(); ++k) {
    Vec v = initial_values(size_t(shapes[k].numel()), double(k));
    if (dtype == DType::f32)  // the reference starts from the same (rounded) values
      for (double& x : v) x = double(float(x));
    params.push_back(from_vector(v, shapes[k], dtype).requires_grad_());
    ref_p.push_back(v);
  }
  std::vector<Ref> ref(shapes.size());
  auto opt = c.make(params);

  for (int t = 1; t <= 3; ++t) {
    for (size_t k = 0; k < params.size(); ++k) {
      // The gradient from the optimizer's current parameter values.
      Vec g = gradient_at(params[k].to_vector(), t);
      if (dtype == DType::f32)
        for (double& x : g) x = double(float(x));
      params[k].set_grad(from_vector(g, shapes[k], dtype));
      c.ref(ref[k], ref_p[k], g);
    }
    opt->step();
    for (size_t k = 0; k < params.size(); ++k) {
      Vec got = params[k].to_vector();
      for (size_t i = 0; i < got.size(); ++i) {
        INFO("step " << t << " parameter " << k << " element " << i);
        CHECK(got[i] == Approx(ref_p[k][i]).epsilon(tol).margin(tol * 1e-3));
      }
    }
  }

  // The state is exposed under PyTorch's names and holds the reference's values.
  NamedTensors state = opt->state();
  std::map<std::string, Tensor> by_name(state.begin(), state.end());
  CHECK(by_name.at("lr").item() == opt->lr());
  for (size_t k = 0; k < params.size(); ++k) {
    if (c.counts_steps) CHECK(by_name.at(fmt::format("{}.step", k)).item() == 3.0);
    CHECK(by_name.count(fmt::format("{}.step", k)) == size_t(c.counts_steps));
    for (auto& [name, values] : ref[k].buf) {
      std::string key = fmt::format("{}.{}", k, name);
      INFO(key);
      REQUIRE(by_name.count(key) == 1);
      Vec got = by_name.at(key).to_vector();
      REQUIRE(got.size() == values.size());
      for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == Approx(values[i]).epsilon(tol).margin(tol * 1e-3));
    }
    CHECK(opt->buffer_names().size() == ref[k].buf.size());
  }
}

TEST_CASE("amsgrad's max actually differs from the plain second moment in the step test", "[optim]") {
  // Guards the test above: with these gradients the amsgrad branch must change something.
  AdamOptions o{.lr = 0.1, .betas = {0.8, 0.6}, .amsgrad = true};
  Ref r;
  Vec p = initial_values(11, 0);
  for (int t = 1; t <= 3; ++t) adam_ref(o, false)(r, p, gradient_at(p, t));
  int differs = 0;
  for (size_t i = 0; i < 11; ++i) differs += r["max_exp_avg_sq"][i] > r["exp_avg_sq"][i];
  CHECK(differs > 5);
}

TEST_CASE("every instruction set computes the same updates", "[optim][simd]") {
  // Calls each ISA's instantiation directly (not through the dispatcher), n = 37 for tails.
  using namespace seqgrad::optim::kernels;
  const int64_t n = 37;
  Vec p0 = initial_values(n, 0.3), g = gradient_at(p0, 1), s0(n), s1(n), s2(n);
  for (int64_t i = 0; i < n; ++i) {
    s0[i] = 0.1 + 0.01 * double(i);
    s1[i] = 0.05 * std::sin(double(i));
    s2[i] = 0.2 - 0.002 * double(i);
  }
  auto run = [&](auto arch) {
    std::vector<Vec> out;
    Vec p = p0, a = s0, b = s1, c = s2;
    adam_kernel{}(arch, p.data(), g.data(), b.data(), a.data(), c.data(), n,
                  AdamArgs<double>{0.99, 0, 0.9, 0.1, 0.99, 0.01, 0.3, 0.5, 1e-8, true});
    out.push_back(p), out.push_back(a), out.push_back(b), out.push_back(c);
    p = p0, a = s0, b = s1, c = s2;
    rmsprop_kernel{}(arch, p.data(), g.data(), a.data(), b.data(), c.data(), n,
                     RmspropArgs<double>{0.01, 0.9, 0.1, 1e-8, 0.1, 0.5, true});
    out.push_back(p), out.push_back(a), out.push_back(b), out.push_back(c);
    p = p0, a = s0;
    sgd_kernel{}(arch, p.data(), g.data(), a.data(), n, SgdArgs<double>{0.1, 0.01, 0.9, 1.0, true, false});
    out.push_back(p), out.push_back(a);
    p = p0, a = s0;
    adagrad_kernel{}(arch, p.data(), g.data(), a.data(), n, AdagradArgs<double>{0.1, 1e-10, 0.01});
    out.push_back(p), out.push_back(a);
    p = g;
    clamp_kernel{}(arch, p.data(), -0.5, 0.5, n);
    out.push_back(p);
    for (int mode = 0; mode < 4; ++mode) out.push_back({norm_kernel{}(arch, g.data(), n, mode, 3.0)});
    return out;
  };
  auto base = run(xsimd::sse2{});
  auto compare = [&](const std::vector<Vec>& other, const char* name) {
    INFO(name);
    REQUIRE(other.size() == base.size());
    for (size_t k = 0; k < base.size(); ++k)
      for (size_t i = 0; i < base[k].size(); ++i) {
        INFO("output " << k << " element " << i);
        CHECK(other[k][i] == Approx(base[k][i]).epsilon(1e-13).margin(1e-15));
      }
  };
  auto avail = xsimd::available_architectures();
  if (avail.fma3_avx2) compare(run(xsimd::fma3<xsimd::avx2>{}), "fma3<avx2>");
  if (avail.avx512bw) compare(run(xsimd::avx512bw{}), "avx512bw");
}

TEST_CASE("parameters without a gradient are skipped and keep no state", "[optim]") {
  Tensor a = tensor({1.0, 2.0, 3.0}, DType::f64).requires_grad_();
  Tensor b = tensor({4.0, 5.0}, DType::f64).requires_grad_();
  Adam opt({a, b}, {.lr = 0.1});
  a.set_grad(tensor({0.5, -0.5, 1.0}, DType::f64));
  opt.step();
  opt.step();
  CHECK(b.to_vector() == Vec{4.0, 5.0});
  CHECK(opt.param_state(0).step == 2);
  CHECK_FALSE(opt.param_state(1).started);
  for (auto& [name, t] : opt.state()) CHECK(name.rfind("1.", 0) != 0);
  // b's first gradient starts b's own step count at 1 (per-parameter bias correction).
  b.set_grad(tensor({1.0, 1.0}, DType::f64));
  opt.step();
  CHECK(opt.param_state(0).step == 3);
  CHECK(opt.param_state(1).step == 1);
  // Step 1 of Adam moves each element by lr * sign(g) (m_hat = g, v_hat = g^2).
  CHECK(b.to_vector()[0] == Approx(3.9).epsilon(1e-7));
}

TEST_CASE("zero_grad drops gradients, or zero-fills them in place", "[optim]") {
  Tensor a = tensor({1.0, 2.0}, DType::f64).requires_grad_();
  SGD opt({a}, {.lr = 0.1});
  sum(a * a).backward();
  Tensor g = a.grad();
  REQUIRE(g.defined());
  opt.zero_grad(false);
  CHECK(a.grad().same(g));
  CHECK(a.grad().to_vector() == Vec{0.0, 0.0});
  sum(a * a).backward();  // accumulates into the kept storage
  CHECK(a.grad().same(g));
  CHECK(a.grad().to_vector() == Vec{2.0, 4.0});
  opt.zero_grad();
  CHECK_FALSE(a.grad().defined());
}

TEST_CASE("an optimizer restored from state() continues bit for bit", "[optim][checkpoint]") {
  auto c = GENERATE(from_range(step_cases()));
  INFO(c.name);
  auto make_params = [] {
    return std::vector<Tensor>{from_vector(initial_values(11, 0), {11}, DType::f64).requires_grad_(),
                               from_vector(initial_values(6, 1), {2, 3}, DType::f32).requires_grad_()};
  };
  auto pa = make_params(), pb = make_params();
  auto a = c.make(pa), b = c.make(pb);
  auto set_grads = [](std::vector<Tensor>& ps, int t) {
    for (auto& p : ps) p.set_grad(from_vector(gradient_at(p.to_vector(), t), p.shape(), p.dtype()));
  };
  for (int t = 1; t <= 2; ++t) {
    set_grads(pa, t);
    a->step();
  }
  NamedTensors ckpt;  // a snapshot, as a checkpoint file would hold
  for (auto& [name, t] : a->state()) ckpt.emplace_back(name, t.clone());
  for (size_t k = 0; k < pa.size(); ++k) pb[k].copy_(pa[k]);
  a->set_lr(a->lr() * 0.5);
  ckpt[0].second.fill_(a->lr());  // "lr" comes first
  b->load_state(ckpt);
  CHECK(b->lr() == a->lr());
  set_grads(pa, 3);
  set_grads(pb, 3);
  a->step();
  b->step();
  for (size_t k = 0; k < pa.size(); ++k) CHECK(pa[k].to_vector() == pb[k].to_vector());
  auto sa = a->state(), sb = b->state();
  REQUIRE(sa.size() == sb.size());
  for (size_t k = 0; k < sa.size(); ++k) {
    CHECK(sa[k].first == sb[k].first);
    CHECK(sa[k].second.to_vector() == sb[k].second.to_vector());
    CHECK(sa[k].second.dtype() == sb[k].second.dtype());
  }
}

TEST_CASE("load_state rejects bad checkpoints with a clear message and changes nothing", "[optim][checkpoint]") {
  Tensor a = tensor({1.0, 2.0, 3.0}, DType::f64).requires_grad_();
  Tensor b = tensor({4.0, 5.0, 6.0, 7.0}, {2, 2}, DType::f64).requires_grad_();
  Adam opt({a, b}, {.lr = 0.1});
  a.set_grad(tensor({1.0, 1.0, 1.0}, DType::f64));
  b.set_grad(tensor({1.0, 1.0, 1.0, 1.0}, {2, 2}, DType::f64));
  opt.step();
  NamedTensors good = opt.state();
  auto with = [&](std::string name, Tensor t) {
    NamedTensors s = good;
    for (auto& e : s)
      if (e.first == name) {
        e.second = t;
        return s;
      }
    s.emplace_back(name, t);
    return s;
  };
  auto without = [&](std::string name) {
    NamedTensors s;
    for (auto& e : good)
      if (e.first != name) s.push_back(e);
    return s;
  };
  using Catch::Contains;
  CHECK_THROWS_WITH(
      opt.load_state(with("0.exp_avg", zeros({4}, DType::f64))),
      Contains("Adam::load_state") && Contains("'0.exp_avg' has shape (4,) but parameter 0 has shape (3,)"));
  CHECK_THROWS_WITH(opt.load_state(with("0.max_exp_avg_sq", zeros({3}, DType::f64))),
                    Contains("unknown entry '0.max_exp_avg_sq'") && Contains("step, exp_avg, exp_avg_sq"));
  CHECK_THROWS_WITH(opt.load_state(with("2.exp_avg", zeros({3}, DType::f64))),
                    Contains("names parameter 2, but there are 2 parameters"));
  CHECK_THROWS_WITH(opt.load_state(with("momentum", zeros({3}, DType::f64))), Contains("unknown entry 'momentum'"));
  CHECK_THROWS_WITH(opt.load_state(without("1.exp_avg_sq")), Contains("parameter 1") && Contains("'1.exp_avg_sq'"));
  CHECK_THROWS_WITH(opt.load_state(with("0.step", full({}, 1.5, DType::f64))), Contains("not a step count"));
  CHECK_THROWS_WITH(opt.load_state(with("lr", full({}, -1.0, DType::f64))), Contains("'lr' is -1"));
  NamedTensors twice = good;
  twice.push_back(good[1]);
  CHECK_THROWS_WITH(opt.load_state(twice), Contains("appears twice"));
  // Nothing changed: the state is still the live one from the step.
  CHECK(opt.param_state(0).step == 1);
  CHECK(opt.param_state(0).buffers[0].same(good[1 + 1].second));
  // An empty checkpoint (nothing but the lr) resets every parameter's state.
  opt.load_state({{"lr", full({}, 0.05, DType::f64)}});
  CHECK(opt.lr() == 0.05);
  CHECK_FALSE(opt.param_state(0).started);
}

TEST_CASE("bad optimizer configurations throw with a clear message", "[optim][config]") {
  using Catch::Contains;
  auto ps = [] { return std::vector<Tensor>{zeros({3}).requires_grad_()}; };
  CHECK_THROWS_WITH(SGD({}, {.lr = 0.1}), "SGD: got an empty parameter list");
  CHECK_THROWS_WITH(Adam({}), "Adam: got an empty parameter list");
  CHECK_THROWS_WITH(AdamW({}), "AdamW: got an empty parameter list");
  CHECK_THROWS_WITH(RMSprop({}), "RMSprop: got an empty parameter list");
  CHECK_THROWS_WITH(Adagrad({}), "Adagrad: got an empty parameter list");
  CHECK_THROWS_WITH(SGD(ps(), {.lr = -0.1}), "SGD: invalid learning rate -0.1 (must be >= 0)");
  CHECK_THROWS_WITH(Adam(ps(), {.lr = -1}), Contains("Adam: invalid learning rate -1"));
  CHECK_THROWS_WITH(AdamW(ps(), {.lr = -1}), Contains("AdamW: invalid learning rate -1"));
  CHECK_THROWS_WITH(RMSprop(ps(), {.lr = -1}), Contains("RMSprop: invalid learning rate -1"));
  CHECK_THROWS_WITH(Adagrad(ps(), {.lr = -1}), Contains("Adagrad: invalid learning rate -1"));
  CHECK_THROWS_WITH(Adam(ps(), {.lr = std::nan("")}), Contains("invalid learning rate nan"));
  CHECK_THROWS_WITH(Adam(ps(), {.betas = {1.0, 0.999}}),
                    "Adam: invalid beta parameter at index 0: 1 (must be in [0, 1))");
  CHECK_THROWS_WITH(Adam(ps(), {.betas = {0.9, -0.1}}), Contains("invalid beta parameter at index 1: -0.1"));
  CHECK_THROWS_WITH(AdamW(ps(), {.betas = {0.9, 1.5}}), Contains("AdamW: invalid beta parameter at index 1: 1.5"));
  CHECK_THROWS_WITH(Adam(ps(), {.eps = 0}), "Adam: invalid epsilon 0 (must be > 0)");
  CHECK_THROWS_WITH(AdamW(ps(), {.eps = -1e-8}), Contains("AdamW: invalid epsilon -1e-08"));
  CHECK_THROWS_WITH(RMSprop(ps(), {.eps = 0}), Contains("RMSprop: invalid epsilon 0"));
  CHECK_THROWS_WITH(Adagrad(ps(), {.eps = 0}), Contains("Adagrad: invalid epsilon 0"));
  CHECK_THROWS_WITH(Adam(ps(), {.weight_decay = -1}), Contains("Adam: invalid weight_decay -1"));
  CHECK_THROWS_WITH(SGD(ps(), {.momentum = -0.5}), Contains("SGD: invalid momentum -0.5"));
  CHECK_THROWS_WITH(SGD(ps(), {.lr = 0.1, .nesterov = true}), Contains("nesterov momentum requires momentum > 0"));
  CHECK_THROWS_WITH(SGD(ps(), {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}),
                    Contains("dampening == 0"));
  CHECK_THROWS_WITH(RMSprop(ps(), {.alpha = 1.5}), Contains("RMSprop: invalid alpha 1.5"));
  CHECK_THROWS_WITH(RMSprop(ps(), {.momentum = -1}), Contains("RMSprop: invalid momentum -1"));
  CHECK_THROWS_WITH(Adagrad(ps(), {.lr_decay = -1}), Contains("Adagrad: invalid lr_decay -1"));
  CHECK_THROWS_WITH(Adagrad(ps(), {.initial_accumulator_value = -1}), Contains("invalid initial_accumulator_value -1"));
  // The parameter list itself.
  Tensor p = zeros({3}).requires_grad_();
  CHECK_THROWS_WITH(SGD({p, p}), "SGD: parameter 1 is the same tensor as parameter 0");
  CHECK_THROWS_WITH(SGD({p, Tensor()}), "SGD: parameter 1 is an undefined Tensor");
  CHECK_THROWS_WITH(SGD({p * 2.0}), Contains("SGD: parameter 0 (shape (3,)) is not a leaf tensor"));
  Tape::current().clear();
  // And the learning rate a scheduler sets.
  SGD opt(ps(), {.lr = 0.1});
  CHECK_THROWS_WITH(opt.set_lr(-0.01), "SGD: invalid learning rate -0.01 (must be >= 0)");
  CHECK(opt.lr() == 0.1);
}
