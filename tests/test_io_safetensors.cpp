// safetensors reading and writing: round trips, half-precision decoding, every malformed-input
// rejection, crash-safe writes (including a writer killed with SIGKILL mid-save).
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <thread>

#include "autograd/seqgrad.h"
#include "io/safetensors.h"
#include "test_io_util.h"

using namespace seqgrad;
using namespace seqgrad::io;
using Catch::Contains;

TEST_CASE("safetensors round trip keeps names, order, dtypes, shapes, bits and metadata", "[io]") {
  TempDir dir;
  Generator gen(1);
  NamedTensors in = {{"b.weight", uniform({3, 4}, -1, 1, gen)},
                     {"a.bias", normal({5}, 0, 1, gen, DType::f64)},
                     {"scalar", full({}, 2.5, DType::f64)},
                     {"empty", zeros({0, 3})},
                     {"rank6", uniform({1, 2, 1, 2, 1, 3}, -1, 1, gen)}};
  in[0].second.data<float>()[1] = std::numeric_limits<float>::quiet_NaN();  // stored, not checked
  Metadata md = {{"format", "pt"}, {"note", "h\u00e9llo \"quoted\""}};
  save_safetensors(dir / "m.safetensors", in, md);
  CHECK(dir.files() == std::vector<std::string>{"m.safetensors"});  // no temporary left behind

  TensorFile out = load_safetensors(dir / "m.safetensors");
  REQUIRE(out.tensors.size() == in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    CHECK(out.tensors[i].first == in[i].first);
    CHECK(same_bits(out.tensors[i].second, in[i].second));
  }
  CHECK(out.metadata == md);
  CHECK(out.at("scalar").item() == 2.5);
  CHECK(out.find("nope") == nullptr);
  CHECK_THROWS_WITH(out.at("nope"), Contains("no tensor named 'nope'") && Contains("b.weight"));

  // The bytes on disk are the serialized bytes; the data section starts 8-byte aligned.
  std::vector<uint8_t> bytes = serialize_safetensors(in, md);
  CHECK(std::filesystem::file_size(dir / "m.safetensors") == bytes.size());
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  CHECK(n % 8 == 0);
  CHECK(parse_safetensors(bytes).tensors.size() == in.size());
}

TEST_CASE("safetensors writer rejects bad names before writing anything", "[io]") {
  TempDir dir;
  Tensor t = zeros({2});
  CHECK_THROWS_WITH(save_safetensors(dir / "x", {{"a", t}, {"a", t}}), Contains("'a' is given twice"));
  CHECK_THROWS_WITH(save_safetensors(dir / "x", {{"__metadata__", t}}), Contains("cannot be a tensor name"));
  CHECK_THROWS_WITH(save_safetensors(dir / "x", {{"u", Tensor()}}), Contains("'u' is undefined"));
  CHECK(dir.files().empty());
}

TEST_CASE("F16 and BF16 read as float32, exactly", "[io]") {
  CHECK(half_to_float(0x3c00) == 1.0f);
  CHECK(half_to_float(0xc100) == -2.5f);
  CHECK(half_to_float(0x7bff) == 65504.0f);
  CHECK(half_to_float(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(half_to_float(0x03ff) == std::ldexp(1023.0f, -24));  // largest subnormal
  CHECK(std::signbit(half_to_float(0x8000)));
  CHECK(std::isinf(half_to_float(0x7c00)));
  CHECK(std::isnan(half_to_float(0x7e00)));
  CHECK(bfloat16_to_float(0x3f80) == 1.0f);
  CHECK(bfloat16_to_float(0xc020) == -2.5f);
  // Every half value converts exactly: back to half through float's nearest rounding is identity.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = half_to_float(uint16_t(h));
    if (std::isnan(f)) continue;
    uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double expect = e == 0 ? std::ldexp(double(m), -24) : std::ldexp(double(m | 0x400), int(e) - 25);
    if (e == 0x1f) expect = INFINITY;
    if (h & 0x8000) expect = -expect;
    if (f != float(expect)) FAIL("half " << h << " -> " << f << ", expected " << expect);
  }
  // Through the reader: shapes kept, values converted.
  std::vector<uint8_t> data = {0x00, 0x3c, 0x00, 0xc1, 0x80, 0x3f, 0x20, 0xc0};
  auto file = parse_safetensors(st_bytes(R"({"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},)"
                                         R"("b":{"dtype":"BF16","shape":[2,1],"data_offsets":[4,8]}})",
                                         data));
  CHECK(file.at("h").dtype() == DType::f32);
  CHECK(file.at("h").to_vector() == std::vector<double>{1.0, -2.5});
  CHECK(file.at("b").shape() == Shape{2, 1});
  CHECK(file.at("b").to_vector() == std::vector<double>{1.0, -2.5});
}

