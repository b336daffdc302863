// Model files and training checkpoints: round trips for every layer type and optimizer, strict and
// non-strict loading, the checkpoint layout, all-or-nothing loads, and --resume continuing a run
// bit-identically.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>

#include "autograd/seqgrad.h"
#include "fuzz/checkpoint_fixture.h"
#include "io/checkpoint.h"
#include "io/dataloader.h"
#include "layers/layers.h"
#include "optim/optim.h"
#include "test_io_util.h"

using namespace seqgrad;
using namespace seqgrad::io;
using Catch::Contains;

namespace {

// A small tagger: every layer kind that has parameters, in one module tree.
struct Tagger : Module {
  std::shared_ptr<Embedding> emb;
  std::shared_ptr<LSTM> lstm;
  std::shared_ptr<Linear> head;
  explicit Tagger(uint64_t seed, DType dt = DType::f32) {
    emb = register_module("emb", std::make_shared<Embedding>(EmbeddingOptions{.num_embeddings = 7, .embedding_dim = 3, .dtype = dt, .seed = seed}));
    lstm = register_module("lstm", std::make_shared<LSTM>(LSTMOptions{.input_size = 3, .hidden_size = 4, .num_layers = 2,
                                                                      .bidirectional = true, .dtype = dt, .seed = seed + 1}));
    head = register_module("head", std::make_shared<Linear>(LinearOptions{.in_features = 8, .out_features = 2, .dtype = dt, .seed = seed + 2}));
  }
};

// Every layer type, built from a seed, as a factory so two differently-initialised copies exist.
std::vector<std::pair<std::string, std::function<std::shared_ptr<Module>(uint64_t)>>> all_layers() {
  return {
      {"Linear", [](uint64_t s) { return std::make_shared<Linear>(LinearOptions{.in_features = 3, .out_features = 2, .seed = s}); }},
      {"Linear f64 no bias", [](uint64_t s) { return std::make_shared<Linear>(LinearOptions{.in_features = 3, .out_features = 2, .bias = false, .dtype = DType::f64, .seed = s}); }},
      {"Embedding", [](uint64_t s) { return std::make_shared<Embedding>(EmbeddingOptions{.num_embeddings = 5, .embedding_dim = 2, .seed = s}); }},
      {"RNN relu 2 layers bidirectional", [](uint64_t s) { return std::make_shared<RNN>(RNNOptions{.input_size = 3, .hidden_size = 4, .num_layers = 2, .nonlinearity = Nonlinearity::relu, .bidirectional = true, .seed = s}); }},
      {"LSTM", [](uint64_t s) { return std::make_shared<LSTM>(LSTMOptions{.input_size = 3, .hidden_size = 4, .seed = s}); }},
      {"GRU 2 layers f64", [](uint64_t s) { return std::make_shared<GRU>(GRUOptions{.input_size = 3, .hidden_size = 4, .num_layers = 2, .dtype = DType::f64, .seed = s}); }},
      {"RNNCell", [](uint64_t s) { return std::make_shared<RNNCell>(RNNCellOptions{.input_size = 3, .hidden_size = 4, .seed = s}); }},
      {"LSTMCell", [](uint64_t s) { return std::make_shared<LSTMCell>(LSTMCellOptions{.input_size = 3, .hidden_size = 4, .seed = s}); }},
      {"GRUCell no bias", [](uint64_t s) { return std::make_shared<GRUCell>(GRUCellOptions{.input_size = 3, .hidden_size = 4, .bias = false, .seed = s}); }},
      {"Sequential", [](uint64_t s) {
         return std::make_shared<Sequential>(std::make_shared<Linear>(LinearOptions{.in_features = 3, .out_features = 5, .seed = s}),
                                             std::make_shared<Tanh>(),
                                             std::make_shared<Linear>(LinearOptions{.in_features = 5, .out_features = 1, .seed = s + 9}));
       }},
      {"Tagger", [](uint64_t s) { return std::make_shared<Tagger>(s); }},
  };
}

void check_same_parameters(const Module& a, const Module& b) {
  auto pa = a.named_parameters(), pb = b.named_parameters();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    INFO(pa[i].first);
    CHECK(pa[i].first == pb[i].first);
    CHECK(same_bits(pa[i].second, pb[i].second));
  }
}

}  // namespace

