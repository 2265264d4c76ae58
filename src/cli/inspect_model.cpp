#include "inspect_model.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <stdexcept>

#include "mpitrain/comm/bucket_plan.hpp"
#include "mpitrain/comm/gradient_reducer.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/io/json_lines.hpp"
#include "mpitrain/nn/conv2d.hpp"
#include "mpitrain/nn/dense.hpp"
#include "mpitrain/nn/model.hpp"

namespace mpitrain {
namespace {

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
    LayerInfo info{layer.name(), layer.kind(), ""};
    const auto fused_name = [](FusedActivation a) {
      return a == FusedActivation::kRelu ? "relu" : a == FusedActivation::kTanh ? "tanh" : "none";
    };
    if (const auto* d = dynamic_cast<const Dense*>(&layer)) info.activation = fused_name(d->fused_activation());
    else if (const auto* cv = dynamic_cast<const Conv2D*>(&layer)) info.activation = fused_name(cv->fused_activation());
    else if (info.kind == "activation") info.activation = layer.name();
    info.tensor_begin = replay.views().size();
    layer.register_params(replay);
    info.tensor_end = replay.views().size();
    for (size_t t = info.tensor_begin; t < info.tensor_end; ++t) info.params += replay.views()[t].size;
    info.forward_flops = layer.forward_flops_per_sample();
    info.train_flops = model.train_flops_per_sample(i);
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
    if (const std::string method = model.layers()[i]->method(); !method.empty()) o.add("method", method);
    o.add("in", model.layers()[i]->in_width()).add("out", model.layers()[i]->out_width())
        .add("in_shape", model.layers()[i]->in_shape().text()).add("out_shape", model.layers()[i]->out_shape().text())
        .add("params", l.params)
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
      .add("input_shape", model.input_shape().text()).add("batch_statistics", model.uses_batch_statistics())
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
  std::printf("model: %s (activation %s): %lld inputs (%s), %lld outputs\n", model.spec().c_str(), q.activation.c_str(),
              model.input_width(), model.input_shape().text().c_str(), model.output_width());
  std::fputs(layer_table(model.summary()).c_str(), stdout);
  std::printf("FLOPs per sample: forward %lld, training step %lld (forward and backward; the first layer\n"
              "  computes no input gradient)\n",
              whole(total(info, &LayerInfo::forward_flops)), whole(total(info, &LayerInfo::train_flops)));
  long long state = 0;  // batch-norm running statistics: in the arena and checkpoints, not trained
  for (const ParamView& v : arena.views())
    if (!v.flags.trainable) state += v.size;
  std::printf("parameters: %lld in %zu tensors; the arena holds %lld floats (%lld of running statistics, %lld of "
              "alignment padding)\n",
              model.param_count(), arena.views().size(), arena.param_count(), state,
              arena.param_count() - model.param_count() - state);
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

}  // namespace

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

}  // namespace mpitrain