namespace {

// parse_safetensors must throw a FormatError whose message contains every one of `parts`.
void expect_rejected(const std::vector<uint8_t>& bytes, std::initializer_list<std::string> parts,
                     const ReadOptions& opt = {}) {
  try {
    parse_safetensors(bytes, opt, "bad.safetensors");
    FAIL("accepted a malformed file");
  } catch (const FormatError& e) {
    std::string msg = e.what();
    INFO(msg);
    CHECK_THAT(msg, Contains("bad.safetensors: "));
    for (const std::string& p : parts) CHECK_THAT(msg, Contains(p));
  }
}

const std::string kGood = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

}  // namespace

TEST_CASE("malformed safetensors files are rejected with what and where", "[io]") {
  const auto two = f32_bytes({1, 2});
  REQUIRE(parse_safetensors(st_bytes(kGood, two)).at("w").to_vector() == std::vector<double>{1, 2});

  SECTION("truncated before the header") {
    expect_rejected({}, {"truncated: 0 bytes"});
    expect_rejected({1, 0, 0}, {"truncated: 3 bytes"});
  }
  SECTION("header length larger than the file") {
    expect_rejected(st_bytes(kGood, two, int64_t(kGood.size()) + 100), {"header length", "runs past the end"});
    expect_rejected(st_bytes("{}", {}, int64_t(1) << 62), {"over the limit", "max_header_bytes"});
    expect_rejected(st_bytes(kGood, two), {"over the limit"}, ReadOptions{.max_header_bytes = 16});
  }
  SECTION("file over the size limit") {
    expect_rejected(st_bytes(kGood, two), {"over the limit", "max_file_bytes"}, ReadOptions{.max_file_bytes = 32});
  }
  SECTION("data truncated") {
    auto bytes = st_bytes(kGood, two);
    bytes.pop_back();
    expect_rejected(bytes, {"tensor 'w'", "run past the end of the data section", "7 bytes"});
  }
  SECTION("malformed JSON, with its byte offset in the file") {
    expect_rejected(st_bytes(R"({"w": {"dtype": "F32",)"), {"malformed JSON header at byte offset 30"});
    expect_rejected(st_bytes("{\"w\x01\": 1}"), {"malformed JSON header"});
    expect_rejected(st_bytes("{\"\xff\": 1}"), {"malformed JSON header"});  // invalid UTF-8
    expect_rejected(st_bytes("[1, 2]"), {"not an object"});
    expect_rejected(st_bytes("  "), {"malformed JSON"});
    expect_rejected(st_bytes("{}x"), {"malformed JSON"});
  }
  SECTION("duplicate names") {
    expect_rejected(st_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                             two),
                    {"duplicate tensor name 'w'"});
    expect_rejected(st_bytes(R"({"w":{"dtype":"F32","dtype":"F64","shape":[2],"data_offsets":[0,8]}})", two),
                    {"duplicate key 'dtype'", "'w'"});
  }
  SECTION("unknown or unsupported dtype") {
    expect_rejected(st_bytes(R"({"w":{"dtype":"F99","shape":[2],"data_offsets":[0,8]}})", two),
                    {"tensor 'w'", "unknown dtype \"F99\""});
    expect_rejected(st_bytes(R"({"w":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", two),
                    {"unsupported dtype \"I32\"", "F32, F64, F16, BF16 and I8"});
    expect_rejected(st_bytes(R"({"w":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", two), {"no \"dtype\" string"});
  }
  SECTION("shape and offsets disagree") {
    expect_rejected(st_bytes(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}})", two),
                    {"tensor 'w'", "hold 8 bytes", "shape (2, 2) needs 16"});
    expect_rejected(st_bytes(R"({"w":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})", two), {"needs 16"});
    expect_rejected(st_bytes(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", two),
                    {"tensor 'w'"});
    expect_rejected(st_bytes(R"({"w":{"dtype":"F32","shape":[9223372036854775807,9223372036854775807],"data_offsets":[0,8]}})", two),
                    {"more elements than can exist"});
  }
  SECTION("bad shapes") {
    expect_rejected(st_bytes(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", two),
                    {"shape extent -2 is not a non-negative integer"});
    expect_rejected(st_bytes(R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", two),
                    {"not a non-negative integer"});
    expect_rejected(st_bytes(R"({"w":{"dtype":"F32","shape":[1,1,1,1,1,1,2],"data_offsets":[0,8]}})", two),
                    {"7 axes", "at most 6"});
    expect_rejected(st_bytes(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", two), {"no \"shape\" array"});
    expect_rejected(st_bytes(R"({"w":{"dtype":"F32","shape":[2,[1]],"data_offsets":[0,8]}})", two),
                    {"nests deeper"});
  }
  SECTION("bad or out-of-range offsets") {
    expect_rejected(st_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", two),
                    {"data_offsets [8, 0] end before they begin"});
    expect_rejected(st_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", two),
                    {"tensor 'w'", "data_offsets [8, 16]", "past the end of the data section, which holds 8 bytes"});
    expect_rejected(st_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551615,7]}})", two),
                    {"end before they begin"});
    expect_rejected(st_bytes(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[99,99]}})", two),
                    {"past the end of the data section"});
    expect_rejected(st_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", two), {"data_offsets"});
    expect_rejected(st_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8e0]}})", two), {"data_offsets"});
  }
  SECTION("overlapping tensors, with the byte offset of the overlap") {
    std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                    R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
    auto bytes = st_bytes(h, f32_bytes({1, 2, 3}));
    expect_rejected(bytes, {"tensors 'a'", "'b'", "overlap at byte offset " + std::to_string(8 + h.size() + 4)});
    // Aliasing the same bytes twice is an overlap too; empty tensors may share any offset.
    expect_rejected(st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                             two),
                    {"overlap"});
    CHECK(parse_safetensors(st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                     R"("e":{"dtype":"F32","shape":[0,5],"data_offsets":[4,4]}})",
                                     two))
              .tensors.size() == 2);
  }
  SECTION("metadata must map strings to strings") {
    expect_rejected(st_bytes(R"({"__metadata__":{"epoch":3}})"), {"__metadata__ value of 'epoch'", "not a string"});
    expect_rejected(st_bytes(R"({"__metadata__":["x"]})"), {"__metadata__ is a JSON array"});
    expect_rejected(st_bytes(R"({"w": 5})"), {"tensor 'w'", "not an object"});
  }
  SECTION("non-finite values, when asked") {
    float nan = std::numeric_limits<float>::quiet_NaN();
    auto bytes = st_bytes(kGood, f32_bytes({1, nan}));
    CHECK(std::isnan(parse_safetensors(bytes).at("w").to_vector()[1]));  // allowed by default
    expect_rejected(bytes, {"tensor 'w'", "element 1", "byte offset " + std::to_string(8 + kGood.size() + 4), "nan"},
                    ReadOptions{.check_finite = true});
    auto inf16 = st_bytes(R"({"h":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}})", {0x00, 0x7c});
    expect_rejected(inf16, {"tensor 'h'", "inf"}, ReadOptions{.check_finite = true});
  }
}

