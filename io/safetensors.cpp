#include "io/safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace seqgrad::io {

using json = nlohmann::json;

namespace {

constexpr uint64_t kPrefixBytes = 8;  // the header length field

// What a safetensors dtype string means to us. Known-but-unsupported dtypes get their own message.
enum class FileDType { f32, f64, f16, bf16, i8 };

struct DTypeInfo {
  const char* name;
  FileDType type;
  size_t bytes;
};
constexpr DTypeInfo kReadable[] = {
    {"F32", FileDType::f32, 4}, {"F64", FileDType::f64, 8}, {"F16", FileDType::f16, 2}, {"BF16", FileDType::bf16, 2}, {"I8", FileDType::i8, 1}};
// Other dtypes of the safetensors specification: named as unsupported rather than unknown.
constexpr const char* kUnsupported[] = {"BOOL", "U8", "I16", "U16", "I32", "U32", "I64", "U64",
                                        "F8_E5M2", "F8_E4M3", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"};

struct Entry {
  std::string name;
  FileDType type;
  size_t elem_bytes;
  Shape shape;
  uint64_t begin, end;  // relative to the data section
};

// Duplicate keys and nesting depth, seen while the JSON parser runs (nlohmann keeps the last of
// two equal keys silently; a safetensors header with two "w" entries is ambiguous and rejected).
struct HeaderScan {
  std::vector<std::unordered_set<std::string>> keys;  // one set per open object
  std::string current_entry;                          // the last top-level key
  std::string error;                                  // the first problem found
};

[[noreturn]] void fail(const std::string& source, const std::string& msg) {
  throw FormatError(fmt::format("{}: {}", source, msg));
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

json parse_header(const std::string& source, const std::string& text, HeaderScan& scan) {
  auto callback = [&scan](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        // The deepest legitimate structure is a shape: {"w": {"shape": [..]}} opens it at depth 2.
        if (depth >= 3) {
          if (scan.error.empty()) scan.error = fmt::format("header nests deeper than a safetensors header can (entry '{}')", scan.current_entry);
          return false;  // discard the subtree
        }
        if (event == json::parse_event_t::object_start) scan.keys.emplace_back();
        return true;
      case json::parse_event_t::object_end:
        if (!scan.keys.empty()) scan.keys.pop_back();
        return true;
      case json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (depth == 1) scan.current_entry = key;
        if (!scan.keys.empty() && !scan.keys.back().insert(key).second && scan.error.empty())
          scan.error = depth == 1 ? fmt::format("duplicate tensor name '{}' in the header", key)
                                  : fmt::format("duplicate key '{}' in the header entry '{}'", key, scan.current_entry);
        return true;
      }
      default:
        return true;
    }
  };
  try {
    return json::parse(text, callback, /*allow_exceptions=*/true);
  } catch (const json::parse_error& e) {
    // e.byte is 1-based within the header; report the offset in the file.
    std::string what = e.what();
    if (auto pos = what.find("] "); pos != std::string::npos) what = what.substr(pos + 2);
    fail(source, fmt::format("malformed JSON header at byte offset {} ({})", kPrefixBytes + (e.byte ? e.byte - 1 : 0), what));
  } catch (const json::exception& e) {
    fail(source, fmt::format("malformed JSON header: {}", e.what()));
  }
}

Entry parse_entry(const std::string& source, const std::string& name, const json& v) {
  auto bad = [&](const std::string& msg) { fail(source, fmt::format("tensor '{}': {}", name, msg)); };
  if (!v.is_object()) bad(fmt::format("header entry is {}, not an object", v.type_name()));
  Entry e;
  e.name = name;

  auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string()) bad("header entry has no \"dtype\" string");
  const std::string& dname = dt->get_ref<const std::string&>();
  auto known = std::find_if(std::begin(kReadable), std::end(kReadable), [&](auto& d) { return dname == d.name; });
  if (known == std::end(kReadable)) {
    bool unsupported = std::any_of(std::begin(kUnsupported), std::end(kUnsupported), [&](auto* d) { return dname == d; });
    bad(fmt::format("{} dtype \"{}\" (seqgrad reads F32, F64, F16, BF16 and I8)", unsupported ? "unsupported" : "unknown",
                    dname.size() > 32 ? dname.substr(0, 32) + "..." : dname));
  }
  e.type = known->type;
  e.elem_bytes = known->bytes;