TEST_CASE("save -> load gives identical parameters for every layer type", "[io]") {
  TempDir dir;
  for (auto& [name, make] : all_layers()) {
    INFO(name);
    auto a = make(1), b = make(2);
    REQUIRE_FALSE(same_bits(a->named_parameters()[0].second, b->named_parameters()[0].second));
    save(*a, dir / "m.safetensors", {{"layer", name}});
    LoadReport r = load(*b, dir / "m.safetensors");
    CHECK(r.ok());
    check_same_parameters(*a, *b);
    TensorFile f = load_safetensors(dir / "m.safetensors");
    CHECK(f.metadata.at("format") == "pt");
    CHECK(f.metadata.at("layer") == name);
  }
  // The names are PyTorch's state_dict keys.
  Tagger t(0);
  std::vector<std::string> names;
  for (auto& [n, p] : load_safetensors((save(t, dir / "t.safetensors"), dir / "t.safetensors")).tensors) names.push_back(n);
  for (const char* n : {"emb.weight", "lstm.weight_ih_l0", "lstm.bias_hh_l1_reverse", "head.weight", "head.bias"})
    CHECK(std::find(names.begin(), names.end(), n) != names.end());
}

TEST_CASE("strict load lists every problem at once and loads nothing; non-strict returns the lists", "[io]") {
  TempDir dir;
  Tagger src(1);
  NamedTensors tensors = src.named_parameters();
  std::erase_if(tensors, [](auto& e) { return e.first == "head.bias"; });             // missing
  tensors.emplace_back("head.extra", zeros({2}));                                      // unexpected
  for (auto& [n, t] : tensors)
    if (n == "lstm.weight_hh_l0") t = zeros({16, 5});                                  // shape mismatch
  save_safetensors(dir / "bad.safetensors", tensors);

  Tagger dst(2);
  Tensor before = dst.head->weight().clone();
  try {
    load(dst, dir / "bad.safetensors");
    FAIL("strict load accepted mismatched names");
  } catch (const LoadError& e) {
    std::string msg = e.what();
    CHECK_THAT(msg, Contains("bad.safetensors: nothing was loaded"));
    CHECK_THAT(msg, Contains("1 missing: head.bias"));
    CHECK_THAT(msg, Contains("1 unexpected: head.extra"));
    CHECK_THAT(msg, Contains("lstm.weight_hh_l0: expected (16, 4), got (16, 5)"));
    CHECK(e.report().missing == std::vector<std::string>{"head.bias"});
  }
  CHECK(same_bits(dst.head->weight(), before));  // nothing copied

  LoadReport r = load(dst, dir / "bad.safetensors", {.strict = false});
  CHECK(r.missing == std::vector<std::string>{"head.bias"});
  CHECK(r.unexpected == std::vector<std::string>{"head.extra"});
  CHECK(r.shape_mismatch.size() == 1);
  CHECK(same_bits(dst.head->weight(), src.head->weight()));  // the matching names were copied
  CHECK_FALSE(same_bits(dst.lstm->parameter("weight_hh_l0"), src.lstm->parameter("weight_hh_l0")));

  // Loading a float64 file into a float32 model converts.
  Tagger wide(3, DType::f64);
  save(wide, dir / "wide.safetensors");
  Tagger narrow(4);
  load(narrow, dir / "wide.safetensors");
  CHECK(narrow.head->weight().dtype() == DType::f32);
  CHECK(allclose(narrow.head->weight().to(DType::f64), wide.head->weight(), 1e-7, 0));
  // Bad bytes surface as FormatError before anything is touched.
  CHECK_THROWS_AS(load(narrow, dir / "missing.safetensors"), std::system_error);
}

