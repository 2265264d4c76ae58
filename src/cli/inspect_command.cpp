// `mpitrain inspect FILE`: what a checkpoint or a dataset file holds, read
// with HDF5 directly (no MPI). For a checkpoint it also verifies the checksum
// by loading it exactly as a resume would (read_checkpoint), so "checksum OK"
// means a resume would accept the file.
// `mpitrain inspect --model SPEC [--json]`: the model's layout as the trainer
// builds it (layers, parameter tensors in the arena, FLOPs per sample, the
// gradient all-reduce's buckets), read from a built Model and plan_buckets.
// The study tools (scripts/mpitrain_study) read the JSON instead of
// re-deriving any of it.
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
#include "mpitrain/comm/bucket_plan.hpp"
#include "mpitrain/comm/gradient_reducer.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/data/dataset.hpp"
#include "mpitrain/io/checkpoint_file.hpp"
#include "mpitrain/io/h5.hpp"
#include "mpitrain/io/json_lines.hpp"
#include "mpitrain/nn/dense.hpp"
#include "mpitrain/nn/model.hpp"

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

// ---- inspect --model: the layout of a model as the trainer builds it.

struct ModelQuery {
  std::string spec;
  std::string activation = "relu";
  long long bucket_bytes = GradientReducer::kDefaultBucketBytes;
  bool json = false;
};

struct LayerInfo {
  std::string name, kind, activation;  // kind: dense, activation or other
  long long params = 0;
  double forward_flops = 0, train_flops = 0;
  size_t tensor_begin = 0, tensor_end = 0;  // its tensors in Arena::views()
};

// Each layer's kind, parameter tensors and FLOPs per sample. The layers
// register their parameters in order (Model's constructor), so replaying that
// on a scratch arena gives each layer's run of tensors; it is checked against
// the model's own arena.
std::vector<LayerInfo> describe_layers(const Model& model) {
  std::vector<LayerInfo> out;
  Arena replay;
  for (size_t i = 0; i < model.layers().size(); ++i) {
    Layer& layer = *model.layers()[i];
    LayerInfo info{layer.name(), "other", ""};
    if (const auto* d = dynamic_cast<const Dense*>(&layer)) {
      const FusedActivation a = d->fused_activation();
      info.kind = "dense";
      info.activation = a == FusedActivation::kRelu ? "relu" : a == FusedActivation::kTanh ? "tanh" : "none";
    } else if (dynamic_cast<const ActivationLayer*>(&layer)) {
      info.kind = "activation";
      info.activation = layer.name();
    }
    info.tensor_begin = replay.views().size();
    layer.register_params(replay);
    info.tensor_end = replay.views().size();
    for (size_t t = info.tensor_begin; t < info.tensor_end; ++t) info.params += replay.views()[t].size;
    // Backward costs a parameter gradient and an input gradient of forward's
    // size each, but the first layer computes no input gradient
    // (Model::backward); `mpitrain bench` counts its GEMM flops the same way.
    info.forward_flops = layer.forward_flops_per_sample();
    info.train_flops = info.forward_flops * (i == 0 ? 2.0 : 3.0);
    out.push_back(info);
  }
  const auto& real = model.arena().views();
  bool same = real.size() == replay.views().size();
  for (size_t t = 0; same && t < real.size(); ++t)
    same = real[t].name == replay.views()[t].name && real[t].offset == replay.views()[t].offset &&
           real[t].size == replay.views()[t].size;
  if (!same) throw std::logic_error("inspect: the layers' parameters do not replay to the model's arena");
  return out;
}

// [first, end) of the arena tensors whose gradients start inside bucket b.
std::pair<size_t, size_t> bucket_tensors(const Arena& arena, const GradientBucket& b) {
  size_t first = arena.views().size(), end = 0;
  for (size_t t = 0; t < arena.views().size(); ++t) {
    const long long at = Arena::kStatSlots + arena.views()[t].offset;
    if (at >= b.begin && at < b.end) first = std::min(first, t), end = t + 1;
  }
  return end == 0 ? std::pair<size_t, size_t>{0, 0} : std::pair{first, end};
}