  auto sh = v.find("shape");
  if (sh == v.end() || !sh->is_array()) bad("header entry has no \"shape\" array");
  if (sh->size() > size_t(Shape::kMaxRank))
    bad(fmt::format("shape has {} axes; seqgrad tensors have at most {}", sh->size(), Shape::kMaxRank));
  uint64_t numel = 1;
  for (const json& d : *sh) {
    if (!d.is_number_unsigned()) bad(fmt::format("shape extent {} is not a non-negative integer", d.dump()));
    uint64_t x = d.get<uint64_t>();
    if (x > uint64_t(INT64_MAX) || __builtin_mul_overflow(numel, x, &numel))
      bad(fmt::format("shape {} has more elements than can exist", sh->dump()));
    e.shape.push_back(int64_t(x));
  }

  auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned())
    bad("header entry has no \"data_offsets\" [begin, end] of non-negative integers");
  e.begin = (*off)[0].get<uint64_t>();
  e.end = (*off)[1].get<uint64_t>();
  if (e.begin > e.end) bad(fmt::format("data_offsets [{}, {}] end before they begin", e.begin, e.end));
  uint64_t nbytes;
  if (__builtin_mul_overflow(numel, uint64_t(e.elem_bytes), &nbytes) || nbytes != e.end - e.begin)
    bad(fmt::format("data_offsets [{}, {}] hold {} bytes but {} x shape {} needs {}", e.begin, e.end, e.end - e.begin,
                    dname, e.shape, numel > UINT64_MAX / 8 ? std::string("more than 2^64") : std::to_string(nbytes)));
  return e;
}

// Converts n file values (little-endian, already copied into `raw`) to the tensor's dtype.
void convert_half(const uint8_t* raw, float* out, uint64_t n, bool bf16) {
  for (uint64_t i = 0; i < n; ++i) {
    uint16_t h = uint16_t(raw[2 * i] | (raw[2 * i + 1] << 8));
    out[i] = bf16 ? bfloat16_to_float(h) : half_to_float(h);
  }
}

template <class T>
void check_finite(const std::string& source, const Entry& e, uint64_t data_start, const T* v, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i]))
      fail(source, fmt::format("tensor '{}': element {} (byte offset {}) is {}, and finite values were required", e.name,
                               i, data_start + e.begin + i * e.elem_bytes, v[i]));
}

}  // namespace

