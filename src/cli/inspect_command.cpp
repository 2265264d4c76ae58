// `mpitrain inspect FILE`: what a checkpoint or a dataset file holds, read
// with HDF5 directly (no MPI). For a checkpoint it also verifies the checksum
// by loading it exactly as a resume would (read_checkpoint), so "checksum OK"
// means a resume would accept the file.
// `mpitrain inspect --model SPEC`: see inspect_model.hpp.
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "mpitrain/cli/commands.hpp"
#include "mpitrain/comm/gradient_reducer.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/data/dataset.hpp"
#include "mpitrain/io/checkpoint_file.hpp"
#include "mpitrain/io/h5.hpp"
#include "mpitrain/nn/model.hpp"
#include "mpitrain/train/memory_plan.hpp"

#include "inspect_model.hpp"

namespace mpitrain {
namespace {

constexpr const char* kPrefix = "mpitrain: ";  // as train and evaluate
constexpr hsize_t kLabelBlock = 1 << 16;

std::string shape_text(const std::vector<hsize_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

h5::Handle open_group(hid_t loc, const std::string& name, const std::string& path) {
  return h5::Handle(h5::check_id(H5Gopen2(loc, name.c_str(), H5P_DEFAULT), "H5Gopen2", path + ":" + name), H5Gclose);
}

// Every dataset below `group` as (relative path, shape), depth first.
void walk_datasets(hid_t group, const std::string& prefix, const std::string& context,
                   std::vector<std::pair<std::string, std::vector<hsize_t>>>& out) {
  for (const std::string& name : h5::child_names(group, context)) {
    h5::Handle obj(h5::check_id(H5Oopen(group, name.c_str(), H5P_DEFAULT), "H5Oopen", context + "/" + name), H5Oclose);
    const H5I_type_t type = H5Iget_type(obj.get());
    if (type == H5I_GROUP) walk_datasets(obj.get(), prefix + name + "/", context + "/" + name, out);
    else if (type == H5I_DATASET) out.emplace_back(prefix + name, h5::dataset_dims(obj.get(), context + "/" + name));
  }
}

}  // namespace

namespace {

int inspect_checkpoint(const std::string& path) {
  const CheckpointMeta meta = read_checkpoint_meta(path);
  h5::Handle f = h5::open_file_readonly(path);
  std::cout << "checkpoint: " << path << "\n"
            << "format: " << kCheckpointFormat << ", written by mpitrain " << meta.version << "\n";
  if (h5::path_exists(f.get(), "/progress")) {
    h5::Handle prog = open_group(f.get(), "/progress", path);
    auto field = [&](const char* name) {
      const auto v = h5::read_attr_int(prog.get(), name);
      return v ? std::to_string(*v) : std::string("(missing)");
    };
    std::cout << "progress: epoch " << field("epoch") << " (epochs completed), step " << field("step_in_epoch")
              << " (steps done in the next epoch), global step " << field("global_step") << ", samples "
              << field("samples") << ", global batch " << field("global_batch") << "\n";
  } else {
    std::cout << "progress: (missing)\n";
  }
  std::cout << "model spec: " << meta.model_spec << "\n"
            << "optimizer: " << meta.optimizer << "\n"
            << "world size: " << meta.world_size << " ranks wrote it\n"
            << "data shape: " << meta.x_width << " features, "
            << (meta.num_classes > 0 ? std::to_string(meta.num_classes) + " classes"
                                     : "targets of width " + std::to_string(meta.y_width))
            << ", " << meta.train_rows << " train rows, seed " << meta.seed << "\n";
  std::vector<std::pair<std::string, std::vector<hsize_t>>> params, state;
  if (h5::path_exists(f.get(), "/params")) walk_datasets(open_group(f.get(), "/params", path).get(), "", path, params);
  std::cout << "parameters (" << params.size() << " datasets):\n";
  for (const auto& [name, dims] : params) std::cout << "  " << name << " " << shape_text(dims) << "\n";
  if (h5::path_exists(f.get(), "/optimizer"))
    walk_datasets(open_group(f.get(), "/optimizer", path).get(), "", path, state);
  std::cout << "optimizer state (" << state.size() << " datasets):\n";
  for (const auto& [name, dims] : state) std::cout << "  " << name << " " << shape_text(dims) << "\n";
  std::cout << "last metrics: " << (meta.last_metrics.empty() ? "(none)" : meta.last_metrics) << "\n"
            << "config:\n";
  std::istringstream config(meta.config_ini);
  for (std::string line; std::getline(config, line);) std::cout << "  " << line << "\n";
  std::cout.flush();

  // The activation does not change the parameter layout: relu builds the same arena.
  // Before anything is allocated: a spec from a file may ask for any size.
  check_model_memory(meta.model_spec, Activation::kRelu, 1, static_cast<int>(checkpoint_state_names(path).size()),
                     "checkpoint '" + path + "' holds a model this machine cannot hold");
  std::unique_ptr<Model> model;
  try {
    model = std::make_unique<Model>(meta.model_spec, Activation::kRelu, 1);
  } catch (const UserError& e) {
    throw UserError("checkpoint '" + path + "' holds an unusable model spec: " + e.what());
  }
  try {
    read_checkpoint(path, model->arena(), checkpoint_state_names(path));
  } catch (const UserError& e) {
    if (std::string(e.what()).find("checksum") == std::string::npos) throw;
    std::cout << "checksum BAD: the parameters, optimizer state or progress were changed after writing\n";
    return 1;
  }
  std::cout << "checksum OK\n";
  return 0;
}

// Label range and per-class counts over all rows of a [N] int32 label set.
void print_label_stats(hid_t y, hsize_t rows, int num_classes, const std::string& context) {
  std::map<long long, long long> counts;
  std::vector<int> block(static_cast<size_t>(std::min<hsize_t>(kLabelBlock, std::max<hsize_t>(rows, 1))));
  h5::Handle fspace(h5::check_id(H5Dget_space(y), "H5Dget_space", context), H5Sclose);
  for (hsize_t start = 0; start < rows; start += kLabelBlock) {
    hsize_t count = std::min<hsize_t>(kLabelBlock, rows - start);
    h5::check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr),
              "H5Sselect_hyperslab", context);
    h5::Handle mspace(h5::check_id(H5Screate_simple(1, &count, nullptr), "H5Screate_simple", context), H5Sclose);
    h5::check(H5Dread(y, H5T_NATIVE_INT, mspace.get(), fspace.get(), H5P_DEFAULT, block.data()), "H5Dread", context);
    for (hsize_t i = 0; i < count; ++i) ++counts[block[i]];
  }
  if (counts.empty()) {
    std::cout << "  labels: none (no rows)\n";
    return;
  }
  std::cout << "  label range: " << counts.begin()->first << " .. " << counts.rbegin()->first << " ("
            << counts.size() << " of " << num_classes << " classes present)\n  class counts:";
  for (long long c = 0; c < num_classes; ++c) std::cout << " " << c << ":" << (counts.count(c) ? counts[c] : 0);
  std::cout << "\n";
}

int inspect_dataset(const std::string& path, const DatasetFile& data) {
  std::cout << "dataset: " << path << "\n"
            << "num_classes: " << data.num_classes() << (data.num_classes() == 0 ? " (regression)" : "") << "\n";
  for (const char* attr : {"source", "description"})
    std::cout << attr << ": " << h5::read_attr_string(data.handle(), attr).value_or("(none)") << "\n";
  for (const char* name : {"train", "val", "test"}) {
    if (!data.has_split(name)) continue;
    const SplitInfo& s = data.split(name);
    const std::string xname = "/" + s.name + "/x", yname = "/" + s.name + "/y";
    h5::Handle x = h5::open_dataset(data.handle(), xname, path);
    h5::Handle y = h5::open_dataset(data.handle(), yname, path);
    const auto ydims = h5::dataset_dims(y.get(), path + ":" + yname);
    std::cout << "split " << s.name << ": " << s.rows << " rows\n"
              << "  x: " << shape_text(h5::dataset_dims(x.get(), path + ":" + xname)) << " "
              << h5::elem_type_name(s.x_type) << ", scale " << s.scale << ", mean " << s.mean << ", std " << s.std
              << "\n"
              << "  y: " << shape_text(ydims) << " " << h5::describe_type(y.get()) << "\n";
    if (s.y_width == 0) print_label_stats(y.get(), ydims[0], data.num_classes(), path + ":" + yname);
  }
  return 0;
}

int inspect(const std::string& path) {
  h5::silence_errors();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw UserError("'" + path + "' does not exist");
  // Stat only: H5Fis_hdf5 would open a FIFO and wait for a writer forever.
  if (!std::filesystem::is_directory(path, ec) && !std::filesystem::is_regular_file(path, ec))
    throw UserError("'" + path + "' is not a regular file (a FIFO, socket or device): pass a checkpoint or dataset file");
  if (!std::filesystem::is_directory(path, ec) && H5Fis_hdf5(path.c_str()) <= 0)
    throw UserError("'" + path + "' is not an HDF5 file, so neither a checkpoint nor a dataset (truncated?)");
  std::string format;
  {
    h5::Handle f = h5::open_file_readonly(path);  // UserError: missing, a directory, not HDF5
    format = h5::read_attr_string(f.get(), "format").value_or("");
  }
  if (format == kCheckpointFormat) {
    try {
      return inspect_checkpoint(path);
    } catch (const SystemError& e) {  // an HDF5 call failed on damaged structure
      throw UserError("checkpoint '" + path + "' cannot be read, it is corrupted: " + e.what());
    }
  }
  if (format.starts_with("mpitrain-checkpoint"))
    throw UserError("'" + path + "' is a checkpoint of format '" + format + "'; this mpitrain reads '" +
                    kCheckpointFormat + "'");
  std::unique_ptr<DatasetFile> data;
  try {
    data = std::make_unique<DatasetFile>(path);
  } catch (const UserError& e) {
    throw UserError("'" + path + "' is neither an mpitrain checkpoint (no format attribute '" + kCheckpointFormat +
                    "') nor a valid dataset file: " + e.what());
  }
  return inspect_dataset(path, *data);
}

void print_usage(std::ostream& os) {
  os << "usage: mpitrain inspect FILE\n"
        "       mpitrain inspect --model SPEC [--activation relu|tanh|gelu] [--bucket-bytes N] [--json]\n"
        "  FILE: an mpitrain checkpoint (prints progress, model, shapes, metrics, config and\n"
        "        verifies the checksum: exit 1 if it is BAD) or an HDF5 dataset file (prints\n"
        "        splits, shapes, dtypes, label range and class counts)\n"
        "  --model SPEC: the model as the trainer builds it: layers, parameter tensors in the\n"
        "        arena, FLOPs per sample and the gradient all-reduce's buckets at --bucket-bytes\n"
        "        (default "
     << GradientReducer::kDefaultBucketBytes << ", the trainer's); --json prints them as one JSON object\n";
}

}  // namespace

int inspect_command(const std::vector<std::string>& args) {
  if (std::find_if(args.begin(), args.end(), [](const std::string& a) { return a == "--help" || a == "-h"; }) !=
      args.end()) {
    print_usage(std::cout);
    return 0;
  }
  if (is_model_query(args)) {
    try {
      return inspect_model(args);
    } catch (const UserError& e) {  // one line: the tools that call this show it as is
      std::cerr << kPrefix << "error: " << e.what() << "\n";
      return kExitUserError;
    }
  }
  if (args.size() != 1 || args[0].starts_with("-")) {
    std::cerr << kPrefix << "error: "
              << (args.empty() ? std::string("missing FILE")
                  : args.size() > 1 ? "expected one FILE, got " + std::to_string(args.size()) + " arguments"
                                    : "unknown option '" + args[0] + "'")
              << "\n";
    print_usage(std::cerr);
    return kExitUserError;
  }
  try {
    return inspect(args[0]);
  } catch (const UserError& e) {
    std::cout.flush();
    std::cerr << kPrefix << "error: " << e.what() << "\n";
    return kExitUserError;
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << kPrefix << "error: " << e.what() << "\n";
    return kExitSystemError;
  }
}

}  // namespace mpitrain