TEST_CASE("every truncation and every byte corruption of a file is rejected cleanly or read", "[io]") {
  Generator gen(3);
  auto bytes = serialize_safetensors({{"w", uniform({3, 2}, -1, 1, gen)}, {"b", uniform({2}, -1, 1, gen, DType::f64)}},
                                     {{"k", "v"}});
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + long(n));
    CHECK_THROWS_AS(parse_safetensors(cut), FormatError);
  }
  int rejected = 0;
  for (size_t i = 0; i < bytes.size(); ++i)
    for (uint8_t flip : {uint8_t(0x01), uint8_t(0x80), uint8_t(0xff)}) {
      auto bad = bytes;
      bad[i] ^= flip;
      try {
        parse_safetensors(bad);
      } catch (const FormatError&) {
        ++rejected;
      }
    }
  CHECK(rejected > 0);
}

TEST_CASE("load_safetensors names the path and reads large tensors in place", "[io]") {
  TempDir dir;
  CHECK_THROWS_WITH(load_safetensors(dir / "missing.safetensors"), Contains("missing.safetensors"));
  CHECK_THROWS_WITH(load_safetensors(dir.path), Contains("not a regular file"));
  auto path = dir / "t.safetensors";
  {
    std::ofstream f(path, std::ios::binary);
    auto b = st_bytes(kGood, f32_bytes({1}));
    f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  }
  CHECK_THROWS_WITH(load_safetensors(path), Contains(path.string() + ": tensor 'w'") && Contains("past the end"));
}

