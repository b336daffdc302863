// Files written by PyTorch (tests/data/make_pytorch_rnns.py): torch.nn.RNN/LSTM/GRU/Linear weights
// load by their state_dict names into seqgrad's layers, which then reproduce PyTorch's outputs;
// F64/F16/BF16 tensors decode to PyTorch's own float32 values; and what seqgrad writes back has
// the same names, shapes and bits.
#include <catch2/catch.hpp>

#include <cmath>

#include "autograd/seqgrad.h"
#include "io/checkpoint.h"
#include "layers/layers.h"
#include "test_io_util.h"

using namespace seqgrad;
using namespace seqgrad::io;

namespace {

const std::string kData = std::string(SEQGRAD_SOURCE_DIR) + "/tests/data/";

// The Net of make_pytorch_rnns.py, in seqgrad.
struct Net : Module {
  std::shared_ptr<RNN> rnn = register_module("rnn", std::make_shared<RNN>(RNNOptions{.input_size = 3, .hidden_size = 4}));
  std::shared_ptr<LSTM> lstm = register_module(
      "lstm", std::make_shared<LSTM>(LSTMOptions{.input_size = 3, .hidden_size = 4, .num_layers = 2, .bidirectional = true}));
  std::shared_ptr<GRU> gru = register_module("gru", std::make_shared<GRU>(GRUOptions{.input_size = 3, .hidden_size = 5}));
  std::shared_ptr<Linear> head =
      register_module("head", std::make_shared<Linear>(LinearOptions{.in_features = 5, .out_features = 2}));
};

void check_close(const Tensor& ours, const Tensor& torch, const char* what) {
  INFO(what << ": ours " << fmt::format("{}", ours) << "\ntorch " << fmt::format("{}", torch));
  REQUIRE(ours.shape() == torch.shape());
  CHECK(allclose(ours, torch, 1e-5, 1e-6));
}

}  // namespace

TEST_CASE("weights saved by PyTorch load by name and reproduce PyTorch's outputs", "[io]") {
  TensorFile sd = load_safetensors(kData + "pytorch_rnns.safetensors", {.check_finite = true});
  CHECK(sd.metadata.at("format") == "pt");
  CHECK(sd.tensors.size() == 26);
  // A few values, straight from the script's torch.manual_seed(0) state_dict.
  CHECK(sd.at("rnn.weight_ih_l0").shape() == Shape{4, 3});
  CHECK(sd.at("rnn.weight_ih_l0").to_vector()[0] == float(-0.00374341));
  CHECK(sd.at("rnn.weight_ih_l0").sum().item() == Approx(-0.34842902421951294).epsilon(1e-6));
  CHECK(sd.at("lstm.weight_hh_l1_reverse").shape() == Shape{16, 4});
  CHECK(sd.at("lstm.weight_hh_l1_reverse").to_vector()[0] == float(-0.07449299));
  CHECK(sd.at("lstm.weight_hh_l1_reverse").sum().item() == Approx(0.2141430377960205).epsilon(1e-6));
  CHECK(sd.at("gru.bias_hh_l0").to_vector()[0] == float(-0.16601783));
  CHECK(sd.at("head.weight").to_vector()[0] == float(-0.4127197));

  Net net;
  REQUIRE(load(net, kData + "pytorch_rnns.safetensors").ok());
  for (auto& [name, t] : net.named_parameters()) CHECK(same_bits(t, sd.at(name)));

  TensorFile io = load_safetensors(kData + "pytorch_rnns_io.safetensors");
  const Tensor& x = io.at("x");  // (2, 6, 3), batch first
  {
    NoGradGuard no_grad;
    auto rnn = net.rnn->forward(x);
    check_close(rnn.output, io.at("rnn.output"), "rnn.output");
    check_close(rnn.h_n, io.at("rnn.h_n"), "rnn.h_n");
    auto lstm = net.lstm->forward(x);
    check_close(lstm.output, io.at("lstm.output"), "lstm.output");
    check_close(lstm.h_n, io.at("lstm.h_n"), "lstm.h_n");
    check_close(lstm.c_n, io.at("lstm.c_n"), "lstm.c_n");
    auto gru = net.gru->forward(x);
    check_close(gru.output, io.at("gru.output"), "gru.output");
    check_close(gru.h_n, io.at("gru.h_n"), "gru.h_n");
    check_close(net.head->forward(gru.output), io.at("head.output"), "head.output");
  }

  SECTION("F64, F16 and BF16 from PyTorch decode to its own float32 values") {
    CHECK(io.at("f64").dtype() == DType::f64);
    CHECK(io.at("f64").to_vector()[4] == 4.0 / 3.0);
    for (const char* name : {"f16", "bf16"}) {
      INFO(name);
      CHECK(io.at(name).dtype() == DType::f32);
      CHECK(same_bits(io.at(name), io.at(std::string(name) + ".as_f32")));
    }
    CHECK(std::isinf(io.at("f16").to_vector()[5]));
    CHECK_THROWS_WITH(load_safetensors(kData + "pytorch_rnns_io.safetensors", {.check_finite = true}),
                      Catch::Contains("tensor 'f16'") && Catch::Contains("inf"));
  }
  SECTION("seqgrad writes back what PyTorch wrote: same names, shapes and bits") {
    TempDir dir;
    save(net, dir / "back.safetensors");
    TensorFile back = load_safetensors(dir / "back.safetensors");
    REQUIRE(back.tensors.size() == sd.tensors.size());
    for (auto& [name, t] : sd.tensors) {
      INFO(name);
      REQUIRE(back.find(name) != nullptr);
      CHECK(same_bits(back.at(name), t));
    }
  }
}