long long whole(double flops) { return static_cast<long long>(flops); }  // exact below 2^53
long long bytes(long long floats) { return floats * static_cast<long long>(sizeof(float)); }

double total(const std::vector<LayerInfo>& layers, double LayerInfo::*field) {
  double sum = 0;
  for (const LayerInfo& l : layers) sum += l.*field;
  return sum;
}

void print_model_json(const Model& model, const ModelQuery& q, const std::vector<LayerInfo>& info,
                      const std::vector<GradientBucket>& plan) {
  const Arena& arena = model.arena();
  std::vector<JsonObject> layers, tensors, buckets;
  for (size_t i = 0; i < info.size(); ++i) {
    const LayerInfo& l = info[i];
    JsonObject o;
    o.add("index", static_cast<long long>(i)).add("name", l.name).add("kind", l.kind);
    if (!l.activation.empty()) o.add("activation", l.activation);
    o.add("in", model.layers()[i]->in_width()).add("out", model.layers()[i]->out_width()).add("params", l.params)
        .add("forward_flops_per_sample", whole(l.forward_flops)).add("train_flops_per_sample", whole(l.train_flops))
        .add("tensor_begin", static_cast<long long>(l.tensor_begin))
        .add("tensor_end", static_cast<long long>(l.tensor_end));
    layers.push_back(o);
    for (size_t t = l.tensor_begin; t < l.tensor_end; ++t) {
      const ParamView& v = arena.views()[t];
      tensors.push_back(JsonObject().add("name", v.name).add("layer", static_cast<long long>(i))
                            .add("offset", v.offset).add("count", v.size));
    }
  }
  for (const GradientBucket& b : plan) {
    const auto [first, end] = bucket_tensors(arena, b);
    buckets.push_back(JsonObject().add("begin", b.begin).add("end", b.end).add("floats", b.end - b.begin)
                          .add("bytes", bytes(b.end - b.begin)).add("holds_stats", b.begin < Arena::kStatSlots)
                          .add("tensor_begin", static_cast<long long>(first))
                          .add("tensor_end", static_cast<long long>(end)));
  }
  JsonObject out;
  out.add("model", model.spec()).add("activation", q.activation).add("input_width", model.input_width())
      .add("output_width", model.output_width()).add_array("layers", layers).add_array("tensors", tensors)
      .add("param_count", model.param_count()).add("arena_floats", arena.param_count())
      .add("stat_slots", Arena::kStatSlots).add("reduce_floats", arena.reduce_count())
      .add("forward_flops_per_sample", whole(total(info, &LayerInfo::forward_flops)))
      .add("train_flops_per_sample", whole(total(info, &LayerInfo::train_flops)))
      .add("bucket_bytes", q.bucket_bytes).add_array("buckets", buckets);
  std::cout << out.str() << "\n";
}

