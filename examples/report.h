// Presentation helpers for the example trainers: a progress bar, the per-epoch table, an ASCII
// loss chart, a metrics CSV and an SVG plot of the curves. Nothing here knows about models.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace seqgrad::examples {

struct EpochMetrics {
  int epoch;
  double loss;
  double accuracy;
  double seconds;  // wall time of the epoch's training
};

// Redraws "Epoch 2/5 [=====>    ] 3/4 loss 0.4812 acc 0.683" in place on a terminal; on anything
// else prints nothing until finish(), which prints one plain line.
class ProgressBar {
 public:
  ProgressBar(int epoch, int epochs, int steps);
  void update(int step, double loss, double accuracy);
  void finish(double loss, double accuracy, double seconds);

 private:
  int epoch_, epochs_, steps_;
  bool tty_;
};

// Epoch | Loss | Accuracy | Observation, with observations computed from the numbers.
std::string epoch_table(const std::vector<EpochMetrics>& m, double chance, double ceiling);
// One bar row per epoch, the bar proportional to the loss.
std::string loss_chart(const std::vector<EpochMetrics>& m);
// Writes "epoch,loss,accuracy,seconds" rows; throws std::runtime_error naming the path on failure.
void write_metrics_csv(const std::vector<EpochMetrics>& m, const std::string& path);
// Loss and accuracy against epoch as a standalone SVG document.
void write_svg_plot(const std::vector<EpochMetrics>& m, const std::string& path);

}  // namespace seqgrad::examples
