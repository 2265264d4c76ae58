// Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/):
// recipes of valid dataset files and checkpoints, so the fuzzer starts from
// files the readers accept and mutates their attributes, shapes and types,
// plus the crafted files of issue 17; and texts of configs and model specs.
// Run once when the encoding changes:  make_seeds tests/fuzz/corpus
// To see what an input makes (e.g. with h5dump):
//   make_seeds --h5 fuzz_dataset|fuzz_checkpoint INPUT OUT.h5
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "dictionaries.hpp"
#include "h5_recipe.hpp"
#include "mpitrain/io/checkpoint_file.hpp"
#include "mpitrain/nn/model.hpp"

namespace {

using namespace mpitrain;
using namespace mpitrain::fuzz;
namespace fs = std::filesystem;
using W = RecipeWriter;

fs::path out_dir;

void save(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(out_dir / target);
  std::ofstream(out_dir / target / name, std::ios::binary) << bytes;
}

// A finding's input, written by hand (tests/fuzz/regressions/<target>/, next to corpus/).
void save_regression(const std::string& target, const std::string& name, const std::string& bytes) {
  const fs::path dir = out_dir.parent_path() / "regressions" / target;
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

// The reader choices fuzz_dataset takes before its recipe: capacity, scattered rows, seed.
std::string dataset_prefix(unsigned capacity, unsigned scattered) {
  FuzzOutput o;
  o.u8(capacity - 1).u8(scattered - 1).u32(12345);
  return o.bytes;
}

// A classification dataset: x uint8 [rows, 4], y int32 class ids, 3 classes.
W classification(unsigned flags, unsigned rows, W::Values labels = W::ramp(2)) {
  W w(kDatasetDict, flags);
  w.dataset("/train/x", kU8, {{rows, 4}}, kChunked, {4, 4}, 0, W::ramp(254));
  w.dataset("/train/y", kI32, {{rows}}, kChunked, {4}, 0, labels);
  w.attribute("/", "num_classes", kI64, {}, W::integer(3));
  w.attribute("/train/x", "scale", kF64, {}, W::doubles(1.0 / 255));
  w.dataset("/test/x", kU8, {{4, 4}}, kChunked, {4, 4}, 0, W::ramp(9));
  w.dataset("/test/y", kI32, {{4}}, kContiguous, {}, 0, W::ramp(2));
  return w;
}

void dataset_seeds() {
  const std::string p = dataset_prefix(4, 3);
  save("fuzz_dataset", "valid-classes", p + classification(0, 8).bytes());
  save("fuzz_dataset", "valid-classes-latest-format", p + classification(1, 8).bytes());
  save("fuzz_dataset", "valid-classes-labels-checked-per-read", p + classification(2, 8).bytes());
  {
    W w(kDatasetDict, 0);
    w.dataset("/train/x", kF32, {{6, 3}}, kContiguous, {}, 0, W::ramp(5));
    w.dataset("/train/y", kF32, {{6, 2}}, kContiguous, {}, 0, W::doubles(0.5));
    save("fuzz_dataset", "valid-regression-contiguous", dataset_prefix(3, 2) + w.bytes());
  }
  {
    W w(kDatasetDict, 1);
    w.dataset("/train/x", kU8, {{5, 5, 5}}, kChunked, {2, 5, 5}, kShuffle | kDeflate | kFletcher32, W::ramp(200));
    w.dataset("/train/y", kI32, {{5}}, kChunked, {2}, kFletcher32, W::ramp(1));
    w.attribute("/", "num_classes", kI32, {}, W::integer(2));
    w.attribute("/train/x", "mean", kF64, {}, W::doubles(0.25));
    w.attribute("/train/x", "std", kF32, {}, W::doubles(2.0));
    save("fuzz_dataset", "valid-images-filtered", dataset_prefix(2, 2) + w.bytes());
  }
  {
    W w(kDatasetDict, 0);
    w.dataset("/train/x", kU8, {{4, 3, 3, 2}}, kChunked, {1, 3, 3, 2}, 0, W::ramp(77));
    w.dataset("/train/y", kI32, {{4}}, kContiguous, {}, 0, W::ramp(3));
    w.dataset("/val/x", kF32BE, {{2, 3, 3, 2}}, kContiguous, {}, 0, W::doubles(1.5));
    w.dataset("/val/y", kI32BE, {{2}}, kCompact, {}, 0, W::integer(1));
    w.attribute("/", "num_classes", kU8, {}, W::integer(4));
    save("fuzz_dataset", "valid-channels-last-val-big-endian", dataset_prefix(8, 8) + w.bytes());
  }
  // Issue 17's crafted files: each must be one clear refusal.
  {
    W w = classification(0, 8);
    w.attribute("/train/x", "scale", kF64, {{4096}}, W::doubles(2.0));
    save("fuzz_dataset", "issue17-scale-array-4096", p + w.bytes());
  }
  {
    W w = classification(0, 8);
    w.attribute("/", "num_classes", kI64, {{4096}}, W::integer(3));
    save("fuzz_dataset", "issue17-num-classes-array-4096", p + w.bytes());
  }
  {
    W w = classification(0, 8);
    w.attribute("/train/x", "scale", kFixedString, {}, W::text("/train"), 8);
    save("fuzz_dataset", "issue17-scale-string", p + w.bytes());
  }
  {
    W w(kDatasetDict, 0);
    w.dataset("/train/x", kU8, {{0x7fffffffu, 4}}, kChunked | kUnwritten, {64, 4}, 0, W::ramp(1));
    w.dataset("/train/y", kI32, {{0x7fffffffu}}, kChunked | kUnwritten, {64}, 0, W::ramp(1));
    w.attribute("/", "num_classes", kI64, {}, W::integer(2));
    save("fuzz_dataset", "issue17-declares-rows-never-written", p + w.bytes());
  }
  {
    W w(kDatasetDict, 0);
    w.dataset("/train/x", kU8, {{8, 4}}, kChunked, {4, 4}, kFletcher32, W::ramp(9));
    w.dataset("/train/y", kI32, {{8}}, kContiguous, {}, 0, W::ramp(1));
    w.attribute("/", "num_classes", kI64, {}, W::integer(2));
    w.raw_chunk("/train/x", 1, 0, true, "damaged");
    save("fuzz_dataset", "issue17-chunk-fails-fletcher32", p + w.bytes());
  }
  {
    W w = classification(0, 8, W::integer(-1));
    save("fuzz_dataset", "label-outside-classes", p + w.bytes());
  }
}

// A checkpoint of `spec` that read_checkpoint accepts: parameters ramp(6),
// SGD velocity zeros, progress values, both checksums (meta_crc32 optional).
std::string checkpoint(const std::string& spec, bool with_meta_crc, unsigned flags, unsigned filters = 0) {
  W w(kCheckpointDict, flags);
  Model model(spec, Activation::kRelu, 1);
  const Arena& arena = model.arena();
  std::vector<float> params(static_cast<size_t>(arena.param_count()), 0.0f), velocity(params.size(), 0.0f);
  for (const ParamView& v : arena.views()) {
    std::vector<unsigned> dims(v.shape.begin(), v.shape.end());
    std::vector<std::uint32_t> space(v.shape.begin(), v.shape.end());
    w.dataset("/params/" + v.name, kF32, {space}, kChunked, dims, filters, W::ramp(6));
    w.dataset("/optimizer/velocity/" + v.name, kF32, {space}, kChunked, dims, 0, W::doubles(0.0));
    for (long long i = 0; i < v.size; ++i) params[static_cast<size_t>(v.offset + i)] = static_cast<float>(i % 7);
  }
  TrainProgress pr;
  pr.epoch = 1; pr.step_in_epoch = 2; pr.global_step = 5; pr.samples = 40; pr.global_batch = 8;
  pr.optimizer_steps = 5; pr.epoch_samples = 16; pr.previous_lr = 0.05; pr.first_loss = 1.1;
  pr.epoch_loss_sum = 2.5; pr.elapsed_s = 0.25;
  const std::pair<const char*, long long> ints[] = {
      {"epoch", pr.epoch}, {"step_in_epoch", pr.step_in_epoch}, {"global_step", pr.global_step},
      {"samples", pr.samples}, {"global_batch", pr.global_batch}, {"optimizer_steps", pr.optimizer_steps},
      {"epoch_samples", pr.epoch_samples}, {"best_epoch", 0}, {"target_epoch", 0}, {"target_step", 0},
      {"target_samples", 0}};
  const std::pair<const char*, double> reals[] = {
      {"previous_lr", pr.previous_lr}, {"first_loss", pr.first_loss}, {"epoch_loss_sum", pr.epoch_loss_sum},
      {"epoch_correct_sum", 0.0}, {"elapsed_s", pr.elapsed_s}, {"best_value", 0.0}, {"target_time_s", 0.0}};
  w.group("/progress");
  for (const auto& [n, v] : ints) w.attribute("/progress", n, kI64, {}, W::integer(v));
  for (const auto& [n, v] : reals) w.attribute("/progress", n, kF64, {}, W::doubles(v));
  CheckpointMeta meta;
  meta.version = "0.1.0"; meta.model_spec = spec; meta.optimizer = "sgd";
  meta.config_ini = "seed = 1\nglobal-batch = 8\nactivation = relu\n";
  meta.last_metrics = "{\"type\":\"epoch\",\"epoch\":1}";
  meta.world_size = 2; meta.train_rows = 32; meta.x_width = static_cast<int>(model.input_width());
  meta.num_classes = 2; meta.y_width = 0; meta.seed = 1;
  const auto text = [&](const char* n, const std::string& v) {
    w.attribute("/", n, kFixedString, {}, W::text(v), static_cast<unsigned>(std::max<size_t>(v.size(), 1)));
  };
  text("format", kCheckpointFormat);
  text("version", meta.version);
  text("model_spec", meta.model_spec);
  text("optimizer", meta.optimizer);
  text("config", meta.config_ini);
  text("last_metrics", meta.last_metrics);
  w.attribute("/", "world_size", kI64, {}, W::integer(meta.world_size));
  w.attribute("/", "train_rows", kI64, {}, W::integer(meta.train_rows));
  w.attribute("/", "x_width", kI64, {}, W::integer(meta.x_width));
  w.attribute("/", "num_classes", kI64, {}, W::integer(meta.num_classes));
  w.attribute("/", "y_width", kI64, {}, W::integer(meta.y_width));
  w.attribute("/", "seed", kI64, {}, W::integer(1));
  if (with_meta_crc) w.attribute("/", "meta_crc32", kI64, {}, W::integer(checkpoint_meta_checksum(meta)));
  const std::uint32_t crc = checkpoint_checksum(params.data(), arena.param_count(), {{"velocity", velocity.data()}}, pr);
  w.attribute("/", "checksum_crc32", kI64, {}, W::integer(crc));
  return w.bytes();
}

void checkpoint_seeds() {
  const std::string mlp = "3-4-2", cnn = "1x4x4 conv3x3:2 relu flatten dense:2";
  save("fuzz_checkpoint", "valid-mlp-sgd", checkpoint(mlp, true, 0));
  save("fuzz_checkpoint", "valid-mlp-sgd-resume-names", checkpoint(mlp, true, 2));
  save("fuzz_checkpoint", "valid-mlp-before-meta-crc", checkpoint(mlp, false, 1));
  save("fuzz_checkpoint", "valid-cnn-sgd", checkpoint(cnn, true, 0));
  save("fuzz_checkpoint", "valid-mlp-fletcher32-deflate", checkpoint(mlp, true, 0, kFletcher32 | kDeflate));
  {
    // A parameter chunk of 1 byte under Fletcher-32: libhdf5 1.10.8 read past
    // it (H5_checksum_fletcher32) until the reader checked chunk sizes.
    W w(kCheckpointDict, 0);
    w.raw_chunk("/params/dense0/W", 0, 0, false, "?");
    save_regression("fuzz_checkpoint", "fletcher32-chunk-shorter-than-checksum",
                    checkpoint(mlp, true, 0, kFletcher32) + w.bytes().substr(1));
  }
  // Issue 17's crafted checkpoints (the last op replaces the attribute).
  // (Attributes over 64 KiB need the latest file format: flags bit 0.)
  const auto crafted = [&](const std::string& name, auto&& change) {
    W w(kCheckpointDict, 0);
    std::string bytes = checkpoint(mlp, true, 1);
    change(w);
    save("fuzz_checkpoint", name, bytes + w.bytes().substr(1));  // drop the second flags byte
  };
  crafted("issue17-global-step-array-4096", [](W& w) { w.attribute("/progress", "global_step", kI64, {{4096}}, W::integer(1)); });
  crafted("issue17-previous-lr-array-4096", [](W& w) { w.attribute("/progress", "previous_lr", kF64, {{4096}}, W::doubles(1)); });
  crafted("issue17-world-size-array-4096", [](W& w) { w.attribute("/", "world_size", kI64, {{4096}}, W::integer(2)); });
  crafted("issue17-config-array-of-long-strings", [](W& w) {
    w.attribute("/", "config", kFixedString, {{64}}, W::text("seed = 1\nglobal-batch = 8\nactivation = relu\n"), 4000);
  });
  crafted("issue17-config-blank", [](W& w) { w.attribute("/", "config", kFixedString, {}, W::text(""), 1); });
  crafted("huge-model-spec", [](W& w) { w.attribute("/", "model_spec", kVarString, {}, W::text("784-1000000000-10")); });
  crafted("config-over-16mib", [](W& w) { w.attribute("/", "config", kFixedString, {}, W::text("seed = 1\n"), kHugeStringCode); });
}

void text_seeds() {
  const std::string sep = "\xff";
  const std::vector<std::pair<std::string, std::string>> configs = {
      {"ini-and-words", "data = x.h5\nmodel = 784-256-10\nepochs = 3\n" + sep + "--global-batch" + sep + "64"},
      {"bom", "\xEF\xBB\xBFlr = 0.1\nseed = 7\n"},
      {"optimizers", "optimizer = adamw\nbeta1 = 0.9\n" + sep + "--lr-decay" + sep + "cosine" + sep +
                         "--warmup-epochs" + sep + "1.5" + sep + "--lr-final-fraction" + sep + "0.01"},
      {"batch-schedule", "batch-schedule = 2:512,4:1024\nbatch-schedule-lr = hold\nglobal-batch = 256\nepochs = 6\n"},
      {"target", sep + "--target" + sep + "val_acc>=0.9" + sep + "--stop-at-target" + sep + "--target-hold" + sep + "3" +
                     sep + "--val-fraction" + sep + "0.1"},
      {"deterministic", "deterministic = true\ndeterministic-unit = 4\nmicro-batch = 8\n" + sep + "--global-batch" + sep + "32"},
      {"resume", sep + "--resume" + sep + "--checkpoint-dir" + sep + "ckpts" + sep + "--keep-last" + sep + "2"},
      {"epochs-huge", sep + "--epochs" + sep + "9223372036854775807"},
      {"nul-in-value", sep + "--metrics" + sep + std::string("a\0b", 3)},
      {"help", sep + "--help"},
      {"cnn-augment", sep + "--model=1x28x28 conv5x5:32 relu maxpool2 dense:10" + sep + "--augment" + sep + "crop+flip"},
      {"lr-milestones", "[section]\nlr-decay = step\nlr-milestones = 2,4\nlr-gamma = 0.5\n"},
      {"lars", "optimizer = lars\nlars-eta = 0.001\nexclude-bias = true\ntrust-clip = 1\nmomentum = 0.9\n"},
      {"bad-number", "lr = abc\n"},
  };
  for (const auto& [name, bytes] : configs) save("fuzz_config", name, bytes);
  const std::vector<std::pair<std::string, std::string>> specs = {
      {"mlp", std::string(1, '\0') + "784-256-10"},
      {"lenet", std::string(1, '\x04') + "1x28x28 conv5x5:32 relu maxpool2 dense:128 relu dense:10"},
      {"cnn-bn-stride-pad", std::string(1, '\x09') + "3x8x8 conv3x3:4,stride=2,pad=1 batchnorm relu avgpool2 flatten dense:5"},
      {"gap-valid", std::string(1, '\x01') + "1x6x6 conv3x3:2,pad=valid gap dense:3"},
      {"pool-dropout-tanh", std::string(1, '\x02') + "2x5x7 maxpool3,stride=2 flatten dropout:0.5 dense:4 tanh dense:2"},
      {"gelu", std::string(1, '\x0e') + "10 dense:5 gelu dense:2"},
      {"bn-first", std::string(1, '\x00') + "1x4x4 bn conv2x2:3 relu flatten dense:2"},
      {"too-large", std::string(1, '\x00') + "784-10000000-10"},
      {"kernel-too-large", std::string(1, '\x00') + "1x4x4 conv5x5:2 dense:2"},
  };
  for (const auto& [name, bytes] : specs) save("fuzz_model_spec", name, bytes);
}

}  // namespace

// Writes the HDF5 file a fuzz_dataset or fuzz_checkpoint input describes.
int write_h5(const std::string& target, const std::string& input, const std::string& out) {
  std::ifstream in(input, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
  FuzzInput recipe(data, bytes.size());
  if (target == "fuzz_dataset") {
    recipe.u16();  // the reader choices before the recipe (fuzz_dataset.cpp)
    recipe.u32();
  } else if (target != "fuzz_checkpoint") {
    std::fprintf(stderr, "make_seeds --h5: the target is fuzz_dataset or fuzz_checkpoint\n");
    return 2;
  }
  build_h5_file(recipe, out, target == "fuzz_dataset" ? kDatasetDict : kCheckpointDict);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--h5") return write_h5(argv[2], argv[3], argv[4]);
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds OUT_DIR (tests/fuzz/corpus)\n");
    return 2;
  }
  out_dir = argv[1];
  dataset_seeds();
  checkpoint_seeds();
  text_seeds();
  return 0;
}