void print_model_table(const Model& model, const ModelQuery& q, const std::vector<LayerInfo>& info,
                       const std::vector<GradientBucket>& plan) {
  const Arena& arena = model.arena();
  std::printf("model: %s (activation %s): %d inputs, %d outputs\n", model.spec().c_str(), q.activation.c_str(),
              model.input_width(), model.output_width());
  std::printf("  %3s  %-14s %7s %7s %12s %16s %16s\n", "#", "layer", "in", "out", "params", "forward FLOPs",
              "training FLOPs");
  for (size_t i = 0; i < info.size(); ++i)
    std::printf("  %3zu  %-14s %7d %7d %12lld %16lld %16lld\n", i, info[i].name.c_str(),
                model.layers()[i]->in_width(), model.layers()[i]->out_width(), info[i].params,
                whole(info[i].forward_flops), whole(info[i].train_flops));
  std::printf("FLOPs per sample: forward %lld, training step %lld (forward and backward; the first layer\n"
              "  computes no input gradient)\n",
              whole(total(info, &LayerInfo::forward_flops)), whole(total(info, &LayerInfo::train_flops)));
  std::printf("parameters: %lld in %zu tensors; the arena holds %lld floats (%lld of alignment padding)\n",
              model.param_count(), arena.views().size(), arena.param_count(),
              arena.param_count() - model.param_count());
  std::printf("  %-16s %12s %12s\n", "tensor", "offset", "count");
  for (const ParamView& v : arena.views()) std::printf("  %-16s %12lld %12lld\n", v.name.c_str(), v.offset, v.size);
  std::printf("gradient all-reduce: %d stat slots + %lld floats = %lld bytes in %zu bucket(s) at --bucket-bytes %lld\n",
              Arena::kStatSlots, arena.param_count(), bytes(arena.reduce_count()), plan.size(), q.bucket_bytes);
  std::printf("  %3s %12s %12s %12s  %s\n", "#", "begin", "end", "bytes", "holds");
  for (size_t k = 0; k < plan.size(); ++k) {
    const auto [first, end] = bucket_tensors(arena, plan[k]);
    std::string holds = plan[k].begin < Arena::kStatSlots ? "stats" : "";
    for (size_t t = first; t < end; ++t) holds += (holds.empty() ? "" : ", ") + arena.views()[t].name;
    std::printf("  %3zu %12lld %12lld %12lld  %s\n", k, plan[k].begin, plan[k].end, bytes(plan[k].end - plan[k].begin),
                holds.c_str());
  }
}

// Parses `inspect --model SPEC ...` (options as `--name value` or `--name=value`).
ModelQuery parse_model_query(const std::vector<std::string>& args) {
  ModelQuery q;
  bool have_model = false;
  std::string file;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i], value;
    const size_t eq = name.find('=');
    const bool inline_value = name.starts_with("--") && eq != std::string::npos;
    if (inline_value) value = name.substr(eq + 1), name = name.substr(0, eq);
    const bool valued = name == "--model" || name == "--activation" || name == "--bucket-bytes";
    if (valued && !inline_value) {
      if (i + 1 >= args.size()) throw UserError(name + " needs a value");
      value = args[++i];
    }
    if (name == "--model") {
      q.spec = value;
      have_model = true;
    } else if (name == "--activation") {
      q.activation = value;
    } else if (name == "--bucket-bytes") {
      long long n = 0;
      const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (value.empty() || ec != std::errc() || ptr != value.data() + value.size())
        throw UserError("--bucket-bytes takes a whole number of bytes (got '" + value + "')");
      if (n < 0) throw UserError("--bucket-bytes must be >= 0 (got " + value + "; 0: one all-reduce)");
      q.bucket_bytes = n;
    } else if (name == "--json" && !inline_value) {
      q.json = true;
    } else if (name.starts_with("-")) {
      throw UserError("unknown option '" + args[i] + "' (inspect --model SPEC takes --activation, --bucket-bytes "
                      "and --json)");
    } else if (file.empty()) {
      file = name;
    } else {
      throw UserError("unexpected argument '" + name + "'");
    }
  }
  if (!have_model) throw UserError("--activation, --bucket-bytes and --json go with --model SPEC");
  if (!file.empty())
    throw UserError("give either FILE or --model SPEC, not both (got '" + file + "' and --model '" + q.spec + "')");
  return q;
}

int inspect_model(const std::vector<std::string>& args) {
  const ModelQuery q = parse_model_query(args);
  const Model model(q.spec, parse_activation(q.activation), 1);
  const std::vector<LayerInfo> info = describe_layers(model);
  const std::vector<GradientBucket> plan = plan_buckets(model.arena(), q.bucket_bytes);
  if (q.json) print_model_json(model, q, info, plan);
  else print_model_table(model, q, info, plan);
  std::cout.flush();
  return 0;
}

bool is_model_query(const std::vector<std::string>& args) {
  return std::any_of(args.begin(), args.end(), [](const std::string& a) {
    for (const std::string opt : {"--model", "--activation", "--bucket-bytes", "--json"})
      if (a == opt || a.starts_with(opt + "=")) return true;
    return false;
  });
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