namespace {

// A model, its optimizer, and a few deterministic steps of training on fixed data.
struct Trained {
  std::shared_ptr<Tagger> model;
  std::unique_ptr<optim::Optimizer> opt;
};

std::unique_ptr<optim::Optimizer> make_optimizer(const std::string& kind, std::vector<Tensor> params) {
  using namespace optim;
  if (kind == "SGD") return std::make_unique<SGD>(params, SGDOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true});
  if (kind == "Adam") return std::make_unique<Adam>(params, AdamOptions{.lr = 0.01});
  if (kind == "AdamW") return std::make_unique<AdamW>(params, AdamWOptions{.lr = 0.01, .amsgrad = true});
  if (kind == "RMSprop") return std::make_unique<RMSprop>(params, RMSpropOptions{.lr = 0.01, .momentum = 0.5, .centered = true});
  return std::make_unique<Adagrad>(params, AdagradOptions{.lr = 0.1, .lr_decay = 0.01});
}

void train_steps(Tagger& m, optim::Optimizer& opt, int steps, uint64_t data_seed) {
  Generator gen(data_seed);
  for (int s = 0; s < steps; ++s) {
    std::vector<int64_t> tokens(2 * 5);
    for (auto& t : tokens) t = int64_t(gen.below(7));
    Tensor target = uniform({2, 5, 2}, -1, 1, gen);
    opt.zero_grad();
    Tensor y = m.head->forward(m.lstm->forward(m.emb->forward(tokens, {2, 5})).output);
    mse_loss(y, target).backward();
    opt.step();
  }
}

}  // namespace