float half_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf, NaN (payload kept)
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);  // rebias 15 -> 127
  } else if (mant == 0) {
    bits = sign;  // +-0
  } else {
    // Subnormal half: mant * 2^-24, normal as a float.
    int shift = 0;
    while (!(mant & 0x400)) {
      mant <<= 1;
      ++shift;
    }
    bits = sign | (uint32_t(113 - shift) << 23) | ((mant & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bfloat16_to_float(uint16_t b) {
  uint32_t bits = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

const Tensor* TensorFile::find(std::string_view name) const {
  for (auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

const Tensor& TensorFile::at(std::string_view name) const {
  if (const Tensor* t = find(name)) return *t;
  std::string names;
  for (auto& [n, t] : tensors) names += (names.empty() ? "" : ", ") + n;
  throw std::out_of_range(fmt::format("no tensor named '{}'; the file has: {}", name, names));
}

TensorFile read_safetensors(const ByteSource& src, const ReadOptions& opt) {
  const std::string& source = src.name();
  const uint64_t file_size = src.size();
  if (file_size > opt.max_file_bytes)
    fail(source, fmt::format("file is {} bytes, over the limit of {} (ReadOptions::max_file_bytes)", file_size,
                             opt.max_file_bytes));
  if (file_size < kPrefixBytes)
    fail(source, fmt::format("truncated: {} bytes, but a safetensors file starts with an 8-byte header length", file_size));
  uint8_t prefix[kPrefixBytes];
  src.read(0, prefix, kPrefixBytes);
  const uint64_t header_len = read_u64_le(prefix);
  if (header_len > opt.max_header_bytes)
    fail(source, fmt::format("header length {} (bytes 0-7) is over the limit of {} (ReadOptions::max_header_bytes)",
                             header_len, opt.max_header_bytes));
  if (header_len > file_size - kPrefixBytes)
    fail(source, fmt::format("header length {} (bytes 0-7) runs past the end of the file: only {} bytes follow byte 8",
                             header_len, file_size - kPrefixBytes));
  if (header_len < 2) fail(source, fmt::format("header length {} (bytes 0-7) is too short for a JSON object", header_len));

  std::string text(header_len, '\0');  // bounded by the file size and max_header_bytes
  src.read(kPrefixBytes, text.data(), header_len);
  const uint64_t data_start = kPrefixBytes + header_len;
  const uint64_t data_bytes = file_size - data_start;

  HeaderScan scan;
  json header = parse_header(source, text, scan);
  if (!header.is_object()) fail(source, fmt::format("header (byte offset 8) is a JSON {}, not an object", header.type_name()));
  if (!scan.error.empty()) fail(source, scan.error);

  TensorFile out;
  std::vector<Entry> entries;
  entries.reserve(header.size());
  for (auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) fail(source, fmt::format("__metadata__ is a JSON {}, not an object", value.type_name()));
      for (auto& [k, v] : value.items()) {
        if (!v.is_string()) fail(source, fmt::format("__metadata__ value of '{}' is a JSON {}, not a string", k, v.type_name()));
        out.metadata.emplace(k, v.get<std::string>());
      }
      continue;
    }
    Entry e = parse_entry(source, name, value);
    if (e.end > data_bytes)
      fail(source, fmt::format("tensor '{}': data_offsets [{}, {}] (bytes {}-{} of the file) run past the end of the "
                               "data section, which holds {} bytes (file size {})",
                               e.name, e.begin, e.end, data_start + e.begin, data_start + e.end, data_bytes, file_size));
    entries.push_back(std::move(e));
  }

  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end != b.end ? a.end < b.end : a.name < b.name;
  });
  const Entry* prev = nullptr;  // the non-empty range that ends last so far
  for (const Entry& e : entries) {
    if (e.begin == e.end) continue;
    if (prev && e.begin < prev->end)
      fail(source, fmt::format("tensors '{}' (data_offsets [{}, {}]) and '{}' ([{}, {}]) overlap at byte offset {}",
                               prev->name, prev->begin, prev->end, e.name, e.begin, e.end, data_start + e.begin));
    if (!prev || e.end > prev->end) prev = &e;
  }

  out.tensors.reserve(entries.size());
  std::vector<uint8_t> scratch;
  for (const Entry& e : entries) {
    const uint64_t n = e.end - e.begin;  // checked: inside the file
    const uint64_t numel = e.elem_bytes ? n / e.elem_bytes : 0;
    if (e.type == FileDType::f32 || e.type == FileDType::f64) {
      Tensor t = Tensor::empty(e.shape, e.type == FileDType::f32 ? DType::f32 : DType::f64);
      src.read(data_start + e.begin, t.raw(), n);
      if (opt.check_finite) {
        if (e.type == FileDType::f32)
          check_finite(source, e, data_start, t.data<float>(), numel);
        else
          check_finite(source, e, data_start, t.data<double>(), numel);
      }
      out.tensors.emplace_back(e.name, std::move(t));
    } else {
      Tensor t = Tensor::empty(e.shape, DType::f32);
      scratch.resize(n);
      src.read(data_start + e.begin, scratch.data(), n);
      if (e.type == FileDType::i8) {
        std::transform(scratch.begin(), scratch.end(), t.data<float>(), [](uint8_t v) { return float(int8_t(v)); });
        out.int8.insert(e.name);
      } else {
        convert_half(scratch.data(), t.data<float>(), numel, e.type == FileDType::bf16);
      }
      if (opt.check_finite) check_finite(source, e, data_start, t.data<float>(), numel);
      out.tensors.emplace_back(e.name, std::move(t));
    }
  }
  return out;
}

TensorFile parse_safetensors(std::span<const uint8_t> bytes, const ReadOptions& options, const std::string& name) {
  return read_safetensors(MemorySource(bytes, name), options);
}

TensorFile load_safetensors(const std::filesystem::path& path, const ReadOptions& options) {
  return read_safetensors(FileSource(path), options);
}

namespace {

// The header text (padded to a multiple of 8) and the data section's total size.
// A tensor's bytes in the file: its own storage, or int8 values converted from float32.
struct Stored {
  const void* data;
  size_t bytes;
  std::vector<int8_t> int8;
};
Stored stored(const std::string& name, const Tensor& t, const Int8Names& int8) {
  if (!int8.count(name)) return {t.raw(), size_t(t.numel()) * dtype_size(t.dtype()), {}};
  if (t.dtype() != DType::f32)
    throw std::invalid_argument(fmt::format("save_safetensors: tensor '{}' is to be stored as I8 but is not float32", name));
  Stored s{nullptr, size_t(t.numel()), std::vector<int8_t>(size_t(t.numel()))};
  for (size_t i = 0; i < s.int8.size(); ++i) {
    const float v = t.data<float>()[i];
    if (!(v >= -128 && v <= 127) || v != std::nearbyint(v))
      throw std::invalid_argument(fmt::format("save_safetensors: tensor '{}' element {} = {} is not an int8 value", name, i, v));
    s.int8[i] = int8_t(v);
  }
  s.data = s.int8.data();
  return s;
}

std::string make_header(const NamedTensors& tensors, const Metadata& metadata, const Int8Names& int8) {
  json header = json::object();
  std::unordered_set<std::string> names;
  uint64_t offset = 0;
  for (auto& [name, t] : tensors) {
    if (name == "__metadata__")
      throw std::invalid_argument("save_safetensors: '__metadata__' cannot be a tensor name");
    if (!names.insert(name).second)
      throw std::invalid_argument(fmt::format("save_safetensors: tensor name '{}' is given twice", name));
    if (!t.defined()) throw std::invalid_argument(fmt::format("save_safetensors: tensor '{}' is undefined", name));
    const bool i8 = int8.count(name) != 0;
    uint64_t n = uint64_t(t.numel()) * (i8 ? 1 : dtype_size(t.dtype()));
    header[name] = {{"dtype", i8 ? "I8" : t.dtype() == DType::f32 ? "F32" : "F64"},
                    {"shape", std::vector<int64_t>(t.shape().begin(), t.shape().end())},
                    {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {  // a name or metadata string that is not valid UTF-8
    throw std::invalid_argument(fmt::format("save_safetensors: {}", e.what()));
  }
  // Pad with spaces (JSON whitespace) so the data section starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

}  // namespace

void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors, const Metadata& metadata,
                      const Int8Names& int8) {
  std::string header = make_header(tensors, metadata, int8);
  uint8_t prefix[kPrefixBytes];
  for (int i = 0; i < 8; ++i) prefix[i] = uint8_t(uint64_t(header.size()) >> (8 * i));
  AtomicFile f(path);
  f.write(prefix, kPrefixBytes);
  f.write(header.data(), header.size());
  for (auto& [name, t] : tensors) {
    Stored s = stored(name, t, int8);
    f.write(s.data, s.bytes);
  }
  f.commit();
}

std::vector<uint8_t> serialize_safetensors(const NamedTensors& tensors, const Metadata& metadata, const Int8Names& int8) {
  std::string header = make_header(tensors, metadata, int8);
  size_t total = kPrefixBytes + header.size();
  for (auto& [name, t] : tensors) total += size_t(t.numel()) * (int8.count(name) ? 1 : dtype_size(t.dtype()));
  std::vector<uint8_t> out(total);
  for (int i = 0; i < 8; ++i) out[i] = uint8_t(uint64_t(header.size()) >> (8 * i));
  std::memcpy(out.data() + kPrefixBytes, header.data(), header.size());
  size_t pos = kPrefixBytes + header.size();
  for (auto& [name, t] : tensors) {
    Stored s = stored(name, t, int8);
    if (s.bytes) std::memcpy(out.data() + pos, s.data, s.bytes);
    pos += s.bytes;
  }
  return out;
}

}  // namespace seqgrad::io
