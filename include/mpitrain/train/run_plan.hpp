// Everything about a run that is fixed before the first step: the opened and
// checked dataset, which rows train and which validate, the batch and
// learning-rate schedule, buffer sizes, the target. Building it is where bad
// input is found (every rank builds it inside Comm::collective_check), and
// the run header and the metrics header line are printed from it.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mpitrain/comm/communicator.hpp"
#include "mpitrain/comm/placement.hpp"
#include "mpitrain/data/dataset.hpp"
#include "mpitrain/nn/model.hpp"
#include "mpitrain/optim/adascale.hpp"
#include "mpitrain/optim/schedule.hpp"
#include "mpitrain/train/config.hpp"
#include "mpitrain/train/goodput.hpp"
#include "mpitrain/train/stopping.hpp"

namespace mpitrain {

struct RunPlan {
  std::unique_ptr<DatasetFile> data;
  long long train_count = 0;             // rows trained on
  std::vector<std::int64_t> train_rows;  // their /train rows when some are held out (else empty: all)
  std::vector<std::int64_t> val_rows;    // /train rows held out by --val-fraction (sorted)
  std::string val_split;                 // "" none, "val" (/val in the file), "train" (held out of /train)
  bool eval_test = false;                // evaluate /test after each epoch
  std::vector<BatchPhase> phases;
  std::unique_ptr<LrSchedule> schedule;  // the steps of the run's batches (and their rates, but with AdaScale)
  // --lr-scaling adascale: the rate and the end of the run, in scale-invariant
  // iterations; schedule then only counts steps, over `epochs` epochs.
  std::unique_ptr<AdaScaleSchedule> adascale;
  std::vector<BatchChange> batch_changes;   // --batch-changes (empty: none)
  std::vector<long long> batch_candidates;  // --global-batch auto: the batches it chooses from (else empty)
  long long epochs = 0;                  // the most epochs the loop runs: --epochs, or AdaScale's bound
  int capacity = 0;                      // rows per forward/backward (micro-batch or largest shard)
  long long max_shard = 0;               // the most rows a rank computes in a step
  std::optional<Target> target;
};

// Throws UserError on anything the user must fix.
RunPlan make_run_plan(const Config& c, const Comm& comm);

void print_run_header(const Config& c, const Comm& comm, const Placement& place, const RunPlan& p,
                      const Model& m);

}  // namespace mpitrain
