#include "examples/report.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>

namespace seqgrad::examples {

namespace {
// Asked once: a bar is made in every epoch's first batch, inside the epoch's timing, and isatty()
// is a system call.
bool stdout_is_tty() {
  static const bool tty = isatty(STDOUT_FILENO);
  return tty;
}
}  // namespace

ProgressBar::ProgressBar(int epoch, int epochs, int steps)
    : epoch_(epoch), epochs_(epochs), steps_(steps), tty_(stdout_is_tty()) {}

void ProgressBar::update(int step, double loss, double accuracy) {
  if (!tty_) return;
  constexpr int kWidth = 30;
  int filled = steps_ ? kWidth * step / steps_ : kWidth;
  std::string bar(size_t(filled), '=');
  if (filled < kWidth) bar += '>' + std::string(size_t(kWidth - filled - 1), ' ');
  fmt::print("\rEpoch {}/{} [{}] {}/{} loss {:.4f} acc {:.3f}", epoch_, epochs_, bar, step, steps_, loss, accuracy);
  std::fflush(stdout);
}

void ProgressBar::finish(double loss, double accuracy, double seconds) {
  if (tty_) fmt::print("\r\033[K");
  fmt::print("Epoch {}/{}: loss {:.4f} accuracy {:.3f} ({:.1f} ms)\n", epoch_, epochs_, loss, accuracy, seconds * 1e3);
}

std::string epoch_table(const std::vector<EpochMetrics>& m, double chance, double ceiling) {
  std::string out = fmt::format("{:<6}| {:<7}| {:<9}| {}\n", "Epoch", "Loss", "Accuracy", "Observation");
  out += fmt::format("{:-<6}+{:-<8}+{:-<10}+{:-<44}\n", "", "", "", "");
  for (size_t i = 0; i < m.size(); ++i) {
    const EpochMetrics& e = m[i];
    std::string note;
    if (i == 0) {
      note = std::abs(e.accuracy - chance) < 0.1 ? fmt::format("near chance ({:.2f}): memory not learned yet", chance)
                                                 : fmt::format("already {:+.2f} over chance", e.accuracy - chance);
    } else {
      const EpochMetrics& p = m[i - 1];
      note = fmt::format("loss {:+.2f}, accuracy {:+.2f}", e.loss - p.loss, e.accuracy - p.accuracy);
      if (e.accuracy > ceiling + 0.005)
        note += fmt::format("; above the {:.2f} ceiling: memorising unpredictable steps", ceiling);
      else if (e.accuracy >= ceiling - 0.05)
        note += fmt::format("; within {:.2f} of the {:.2f} ceiling", std::max(0.0, ceiling - e.accuracy), ceiling);
      else if (e.loss > p.loss)
        note += "; loss rose this epoch";
    }
    out += fmt::format("{:<6}| {:<7.2f}| {:<9.2f}| {}\n", e.epoch, e.loss, e.accuracy, note);
  }
  return out;
}

std::string loss_chart(const std::vector<EpochMetrics>& m) {
  double top = 0;
  for (const auto& e : m) top = std::max(top, e.loss);
  std::string out = "Loss per epoch\n";
  for (const auto& e : m) {
    int width = top > 0 ? int(std::lround(40 * e.loss / top)) : 0;
    std::string bar;
    for (int i = 0; i < width; ++i) bar += "\u2588";
    out += fmt::format("  {:>2} | {:<40} {:.2f}\n", e.epoch, bar, e.loss);
  }
  return out;
}

namespace {
// Writes next to the target and renames over it, so a crash leaves either the old file or the new.
void write_atomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    f.flush();
    if (!f) throw std::runtime_error(fmt::format("cannot write {}", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error(fmt::format("cannot write {}", path));
}
}  // namespace

void write_metrics_csv(const std::vector<EpochMetrics>& m, const std::string& path) {
  std::string text = "epoch,loss,accuracy,seconds\n";
  for (const auto& e : m) text += fmt::format("{},{:.6f},{:.6f},{:.6f}\n", e.epoch, e.loss, e.accuracy, e.seconds);
  write_atomically(path, text);
}

void write_svg_plot(const std::vector<EpochMetrics>& m, const std::string& path) {
  constexpr double W = 640, H = 400, L = 60, R = 50, T = 40, B = 50;
  double max_loss = 0;
  for (const auto& e : m) max_loss = std::max(max_loss, e.loss);
  max_loss = std::max(1.0, std::ceil(max_loss * 10) / 10);
  int last = m.empty() ? 1 : std::max(2, m.back().epoch);
  auto x = [&](double epoch) { return L + (epoch - 1) / (last - 1) * (W - L - R); };
  auto y = [&](double v, double top) { return T + (1 - v / top) * (H - T - B); };
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"22\" font-size=\"15\">Training loss and accuracy per epoch</text>\n",
      W, H, L);
  for (int i = 0; i <= 5; ++i) {  // horizontal grid: 0..1 for accuracy, 0..max_loss for loss
    double v = i / 5.0, py = y(v, 1);
    s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n", L, py, W - R, py);
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.2f}</text>\n", L - 6, py + 4, v * max_loss);
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\">{:.1f}</text>\n", W - R + 6, py + 4, v);
  }
  for (const auto& e : m)
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", x(e.epoch), H - B + 18, e.epoch);
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">epoch</text>\n", (L + W - R) / 2, H - 12);
  auto curve = [&](auto value, double top, const char* color, const char* name, int row) {
    std::string pts;
    for (const auto& e : m) pts += fmt::format("{:.1f},{:.1f} ", x(e.epoch), y(value(e), top));
    s += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n", color, pts);
    for (const auto& e : m)
      s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", x(e.epoch), y(value(e), top), color);
    s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"{}\">{}</text>\n", W - R - 150, T + 16 * row, color, name);
  };
  curve([](const EpochMetrics& e) { return e.loss; }, max_loss, "#c0392b", "loss (left axis)", 1);
  curve([](const EpochMetrics& e) { return e.accuracy; }, 1.0, "#2471a3", "accuracy (right axis)", 2);
  s += "</svg>\n";
  write_atomically(path, s);
}

}  // namespace seqgrad::examples