TEST_CASE("optimizer state round-trips through a checkpoint for every optimizer", "[io]") {
  TempDir dir;
  for (std::string kind : {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad"}) {
    INFO(kind);
    Tagger a(1);
    auto opt_a = make_optimizer(kind, a.parameters());
    train_steps(a, *opt_a, 3, 100);
    save_checkpoint(dir / "c.safetensors", a, {.optimizer = opt_a.get(), .epoch = 3});

    Tagger b(2);
    auto opt_b = make_optimizer(kind, b.parameters());
    TrainingState st{.optimizer = opt_b.get()};
    load_checkpoint(dir / "c.safetensors", b, st);
    CHECK(st.epoch == 3);
    check_same_parameters(a, b);
    auto sa = opt_a->state(), sb = opt_b->state();
    REQUIRE(sa.size() == sb.size());
    for (size_t i = 0; i < sa.size(); ++i) {
      INFO(sa[i].first);
      CHECK(sa[i].first == sb[i].first);
      CHECK(same_bits(sa[i].second, sb[i].second));
    }
    // And they continue identically.
    train_steps(a, *opt_a, 2, 200);
    train_steps(b, *opt_b, 2, 200);
    check_same_parameters(a, b);
  }
}

TEST_CASE("checkpoint layout: model names, optim.* tensors, scalars in __metadata__", "[io]") {
  TempDir dir;
  Tagger m(1);
  optim::Adam opt(m.parameters(), {.lr = 0.01});
  optim::StepLR sched(opt, {.step_size = 2, .gamma = 0.5});
  train_steps(m, opt, 1, 5);
  sched.step();
  sched.step();
  sched.step();
  Generator g(42);
  g.next_u64();
  save_checkpoint(dir / "c.safetensors", m,
                  {.optimizer = &opt, .scheduler = &sched, .generators = {{"loader", &g}}, .epoch = 3, .user = {{"run", "r1"}}});
  TensorFile f = load_safetensors(dir / "c.safetensors");
  CHECK(f.metadata.at("format") == "seqgrad.checkpoint");
  CHECK(f.metadata.at("epoch") == "3");
  CHECK(f.metadata.at("optim.name") == "Adam");
  CHECK(f.metadata.at("scheduler.last_epoch") == "3");
  CHECK(f.metadata.at("scheduler.base_lr") == "0.01");
  CHECK(f.metadata.at("rng.loader") == format_generator_state(g.state()));
  CHECK(f.metadata.at("user.run") == "r1");
  CHECK(f.at("optim.0.exp_avg").shape() == Shape{7, 3});
  CHECK(f.at("optim.0.step").item() == 1);
  CHECK(f.at("optim.lr").item() == opt.lr());
  CHECK(f.find("lstm.weight_ih_l0") != nullptr);

  // The model part loads like a model file; a model file is not a checkpoint.
  Tagger m2(9);
  CHECK(load(m2, dir / "c.safetensors").ok());
  check_same_parameters(m, m2);
  save(m, dir / "model.safetensors");
  TrainingState st;
  CHECK_THROWS_WITH(load_checkpoint(dir / "model.safetensors", m2, st),
                    Contains("not a seqgrad training checkpoint") && Contains("use load()"));

  // Generator states are exact, and malformed ones are rejected.
  CHECK(parse_generator_state(format_generator_state(g.state()), "x") == g.state());
  CHECK_THROWS_WITH(parse_generator_state("12,34", "c.safetensors: rng.loader"), Contains("rng.loader"));
  CHECK_THROWS_AS(parse_generator_state(format_generator_state(g.state()) + ",", "x"), FormatError);
}

TEST_CASE("a failed checkpoint load changes nothing", "[io]") {
  TempDir dir;
  Tagger m(1);
  optim::Adam opt(m.parameters(), {.lr = 0.01});
  optim::StepLR sched(opt, {.step_size = 2});
  train_steps(m, opt, 2, 5);
  sched.step();
  save_checkpoint(dir / "c.safetensors", m, {.optimizer = &opt, .scheduler = &sched, .epoch = 1});

  Tagger m2(2);
  optim::Adam opt2(m2.parameters(), {.lr = 0.5});
  optim::StepLR sched2(opt2, {.step_size = 2});
  Tensor w_before = m2.head->weight().clone();
  const size_t n_state = opt2.state().size();  // "lr", "initial_lr": no parameter has stepped
  auto check_untouched = [&] {
    CHECK(same_bits(m2.head->weight(), w_before));
    CHECK(opt2.lr() == 0.5);
    CHECK(opt2.state().size() == n_state);
    CHECK(sched2.last_epoch() == 0);
  };

  SECTION("wrong optimizer type") {
    optim::SGD sgd(m2.parameters(), {.lr = 0.5});
    TrainingState st{.optimizer = &sgd};
    CHECK_THROWS_WITH(load_checkpoint(dir / "c.safetensors", m2, st), Contains("holds Adam state, but the optimizer is SGD"));
    CHECK(same_bits(m2.head->weight(), w_before));
  }
  SECTION("a generator the file does not have") {
    Generator g;
    TrainingState st{.optimizer = &opt2, .generators = {{"loader", &g}}};
    CHECK_THROWS_WITH(load_checkpoint(dir / "c.safetensors", m2, st), Contains("no 'rng.loader'"));
    check_untouched();
  }
  SECTION("a model that does not match") {
    auto small = std::make_shared<Linear>(LinearOptions{.in_features = 1, .out_features = 1});
    TrainingState st{.optimizer = &opt2, .scheduler = &sched2};
    CHECK_THROWS_AS(load_checkpoint(dir / "c.safetensors", *small, st), LoadError);
    check_untouched();
  }
  SECTION("a scheduler that rejects its state rolls the optimizer back") {
    TensorFile f = load_safetensors(dir / "c.safetensors");
    f.metadata["scheduler.bogus"] = "1";
    save_safetensors(dir / "c2.safetensors", f.tensors, f.metadata);
    TrainingState st{.optimizer = &opt2, .scheduler = &sched2};
    CHECK_THROWS_WITH(load_checkpoint(dir / "c2.safetensors", m2, st), Contains("c2.safetensors") && Contains("bogus"));
    check_untouched();
  }
  SECTION("a scheduler value that is not a number") {
    TensorFile f = load_safetensors(dir / "c.safetensors");
    f.metadata["scheduler.last_epoch"] = "three";
    save_safetensors(dir / "c3.safetensors", f.tensors, f.metadata);
    TrainingState st{.optimizer = &opt2, .scheduler = &sched2};
    CHECK_THROWS_WITH(load_checkpoint(dir / "c3.safetensors", m2, st), Contains("'scheduler.last_epoch' is 'three'"));
    check_untouched();
  }
}

namespace {

// The --resume scenario: a sequence regressor trained from a CSV-style dataset with a shuffling
// DataLoader, Adam, a cosine schedule and gradient clipping.
struct Regressor : Module {
  std::shared_ptr<LSTM> lstm;
  std::shared_ptr<Linear> head;
  Regressor() {
    // Two layers with dropout between them: resuming must restore the dropout generator too.
    lstm = register_module("lstm", std::make_shared<LSTM>(LSTMOptions{
                                        .input_size = 2, .hidden_size = 6, .num_layers = 2, .dropout = 0.3, .seed = 1}));
    head = register_module("head", std::make_shared<Linear>(LinearOptions{.in_features = 6, .out_features = 1, .seed = 2}));
  }
};

SequenceDataset make_dataset() {
  SequenceDataset d({"a", "b"}, {"y"});
  Generator gen(77);
  for (int i = 0; i < 13; ++i) {
    int64_t len = 2 + int64_t(gen.below(5));
    Tensor x = uniform({len, 2}, -1, 1, gen);
    Tensor y = tanh(x.sum(1, true) * 0.7).detach();
    d.add({std::to_string(i), x, y});
  }
  return d;
}

// Everything a run owns, built fresh as a restarted process would.
struct Run {
  Regressor model;
  optim::Adam opt{model.parameters(), {.lr = 0.02}};
  optim::CosineAnnealingLR sched{opt, {.T_max = 6}};
  DataLoader loader;
  explicit Run(const SequenceDataset& d) : loader(d, {.batch_size = 4, .shuffle = true, .seed = 5}) {}
  TrainingState state() { return {.optimizer = &opt, .scheduler = &sched, .generators = {{"loader", &loader.generator()}}}; }

  void train(int64_t from, int64_t to) {
    for (int64_t epoch = from; epoch < to; ++epoch) {
      for (const Batch& b : loader.epoch()) {
        opt.zero_grad();
        auto out = model.lstm->forward(b.x, {}, b.lengths);
        masked_mse_loss(model.head->forward(out.output), b.y, b.lengths).backward();
        optim::clip_grad_norm(model.parameters(), 0.5);
        opt.step();
      }
      sched.step();
    }
  }
};

}  // namespace

TEST_CASE("resuming from a checkpoint continues a run bit-identically to an uninterrupted one", "[io]") {
  TempDir dir;
  SequenceDataset data = make_dataset();

  Run straight(data);
  straight.train(0, 6);

  {
    Run first(data);
    first.train(0, 3);
    TrainingState st = first.state();
    st.epoch = 3;
    save_checkpoint(dir / "ckpt.safetensors", first.model, st);
  }  // the first process ends

  Run resumed(data);
  TrainingState st = resumed.state();
  load_checkpoint(dir / "ckpt.safetensors", resumed.model, st);
  REQUIRE(st.epoch == 3);
  resumed.train(st.epoch, 6);

  check_same_parameters(straight.model, resumed.model);
  auto sa = straight.opt.state(), sb = resumed.opt.state();
  REQUIRE(sa.size() == sb.size());
  for (size_t i = 0; i < sa.size(); ++i) CHECK(same_bits(sa[i].second, sb[i].second));
  CHECK(straight.opt.lr() == resumed.opt.lr());
  CHECK(straight.sched.last_epoch() == resumed.sched.last_epoch());
  CHECK(straight.loader.generator().state() == resumed.loader.generator().state());
  auto gens = resumed.model.named_generators();  // the dropout between the LSTM's layers
  REQUIRE(gens.size() == 1);
  CHECK(gens[0].first == "lstm.dropout_generator");
  CHECK(gens[0].second->state() == straight.model.named_generators()[0].second->state());

  // Without the loader's generator the shuffles differ and so do the weights: the test can tell.
  Run forgetful(data);
  TrainingState partial{.optimizer = &forgetful.opt, .scheduler = &forgetful.sched};
  load_checkpoint(dir / "ckpt.safetensors", forgetful.model, partial);
  forgetful.train(3, 6);
  CHECK_FALSE(same_bits(forgetful.model.head->weight(), straight.model.head->weight()));
}

namespace {
// Trains until the end of epoch `to` from where `st` is (epoch, step). When `stop_at` (batches
// since the run began) comes first, saves a checkpoint right after that batch and returns false.
bool train_from(Run& r, TrainingState& st, int64_t to, int64_t stop_at, const std::filesystem::path& ckpt) {
  for (int64_t epoch = st.epoch; epoch < to; ++epoch) {
    for (const Batch& b : r.loader.epoch()) {
      r.opt.zero_grad();
      auto out = r.model.lstm->forward(b.x, {}, b.lengths);
      masked_mse_loss(r.model.head->forward(out.output), b.y, b.lengths).backward();
      optim::clip_grad_norm(r.model.parameters(), 0.5);
      r.opt.step();
      st.step = r.loader.state().position;
      if (epoch * int64_t(r.loader.size()) + st.step == stop_at) {
        save_checkpoint(ckpt, r.model, st);
        return false;
      }
    }
    r.sched.step();
    st.epoch = epoch + 1;
    st.step = 0;
  }
  return true;
}
}  // namespace

TEST_CASE("resuming from a mid-epoch checkpoint, at any batch, is bit-identical to an uninterrupted run", "[io]") {
  TempDir dir;
  SequenceDataset data = make_dataset();  // 13 sequences, batches of 4: 4 batches per epoch
  Run straight(data);
  TrainingState st0 = straight.state();
  st0.loader = &straight.loader;
  REQUIRE(train_from(straight, st0, 4, -1, {}));

  for (int64_t stop_at : {1, 2, 4, 5, 7, 10, 15}) {
    INFO("interrupted after batch " << stop_at << " of 16");
    const auto ckpt = dir / fmt::format("ckpt{}.safetensors", stop_at);
    {
      Run first(data);
      TrainingState st = first.state();
      st.loader = &first.loader;
      REQUIRE_FALSE(train_from(first, st, 4, stop_at, ckpt));
    }
    Run resumed(data);
    TrainingState st = resumed.state();
    st.loader = &resumed.loader;
    load_checkpoint(ckpt, resumed.model, st);
    CHECK(st.epoch == (stop_at - 1) / 4);  // after an epoch's last batch: step 4, its end not yet done
    CHECK(st.step == (stop_at - 1) % 4 + 1);
    REQUIRE(train_from(resumed, st, 4, -1, {}));
    check_same_parameters(straight.model, resumed.model);
    auto sa = straight.opt.state(), sb = resumed.opt.state();
    for (size_t i = 0; i < sa.size(); ++i) CHECK(same_bits(sa[i].second, sb[i].second));
    CHECK(straight.loader.generator().state() == resumed.loader.generator().state());
  }
}

TEST_CASE("a mid-epoch checkpoint names the file and the problem when it does not fit the loader", "[io]") {
  TempDir dir;
  SequenceDataset data = make_dataset();
  Run first(data);
  TrainingState st = first.state();
  st.loader = &first.loader;
  REQUIRE_FALSE(train_from(first, st, 2, 3, dir / "c.safetensors"));
  SequenceDataset small({"a", "b"}, {"y"});
  for (int i = 0; i < 4; ++i) small.add({std::to_string(i), zeros({2, 2}), zeros({2, 1})});
  Run other(small);  // one batch per epoch
  TrainingState o = other.state();
  o.loader = &other.loader;
  CHECK_THROWS_WITH(load_checkpoint(dir / "c.safetensors", other.model, o),
                    (dir / "c.safetensors").string() +
                        ": __metadata__ step 3 is past the 1 batches of the loader's epoch (another dataset or batch "
                        "size?)");
  Run plain(data);  // saved without a loader: asking for one says what is missing
  TrainingState p = plain.state();
  save_checkpoint(dir / "d.safetensors", plain.model, p);
  p.loader = &plain.loader;
  CHECK_THROWS_WITH(load_checkpoint(dir / "d.safetensors", plain.model, p),
                    Catch::Contains("d.safetensors: __metadata__ has no 'loader.rng' (a DataLoader is listed in TrainingState)"));
}

// The seed corpus of fuzz_checkpoint: every file loads into the fuzzer's fixture. To rewrite them
// after changing the fixture: SEQGRAD_WRITE_FUZZ_SEEDS=fuzz/corpus/checkpoint build/tests/seqgrad_tests "[fuzzseeds]"
TEST_CASE("fuzz_checkpoint's seed corpus loads into its fixture", "[io][fuzzseeds]") {
  const std::filesystem::path dir = std::filesystem::path(SEQGRAD_SOURCE_DIR) / "fuzz/corpus/checkpoint";
  if (const char* out = std::getenv("SEQGRAD_WRITE_FUZZ_SEEDS"))
    for (int64_t batches : {1, 3, 4}) {
      fuzz::CheckpointFixture f;
      TrainingState st = f.train(batches);
      st.user["note"] = "seed";
      save_checkpoint(std::filesystem::path(out) / fmt::format("after_{}_batches.safetensors", batches), f.model, st);
    }
  int seeds = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    INFO(e.path());
    fuzz::CheckpointFixture f;
    TrainingState st = f.state();
    CHECK_NOTHROW(load_checkpoint(e.path(), f.model, st));
    CHECK(st.epoch == 1);
    ++seeds;
  }
  CHECK(seeds >= 3);
}

