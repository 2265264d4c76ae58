// `mpitrain evaluate --checkpoint FILE --data FILE [--split test]`: the exact
// loss and accuracy of a checkpoint's model on one split, sharded across the
// ranks of the job. Rank 0 reads and verifies the checkpoint and broadcasts
// the parameters; every rank evaluates its balanced share of the split's rows
// (evaluate_split: no padding, no row dropped or counted twice). A checkpoint
// of a --deterministic run (or --deterministic here) is evaluated in units
// with exact sums: the same bits on any number of ranks.
#include <algorithm>
#include <boost/program_options.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>

#include "mpitrain/cli/commands.hpp"
#include "mpitrain/comm/placement.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/io/checkpoint_file.hpp"
#include "mpitrain/io/h5.hpp"
#include "mpitrain/train/memory_plan.hpp"
#include "mpitrain/train/config.hpp"
#include "mpitrain/train/evaluation.hpp"

namespace po = boost::program_options;

namespace mpitrain {

namespace {

// Rows per forward pass; the split is read in blocks of this many rows.
constexpr int kEvalCapacityRows = 256;
// ... rounded up to whole --deterministic units.
int capacity_rows(int unit_rows) {
  return unit_rows > 0 ? (kEvalCapacityRows + unit_rows - 1) / unit_rows * unit_rows : kEvalCapacityRows;
}

struct EvaluateCommandOptions {
  std::string checkpoint, data, split = "test";
  int threads = 0;
  bool deterministic = false;
  int unit_rows = 0;  // 0: the checkpoint's (or 32)
  bool json = false, help = false;
  std::string help_text;
};

po::options_description eval_options(EvaluateCommandOptions& o) {
  po::options_description d("mpitrain evaluate options (run under mpirun/srun)");
  d.add_options()
      ("help,h", "print these options")
      ("checkpoint", po::value(&o.checkpoint)->required(), "checkpoint file (e.g. RUN/checkpoints/final.h5)")
      ("data", po::value(&o.data)->required(), "HDF5 dataset file with the split to evaluate")
      ("split", po::value(&o.split)->default_value("test"), "split to evaluate: train | val | test")
      ("threads", po::value(&o.threads)->default_value(0), "BLAS threads per rank (0: automatic)")
      ("deterministic", po::bool_switch(&o.deterministic),
       "bitwise the same result on any number of ranks (on by itself for a --deterministic run's checkpoint)")
      ("deterministic-unit", po::value(&o.unit_rows)->default_value(0),
       "rows per unit (0: the checkpoint's, else 32)")
      ("json", po::bool_switch(&o.json), "also print the result as one JSON line");
  return d;
}

EvaluateCommandOptions parse_eval_args(const std::vector<std::string>& args) {
  EvaluateCommandOptions o;
  const po::options_description desc = eval_options(o);
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    if (vm.count("help")) {
      std::ostringstream text;
      text << "usage: mpirun -np P mpitrain evaluate --checkpoint FILE --data FILE [--split test]\n" << desc;
      o.help = true;
      o.help_text = text.str();
      return o;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw UserError(std::string(e.what()) + " (see 'mpitrain evaluate --help')");
  }
  if (o.threads < 0) throw UserError("--threads must be >= 0 (0: automatic)");
  if (o.unit_rows < 0) throw UserError("--deterministic-unit must be >= 0 (0: the checkpoint's, else 32)");
  if (o.unit_rows > 0) o.deterministic = true;
  return o;
}

// The hidden activation the model was trained with: the `activation` entry
// of the checkpoint's config (relu, the default, when there is none).
Activation activation_from_config(const std::string& ini) {
  const auto entries = parse_ini_entries(ini);
  const auto it = entries.find("activation");
  return it == entries.end() ? Activation::kRelu : parse_activation(it->second);
}

// Rows per --deterministic unit for this evaluation: the command line's, else
// the checkpoint's run's, else 32; 0 when neither asks for the mode.
int units_for(const EvaluateCommandOptions& o, const std::string& ini) {
  const auto entries = parse_ini_entries(ini);
  const auto det = entries.find("deterministic");
  const bool recorded = det != entries.end() && det->second == "true";
  if (!o.deterministic && !recorded) return 0;
  if (o.unit_rows > 0) return o.unit_rows;
  const auto unit = entries.find("deterministic-unit");
  const int u = unit == entries.end() ? 0 : std::atoi(unit->second.c_str());
  return u > 0 ? u : 32;
}

// The data must fit the model: as many features as its input, and the same
// kind of target (class count or target width) as it was trained on.
void check_data_fits(const EvaluateCommandOptions& o, const CheckpointMeta& meta, const Model& model, const DatasetFile& data) {
  const SplitInfo& s = data.split(o.split);
  const std::string prefix = "--data '" + o.data + "' does not fit checkpoint '" + o.checkpoint + "': ";
  if (s.x_width != model.input_width())
    throw UserError(prefix + "its /" + o.split + "/x has " + std::to_string(s.x_width) +
                    " features per row, the model " + meta.model_spec + " takes " + std::to_string(model.input_width()) +
                    ": evaluate on data shaped like the training data");
  if (data.num_classes() != meta.num_classes || s.y_width != meta.y_width)
    throw UserError(prefix + "the data has " + std::to_string(data.num_classes()) + " classes and target width " +
                    std::to_string(s.y_width) + ", the model was trained on " + std::to_string(meta.num_classes) +
                    " classes and target width " + std::to_string(meta.y_width) +
                    ": evaluate on data with the same labels as the training data");
}

int run(const std::vector<std::string>& args, const Comm& comm) {
  EvaluateCommandOptions o;
  comm.collective_check([&] { o = parse_eval_args(args); });
  if (o.help) {
    if (comm.rank() == 0) std::printf("%s", o.help_text.c_str());
    return 0;
  }
  h5::silence_errors();

  // Every rank opens the data (each reads its own rows); rank 0 alone reads
  // and verifies the checkpoint, so a bad file is reported once.
  std::unique_ptr<DatasetFile> data;
  std::unique_ptr<Model> model;
  CheckpointMeta meta;
  std::string activation;
  int unit_rows = 0;
  comm.collective_check([&] {
    data = std::make_unique<DatasetFile>(o.data);
    if (!data->has_split(o.split))
      throw UserError("--data '" + o.data + "' has no /" + o.split + " split: choose another --split");
    if (comm.rank() != 0) return;
    try {
      meta = read_checkpoint_meta(o.checkpoint);
      activation = activation_name(activation_from_config(meta.config_ini));
      unit_rows = units_for(o, meta.config_ini);
      // Before anything is allocated: a spec from a file may ask for any size.
      check_model_memory(meta.model_spec, parse_activation(activation), capacity_rows(unit_rows),
                         static_cast<int>(checkpoint_state_names(o.checkpoint).size()),
                         "checkpoint '" + o.checkpoint + "' holds a model this machine cannot hold");
      model = std::make_unique<Model>(meta.model_spec, parse_activation(activation), capacity_rows(unit_rows));
      const Checkpoint ck =
          read_checkpoint(o.checkpoint, model->arena(), checkpoint_state_names(o.checkpoint));
      std::copy(ck.params.begin(), ck.params.end(), model->arena().params());
    } catch (const SystemError& e) {  // an HDF5 call failed on damaged structure: the user's file, not a fault
      throw UserError("checkpoint '" + o.checkpoint + "' cannot be read, it is corrupted: " + e.what());
    }
    check_data_fits(o, meta, *model, *data);
  });
  comm.broadcast(meta.model_spec, 0);
  comm.broadcast(activation, 0);
  comm.broadcast(&unit_rows, sizeof unit_rows, 0);
  // Before the first BLAS call (the model's init is not one); one thread per rank in units.
  configure_threads(comm, unit_rows > 0 ? 1 : o.threads);
  if (comm.rank() != 0)
    model = std::make_unique<Model>(meta.model_spec, parse_activation(activation), capacity_rows(unit_rows));
  Arena& arena = model->arena();
  comm.broadcast(arena.params(), arena.param_count() * static_cast<long long>(sizeof(float)), 0);

  SplitReader reader(*data, o.split, model->capacity_rows());
  TargetBuffers buffers(model->capacity_rows(), std::max(reader.info().y_width, 1));
  UnitEvaluation units;
  units.unit_rows = unit_rows;
  const EvalResult r =
      evaluate_split(*model, reader, data->num_classes(), comm, buffers, {}, unit_rows > 0 ? &units : nullptr);
  if (comm.rank() == 0) {
    std::printf("checkpoint %s (model %s), %d rank(s)%s\n", o.checkpoint.c_str(), meta.model_spec.c_str(), comm.size(),
                unit_rows > 0 ? (", deterministic in units of " + std::to_string(unit_rows) + " rows").c_str() : "");
    if (std::isnan(r.accuracy))
      std::printf("split %s: loss %.8f (%lld rows)\n", o.split.c_str(), r.loss, r.rows);
    else
      std::printf("split %s: loss %.8f acc %.8f (%lld rows)\n", o.split.c_str(), r.loss, r.accuracy, r.rows);
    if (o.json) {
      char acc[32] = "null";
      if (!std::isnan(r.accuracy)) std::snprintf(acc, sizeof acc, "%.17g", r.accuracy);
      std::printf("{\"type\": \"evaluate\", \"split\": \"%s\", \"loss\": %.17g, \"accuracy\": %s, \"rows\": %lld, "
                  "\"ranks\": %d, \"deterministic\": %s}\n",
                  o.split.c_str(), r.loss, acc, r.rows, comm.size(), unit_rows > 0 ? "true" : "false");
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int evaluate_command(const std::vector<std::string>& args) {
  Comm comm;
  return run_on_all_ranks(comm, [&] { return run(args, comm); });
}

}  // namespace mpitrain