TEST_CASE("AtomicFile replaces the target only on commit", "[io]") {
  TempDir dir;
  auto target = dir / "f.bin";
  write_file_atomic(target, std::vector<uint8_t>{1, 2, 3});
  CHECK(std::filesystem::file_size(target) == 3);
  {
    AtomicFile f(target);
    f.write("abcd", 4);
    CHECK(std::filesystem::exists(f.temp_path()));
    CHECK(f.temp_path().parent_path() == target.parent_path());
    // destroyed without commit: the temporary goes, the target stays
  }
  CHECK(dir.files() == std::vector<std::string>{"f.bin"});
  CHECK(std::filesystem::file_size(target) == 3);
  {
    AtomicFile f(target);
    std::vector<uint8_t> big(3 << 20, 7);  // larger than the write buffer
    f.write("x", 1);
    f.write(big.data(), big.size());
    f.commit();
    CHECK_THROWS_AS(f.commit(), std::logic_error);
  }
  CHECK(std::filesystem::file_size(target) == 1 + (3 << 20));
  CHECK(dir.files() == std::vector<std::string>{"f.bin"});
  CHECK_THROWS_AS(write_file_atomic(dir / "no_such_dir" / "f.bin", std::vector<uint8_t>{1}), std::system_error);
}

TEST_CASE("a save killed with SIGKILL midway leaves the previous file intact", "[io]") {
  TempDir dir;
  auto path = dir / "ckpt.safetensors";
  Generator gen(5);
  NamedTensors old = {{"w", uniform({16, 8}, -1, 1, gen)}};
  save_safetensors(path, old, {{"epoch", "1"}});

  // 200 MB: uninitialised storage, so the child spends its time in write(), not in filling it.
  Tensor big = Tensor::empty({50'000'000});
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    try {
      save_safetensors(path, {{"w", big}}, {{"epoch", "2"}});
    } catch (...) {
      ::_exit(2);
    }
    ::_exit(0);
  }
  // Kill the child as soon as its temporary file has data in it.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool started = false;
  while (!started && std::chrono::steady_clock::now() < deadline) {
    for (auto& e : std::filesystem::directory_iterator(dir.path)) {
      std::error_code ec;
      auto size = std::filesystem::file_size(e.path(), ec);
      if (e.path().filename().string().find(".tmp-") != std::string::npos && !ec && size > 0) started = true;
    }
    if (!started) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(started);
  REQUIRE(WIFSIGNALED(status));  // killed mid-save, not finished
  CHECK(WTERMSIG(status) == SIGKILL);

  TensorFile after = load_safetensors(path);
  CHECK(after.metadata.at("epoch") == "1");
  REQUIRE(after.tensors.size() == 1);
  CHECK(same_bits(after.at("w"), old[0].second));
  // What the kill leaves is a stale temporary beside the target, never a damaged target.
  auto files = dir.files();
  CHECK(files.size() == 2);
  CHECK(files[0] == "ckpt.safetensors");
  CHECK_THAT(files[1], Contains("ckpt.safetensors.tmp-"));

  // The next save succeeds.
  save_safetensors(path, {{"w", zeros({2})}}, {{"epoch", "3"}});
  CHECK(load_safetensors(path).metadata.at("epoch") == "3");
}
