#include "mpitrain/train/evaluation.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "mpitrain/data/sampler.hpp"

namespace mpitrain {

EvalResult evaluate_split(Model& model, SplitReader& reader, int num_classes, const Comm& comm,
                          TargetBuffers& buffers, std::span<const std::int64_t> rows, UnitEvaluation* units) {
  const long long n = rows.empty() ? reader.info().rows : static_cast<long long>(rows.size());
  const int unit_rows = units ? units->unit_rows : 0;
  const RowRange mine = shard_range(n, comm.size(), comm.rank(), unit_rows);
  if (units) units->partials.resize(std::max<size_t>(units->partials.size(), 2 * static_cast<size_t>(unit_count(mine.size(), unit_rows))));
  double sums[2] = {0.0, 0.0};  // loss, correct
  int done = 0;                 // units so far
  // An evaluation pass: no dropout, batch norm with its running statistics;
  // with units, one sgemm per unit as in training.
  struct EvalMode {
    Pass& pass;
    Pass saved;
    EvalMode(Pass& p, int unit_rows) : pass(p), saved(p) {
      pass.training = false;
      pass.unit_rows = unit_rows;
    }
    ~EvalMode() { pass = saved; }
  } eval_mode(model.pass(), unit_rows);
  for (long long begin = mine.begin; begin < mine.end; begin += model.capacity_rows()) {
    const int count = static_cast<int>(std::min<long long>(model.capacity_rows(), mine.end - begin));
    if (rows.empty())
      reader.read_range(begin, count, model.input(), buffers.labels.data(), buffers.targets.data());
    else
      reader.read_rows(rows.subspan(static_cast<size_t>(begin), static_cast<size_t>(count)), model.input(),
                       buffers.labels.data(), buffers.targets.data());
    model.pass().first_row = begin;
    if (units) {
      done += forward_loss_units(model, num_classes, count, nullptr, buffers.labels.data(), buffers.targets.data(),
                                 0.0f, units->partials.data() + 2LL * done, 2);
      continue;
    }
    const LossSums s = forward_loss(model, num_classes, count, buffers, 0.0f);
    sums[0] += s.loss;
    sums[1] += s.correct;
  }
  if (units) units->sum.sum(&comm, units->partials.data(), done, 2, sums);
  else comm.allreduce_sum(sums, 2);
  EvalResult r;
  r.rows = n;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  r.loss = n > 0 ? sums[0] / static_cast<double>(n) : nan;
  r.accuracy = (n > 0 && num_classes > 0) ? sums[1] / static_cast<double>(n) : nan;
  return r;
}

RunEvaluation::RunEvaluation(const DatasetFile& data, const std::string& val_split,
                             std::span<const std::int64_t> val_rows, bool test, int capacity_rows, int unit_rows,
                             const Comm& comm)
    : val_rows_(val_rows), targets_(capacity_rows, data.split("train").y_width) {
  if (val_split == "train") val_.emplace(data, "train", capacity_rows);
  if (val_split == "val") val_.emplace(data, "val", capacity_rows);
  if (test) test_.emplace(data, "test", capacity_rows);
  units_.unit_rows = unit_rows;
  if (unit_rows > 0) {  // sized once for the largest split this rank evaluates
    long long most = static_cast<long long>(val_rows.size());
    if (val_) most = std::max(most, val_->info().rows);
    if (test_) most = std::max(most, test_->info().rows);
    units_.partials.resize(2 * static_cast<size_t>(unit_count(max_shard_rows(most, comm.size(), unit_rows), unit_rows)));
  }
}

void RunEvaluation::run(Model& model, int num_classes, const Comm& comm, EpochMetrics& m) {
  if (val_) {
    const EvalResult v = evaluate_split(model, *val_, num_classes, comm, targets_, val_rows_, units_.unit_rows ? &units_ : nullptr);
    m["val_loss"] = v.loss;
    m["val_acc"] = v.accuracy;
  }
  if (test_) {
    const EvalResult r = evaluate_split(model, *test_, num_classes, comm, targets_, {}, units_.unit_rows ? &units_ : nullptr);
    m["test_loss"] = r.loss;
    m["test_acc"] = r.accuracy;
  }
}

}  // namespace mpitrain
