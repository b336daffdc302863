// Shape and dtype: the small value types every tensor carries.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>

#include <fmt/format.h>

namespace seqgrad {

enum class DType : uint8_t { f32, f64 };

constexpr size_t dtype_size(DType d) { return d == DType::f32 ? 4 : 8; }
constexpr const char* dtype_name(DType d) { return d == DType::f32 ? "float32" : "float64"; }

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }

// A tensor's extent along each axis, outermost first (row-major). Fixed capacity: no heap.
class Shape {
 public:
  static constexpr int kMaxRank = 6;

  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(std::span<const int64_t> dims);

  int rank() const { return rank_; }
  int64_t numel() const;
  int64_t operator[](int axis) const { return dims_[axis]; }
  int64_t& operator[](int axis) { return dims_[axis]; }
  const int64_t* begin() const { return dims_.data(); }
  const int64_t* end() const { return dims_.data() + rank_; }
  std::span<const int64_t> dims() const { return {dims_.data(), size_t(rank_)}; }

  void push_back(int64_t d);
  Shape insert(int axis, int64_t d) const;  // a copy with d inserted before `axis`
  Shape erase(int axis) const;              // a copy without `axis`

  // Elements between consecutive indices of `axis` (row-major strides).
  int64_t stride(int axis) const;

  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a.dims_[i] != b.dims_[i]) return false;
    return true;
  }

 private:
  std::array<int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

[[noreturn]] void throw_bad_axis(int axis, int rank, const char* op);
// Maps a possibly negative axis into [0, rank); throws std::invalid_argument naming `op` otherwise.
// Inline: Tensor::size() calls it, and ops call that a few times each.
inline int normalize_axis(int axis, int rank, const char* op) {
  if (axis < -rank || axis >= rank) [[unlikely]] throw_bad_axis(axis, rank, op);
  return axis < 0 ? axis + rank : axis;
}

// NumPy broadcasting of two shapes; throws std::invalid_argument naming `op` when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace seqgrad

// Prints "(2, 3)" like Python's tuple repr.
template <>
struct fmt::formatter<seqgrad::Shape> : fmt::formatter<std::string_view> {
  auto format(const seqgrad::Shape& s, format_context& ctx) const -> decltype(ctx.out()) {
    std::string out = "(";
    for (int i = 0; i < s.rank(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    out += s.rank() == 1 ? ",)" : ")";
    return fmt::formatter<std::string_view>::format(out, ctx);
  }
};

template <>
struct fmt::formatter<seqgrad::DType> : fmt::formatter<std::string_view> {
  auto format(seqgrad::DType d, format_context& ctx) const -> decltype(ctx.out()) {
    return fmt::formatter<std::string_view>::format(seqgrad::dtype_name(d), ctx);
  }
};
