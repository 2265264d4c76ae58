#include "mpitrain/train/stopping.hpp"

#include <charconv>
#include <cmath>

#include "mpitrain/core/errors.hpp"

namespace mpitrain {

namespace {
constexpr const char* kMetricNames[] = {"train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"};
}

void check_metric_name(const std::string& name, const std::string& option) {
  for (const char* m : kMetricNames)
    if (name == m) return;
  throw UserError(option + " names unknown metric '" + name +
                  "': use train_loss, train_acc, val_loss, val_acc, test_loss or test_acc");
}

bool lower_is_better(const std::string& metric) { return metric.ends_with("_loss"); }

bool Target::reached(double v) const {
  if (!std::isfinite(v)) return false;
  if (op == ">=") return v >= value;
  if (op == ">") return v > value;
  if (op == "<=") return v <= value;
  return v < value;
}

Target parse_target(const std::string& text) {
  Target t;
  t.text = text;
  const size_t pos = text.find_first_of("<>");
  const std::string usage = "write --target like val_acc>=0.88 or val_loss<=0.35";
  if (pos == std::string::npos) throw UserError("bad --target '" + text + "': " + usage);
  t.metric = text.substr(0, pos);
  const bool eq = pos + 1 < text.size() && text[pos + 1] == '=';
  t.op = text.substr(pos, eq ? 2 : 1);
  const std::string num = text.substr(pos + t.op.size());
  const auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), t.value);
  if (num.empty() || ec != std::errc() || end != num.data() + num.size() || !std::isfinite(t.value))
    throw UserError("bad --target '" + text + "': the value is not a number; " + usage);
  check_metric_name(t.metric, "--target");
  return t;
}

EarlyStopping::EarlyStopping(std::string metric, long long patience, double min_delta)
    : metric_(std::move(metric)), patience_(patience), min_delta_(min_delta) {}

bool EarlyStopping::update(long long epoch, double value) {
  const bool lower = lower_is_better(metric_);
  const bool improved =
      best_epoch_ == 0 || (lower ? value < best_ - min_delta_ : value > best_ + min_delta_);
  if (improved && std::isfinite(value)) {
    best_ = value;
    best_epoch_ = epoch;
  }
  return patience_ > 0 && best_epoch_ > 0 && epoch - best_epoch_ >= patience_;
}

}  // namespace mpitrain