TEST_CASE("every checkpoint rejection names the file and what is wrong", "[io]") {
  TempDir dir;
  fuzz::CheckpointFixture good;
  TrainingState gst = good.train(1);
  const auto valid = dir / "valid.safetensors";
  save_checkpoint(valid, good.model, gst);
  TensorFile file = load_safetensors(valid);
  // One corruption per row: what to change, and the words the message must hold after the path.
  struct Bad {
    std::function<void(TensorFile&)> change;
    std::string says;
  };
  std::vector<Bad> cases = {
      {[](TensorFile& f) { f.metadata["format"] = "pt"; }, "not a seqgrad training checkpoint"},
      {[](TensorFile& f) { f.metadata["checkpoint_version"] = "9"; }, "checkpoint_version '9'"},
      {[](TensorFile& f) { f.metadata["epoch"] = "-1"; }, "__metadata__ epoch '-1' is not a count"},
      {[](TensorFile& f) { f.metadata["step"] = "x"; }, "__metadata__ step 'x' is not a count"},
      {[](TensorFile& f) { f.metadata["step"] = "99"; }, "step 99 is past the 4 batches"},
      {[](TensorFile& f) { f.metadata.erase("loader.epoch_rng"); }, "no 'loader.epoch_rng'"},
      {[](TensorFile& f) { f.metadata["rng.extra"] = "12"; }, "rng.extra: generator state '12'"},
      {[](TensorFile& f) { f.metadata["optim.name"] = "SGD"; }, "holds SGD state, but the optimizer is Adam"},
      {[](TensorFile& f) { f.metadata["scheduler.last_epoch"] = "one"; }, "'scheduler.last_epoch' is 'one', not a number"},
      {[](TensorFile& f) { f.tensors.erase(f.tensors.begin()); }, "1 missing: lstm.weight_ih_l0"},
      {[](TensorFile& f) {  // found by fuzz_checkpoint: converting it to an integer was undefined
         for (auto& [name, t] : f.tensors)
           if (name == "optim.0.step") t = full({}, 2.6e233, DType::f64);
       },
       "'0.step' is 2.6e+233, not a step count"},
      {[](TensorFile& f) { f.tensors[0].second = zeros({5}); }, "lstm.weight_ih_l0: expected (12, 2), got (5,)"},
      {[](TensorFile& f) { f.metadata.erase("rng.model.lstm.dropout_generator"); }, "'rng.model.lstm.dropout_generator'"},
  };
  int i = 0;
  for (auto& c : cases) {
    TensorFile f = file;
    c.change(f);
    const auto path = dir / fmt::format("bad{}.safetensors", i++);
    save_safetensors(path, f.tensors, f.metadata);
    fuzz::CheckpointFixture fresh;
    TrainingState st = fresh.state();
    INFO(c.says);
    CHECK_THROWS_WITH(load_checkpoint(path, fresh.model, st), Catch::StartsWith(path.string() + ": ") && Catch::Contains(c.says));
  }
  // Truncated: the safetensors layer names the file and the offset.
  std::ifstream in(valid, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(dir / "cut.safetensors", std::ios::binary).write(bytes.data(), std::streamsize(bytes.size() / 2));
  fuzz::CheckpointFixture fresh;
  TrainingState st = fresh.state();
  CHECK_THROWS_WITH(load_checkpoint(dir / "cut.safetensors", fresh.model, st),
                    Catch::StartsWith((dir / "cut.safetensors").string() + ": "));
}
