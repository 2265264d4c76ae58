// Tests of checkpoint files (checkpoint.hpp): a round trip restores every
// value, the `latest` pointer and keep-last housekeeping, and every refused
// checkpoint (corrupted, truncated, incomplete, another model, not a
// checkpoint, absent) is refused with a message naming the problem.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "mpitrain/core/errors.hpp"
#include "mpitrain/io/checkpoint_file.hpp"
#include "mpitrain/io/h5.hpp"
#include "mpitrain/nn/model.hpp"
#include "mpitrain/train/noise_scale.hpp"

namespace fs = std::filesystem;
using namespace mpitrain;

namespace {

// Every field of TrainProgress: the round trip and the checksum must cover each.
constexpr long long TrainProgress::*kInts[] = {
    &TrainProgress::epoch, &TrainProgress::step_in_epoch, &TrainProgress::global_step, &TrainProgress::samples,
    &TrainProgress::global_batch, &TrainProgress::optimizer_steps, &TrainProgress::epoch_samples,
    &TrainProgress::best_epoch, &TrainProgress::target_epoch, &TrainProgress::target_step,
    &TrainProgress::target_samples, &TrainProgress::best_ckpt_epoch, &TrainProgress::target_streak,
    &TrainProgress::target_first_epoch, &TrainProgress::target_first_step, &TrainProgress::target_first_samples};
constexpr double TrainProgress::*kReals[] = {
    &TrainProgress::previous_lr, &TrainProgress::first_loss, &TrainProgress::epoch_loss_sum,
    &TrainProgress::epoch_correct_sum, &TrainProgress::elapsed_s, &TrainProgress::best_value,
    &TrainProgress::target_time_s, &TrainProgress::best_ckpt_value, &TrainProgress::target_first_time_s,
    &TrainProgress::adascale_tau, &TrainProgress::eval_time_s, &TrainProgress::target_train_time_s,
    &TrainProgress::target_first_train_time_s};
using NoiseState = NoiseScaleEstimator::State;
constexpr long long NoiseState::*kNoiseInts[] = {&NoiseState::updates};
constexpr double NoiseState::*kNoiseReals[] = {&NoiseState::ema_g2, &NoiseState::ema_s, &NoiseState::decay_pow};
static_assert(sizeof(NoiseState) == (std::size(kNoiseInts) + std::size(kNoiseReals)) * 8,
              "NoiseScaleEstimator::State gained a field: add it to kNoiseInts/kNoiseReals (and the checkpoint)");
static_assert(sizeof(TrainProgress) == (std::size(kInts) + std::size(kReals)) * 8 + sizeof(NoiseState),
              "TrainProgress gained a field: add it to kInts/kReals (and to the checkpoint and its checksum)");
// The /progress attributes added after the first format (optional when reading).
const std::vector<std::string> kAddedAttrs = {"best_ckpt_epoch",    "best_ckpt_value",    "noise_updates",
                                              "noise_ema_g2",       "noise_ema_s",        "noise_decay_pow",
                                              "target_streak",      "target_first_epoch", "target_first_step",
                                              "target_first_samples", "target_first_time_s", "adascale_tau",
                                              "eval_time_s",        "target_train_time_s", "target_first_train_time_s"};

// The checksum as the first format computed it (before the added fields):
// what a checkpoint written by an older build carries.
// The fields added after the first format (optional when reading).
bool added_int(long long TrainProgress::*f) {
  return f == &TrainProgress::best_ckpt_epoch || f == &TrainProgress::target_streak ||
         f == &TrainProgress::target_first_epoch || f == &TrainProgress::target_first_step ||
         f == &TrainProgress::target_first_samples;
}
bool added_real(double TrainProgress::*f) {
  return f == &TrainProgress::best_ckpt_value || f == &TrainProgress::target_first_time_s ||
         f == &TrainProgress::adascale_tau || f == &TrainProgress::eval_time_s ||
         f == &TrainProgress::target_train_time_s || f == &TrainProgress::target_first_train_time_s;
}

std::uint32_t old_format_checksum(const std::vector<float>& params, const std::string& state_name,
                                  const std::vector<float>& state, const TrainProgress& p) {
  uLong crc = crc32(0L, Z_NULL, 0);
  auto add = [&](const void* data, size_t bytes) { crc = crc32(crc, static_cast<const Bytef*>(data), static_cast<uInt>(bytes)); };
  add(params.data(), params.size() * sizeof(float));
  add(state_name.data(), state_name.size());
  add(state.data(), state.size() * sizeof(float));
  for (auto f : kInts)
    if (!added_int(f)) add(&(p.*f), sizeof(long long));
  for (auto f : kReals)
    if (!added_real(f)) add(&(p.*f), sizeof(double));
  return static_cast<std::uint32_t>(crc);
}

// The UserError message fn throws ("" if it throws none; other exceptions fail the test).
std::string user_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}
#define EXPECT_REFUSED(call, phrase)                                                       \
  do {                                                                                   \
    const std::string msg_ = user_error([&] { (void)(call); });                          \
    EXPECT_NE(msg_.find(phrase), std::string::npos) << "message: '" << msg_ << "'";      \
  } while (0)

class CheckpointTest : public ::testing::Test {
 protected:
  CheckpointTest() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir = fs::temp_directory_path() / ("mpitrain_ckpt_" + std::to_string(getpid()) + "_" + info->name());
    fs::remove_all(dir);
    // Distinct, exactly representable values in every parameter and state element.
    float* p = model.arena().params();
    float* v = opt->state_buffers().at(0).second;
    for (size_t i = 0; i < model.arena().views().size(); ++i) {
      const ParamView& view = model.arena().views()[i];
      for (long long k = 0; k < view.size; ++k) {
        p[view.offset + k] = 1000.0f * static_cast<float>(i + 1) + 0.125f * static_cast<float>(k) + 0.0625f;
        v[view.offset + k] = -0.5f * p[view.offset + k];
      }
    }
    for (size_t i = 0; i < std::size(kInts); ++i) progress.*kInts[i] = 100 + 7 * static_cast<long long>(i);
    for (size_t i = 0; i < std::size(kReals); ++i) progress.*kReals[i] = 0.25 + 1.5 * static_cast<double>(i);
    for (size_t i = 0; i < std::size(kNoiseInts); ++i) progress.noise.*kNoiseInts[i] = 300 + static_cast<long long>(i);
    for (size_t i = 0; i < std::size(kNoiseReals); ++i)
      progress.noise.*kNoiseReals[i] = -0.375 - 2.5 * static_cast<double>(i);
    meta = {"9.8.7-test", "5-7-3", "sgd", "model = 5-7-3\nactivation = tanh\n", R"({"type": "epoch", "test_acc": 0.5})",
            3, 1234, 5, 3, 0, 0xF00DF00DF00DF00DULL};  // seed above 2^63: stored as int64, must come back
  }
  ~CheckpointTest() override { fs::remove_all(dir); }

  std::string write(const std::string& name, int keep_last = 0, bool update_latest = true) {
    write_checkpoint(dir.string(), name, model.arena(), *opt, progress, meta, keep_last, update_latest);
    return (dir / name).string();
  }
  Checkpoint read(const std::string& path) { return read_checkpoint(path, model.arena(), {"velocity"}); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
  // Applies `change` to a read-write copy of `path` opened with HDF5; returns the copy's path.
  std::string altered_copy(const std::string& path, const std::function<void(hid_t)>& change) {
    const std::string copy = (dir / ("altered" + std::to_string(++copies) + ".h5")).string();
    fs::copy_file(path, copy, fs::copy_options::overwrite_existing);
    h5::Handle f(H5Fopen(copy.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    EXPECT_TRUE(f.valid());
    change(f.get());
    return copy;
  }

  fs::path dir;
  int copies = 0;
  Model model{"5-7-3", Activation::kRelu, 1};
  std::unique_ptr<Optimizer> opt = make_optimizer(OptimizerOptions{}, model.arena());
  TrainProgress progress;
  CheckpointMeta meta;
};

std::vector<float> floats(const float* p, long long n) { return {p, p + n}; }

TEST_F(CheckpointTest, RoundTripRestoresParamsStateProgressAndMeta) {
  const std::string path = write("ckpt-e0001.h5");
  const Checkpoint c = read(path);
  const long long n = model.arena().param_count();
  EXPECT_EQ(c.params, floats(model.arena().params(), n));
  ASSERT_EQ(c.state.size(), 1u);
  EXPECT_EQ(c.state[0].first, "velocity");
  EXPECT_EQ(c.state[0].second, floats(opt->state_buffers()[0].second, n));
  for (auto f : kInts) EXPECT_EQ(c.progress.*f, progress.*f);
  for (auto f : kReals) EXPECT_EQ(c.progress.*f, progress.*f);
  for (auto f : kNoiseInts) EXPECT_EQ(c.progress.noise.*f, progress.noise.*f);
  for (auto f : kNoiseReals) EXPECT_EQ(c.progress.noise.*f, progress.noise.*f);
  for (const CheckpointMeta& m : {c.meta, read_checkpoint_meta(path)}) {
    EXPECT_EQ(std::tie(m.version, m.model_spec, m.optimizer, m.config_ini, m.last_metrics),
              std::tie(meta.version, meta.model_spec, meta.optimizer, meta.config_ini, meta.last_metrics));
    EXPECT_EQ(std::make_tuple(m.world_size, m.train_rows, m.x_width, m.num_classes, m.y_width, m.seed),
              std::make_tuple(3, 1234LL, 5, 3, 0, 0xF00DF00DF00DF00DULL));
  }
  const std::vector<std::pair<std::string, const float*>> state = {{"velocity", opt->state_buffers()[0].second}};
  EXPECT_EQ(c.checksum, checkpoint_checksum(model.arena().params(), n, state, progress));
  // Readable with h5py: per-layer datasets named after the layers, state of the same shapes.
  h5::Handle f = h5::open_file_readonly(path);
  auto dims = [&](const char* name) { return h5::dataset_dims(h5::open_dataset(f.get(), name, path).get(), path); };
  EXPECT_EQ(dims("/params/dense0/W"), (std::vector<hsize_t>{5, 7}));
  EXPECT_EQ(dims("/optimizer/velocity/dense1/b"), (std::vector<hsize_t>{3}));
}

TEST_F(CheckpointTest, EmptyMetricsAndConfigRoundTrip) {
  meta.last_metrics = "";  // the first checkpoint of a run may have no metrics yet
  meta.config_ini = "";
  const Checkpoint c = read(write("ckpt-e0001.h5"));
  EXPECT_EQ(c.meta.last_metrics, "");
  EXPECT_EQ(c.meta.config_ini, "");
}

TEST_F(CheckpointTest, LatestNamesTheNewest) {
  EXPECT_EQ(latest_checkpoint(dir.string()), "");
  write("ckpt-e0001.h5");
  EXPECT_EQ(latest_checkpoint(dir.string()), (dir / "ckpt-e0001.h5").string());
  progress.epoch = 2;
  write("ckpt-e0002.h5");
  EXPECT_EQ(latest_checkpoint(dir.string()), (dir / "ckpt-e0002.h5").string());
  EXPECT_EQ(read(latest_checkpoint(dir.string())).progress.epoch, 2);
  write("best.h5", 0, /*update_latest=*/false);
  EXPECT_EQ(latest_checkpoint(dir.string()), (dir / "ckpt-e0002.h5").string());
}

TEST_F(CheckpointTest, KeepLastRemovesOnlyTheOldestCheckpoints) {
  fs::create_directories(dir);
  for (const char* other : {"other.h5", "ckpt-notes.txt", "best.h5"}) std::ofstream(dir / other) << "x";
  for (int e = 1; e <= 4; ++e) write("ckpt-e000" + std::to_string(e) + ".h5", 2);
  EXPECT_EQ(listing(), (std::vector<std::string>{"best.h5", "ckpt-e0003.h5", "ckpt-e0004.h5", "ckpt-notes.txt",
                                                 "latest", "other.h5"}));
  write("final.h5", 2);  // not a ckpt-* file: removes none of them
  EXPECT_TRUE(fs::exists(dir / "ckpt-e0003.h5") && fs::exists(dir / "ckpt-e0004.h5"));
  write("ckpt-e0005.h5", 0);  // 0 keeps all
  EXPECT_TRUE(fs::exists(dir / "ckpt-e0003.h5"));
}

TEST_F(CheckpointTest, NoTemporaryFilesRemain) {
  fs::create_directories(dir);
  std::ofstream(dir / ".ckpt-e0001.h5.tmp.99999") << "left by a writer that died";
  write("ckpt-e0001.h5");
  write("ckpt-e0002.h5");
  for (const std::string& n : listing()) EXPECT_EQ(n.find(".tmp"), std::string::npos) << n;
  EXPECT_EQ(listing().size(), 3u);  // the two checkpoints and latest
}

TEST_F(CheckpointTest, FlippedByteInParamsFailsTheChecksum) {
  const std::string path = write("ckpt-e0001.h5");
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  const ParamView& w1 = model.arena().views()[2];  // dense1/W: 21 distinctive floats
  const std::string pattern(reinterpret_cast<const char*>(model.arena().params() + w1.offset), 8 * sizeof(float));
  const size_t at = bytes.find(pattern);
  ASSERT_NE(at, std::string::npos);
  ASSERT_EQ(bytes.find(pattern, at + 1), std::string::npos);  // the only copy
  bytes[at + 5] = static_cast<char>(bytes[at + 5] ^ 0x01);      // lowest mantissa bit of the second float
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  EXPECT_REFUSED(read(path), "checksum");
}

TEST_F(CheckpointTest, ValuesRewrittenWithoutTheChecksumAreRefused) {
  const std::string path = write("ckpt-e0001.h5");
  auto rewrite = [&](const char* name) {  // adds 1 to the dataset's first element
    return [&, name](hid_t f) {
      h5::Handle d = h5::open_dataset(f, name, path);
      std::vector<float> values(1);
      for (hsize_t n : h5::dataset_dims(d.get(), name)) values.resize(values.size() * n);
      ASSERT_GE(H5Dread(d.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
      values[0] += 1.0f;
      ASSERT_GE(H5Dwrite(d.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
    };
  };
  EXPECT_REFUSED(read(altered_copy(path, rewrite("/params/dense1/b"))), "checksum");
  EXPECT_REFUSED(read(altered_copy(path, rewrite("/optimizer/velocity/dense0/W"))), "checksum");
  EXPECT_REFUSED(read(altered_copy(path, [](hid_t f) {
                   h5::Handle g(H5Gopen2(f, "/progress", H5P_DEFAULT), H5Gclose);
                   h5::write_attr_int(g.get(), "samples", 1);
                 })),
                 "checksum");
  EXPECT_NO_THROW(read(path));  // the original is intact
}

// Issue 17: the config (and the other metadata a resume trusts) is covered by
// meta_crc32, so an edited or blanked config no longer passes; a checkpoint
// from before meta_crc32 existed still loads.
TEST_F(CheckpointTest, MetadataEditedAfterWritingIsRefusedAndOldFilesLoad) {
  const std::string path = write("ckpt-e0001.h5");
  for (const char* attr : {"config", "model_spec", "optimizer"})
    EXPECT_REFUSED(read(altered_copy(path, [attr](hid_t f) {
                     const auto old = h5::read_attr_string(f, attr);
                     h5::write_attr_string(f, attr, (old ? *old : std::string()) + "seed = 2\n");
                   })),
                   "metadata");
  EXPECT_REFUSED(read(altered_copy(path, [](hid_t f) { h5::write_attr_string(f, "config", ""); })), "metadata");
  EXPECT_REFUSED(read(altered_copy(path, [](hid_t f) { h5::write_attr_int(f, "seed", 12345); })), "metadata");
  EXPECT_REFUSED(read(altered_copy(path, [](hid_t f) { h5::write_attr_int(f, "world_size", 7); })), "metadata");
  EXPECT_NO_THROW(read(altered_copy(path, [](hid_t f) { ASSERT_GE(H5Adelete(f, "meta_crc32"), 0); })));
  EXPECT_NO_THROW(read(path));
}

// Issue 17: scalar attributes replaced by arrays of 4096 elements, and string
// attributes by arrays of long strings, crashed --resume (the reader copied
// them into a buffer sized for one value). Each is now refused by name.
TEST_F(CheckpointTest, AttributesOfTheWrongShapeAreRefusedNotCopied) {
  const std::string path = write("ckpt-e0001.h5");
  auto replace_with_array = [](const char* group, const char* name, hid_t type, size_t elem_bytes, hsize_t n) {
    return [=](hid_t f) {
      h5::Handle g(H5Oopen(f, group, H5P_DEFAULT), H5Oclose);
      ASSERT_GE(H5Adelete(g.get(), name), 0);
      h5::Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
      h5::Handle a(H5Acreate2(g.get(), name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
      ASSERT_TRUE(a.valid());
      std::vector<char> bytes(n * elem_bytes, 'x');
      ASSERT_GE(H5Awrite(a.get(), type, bytes.data()), 0);
    };
  };
  h5::Handle long_text(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(long_text.get(), 100);  // 512 x 100 bytes: within the compact attribute limit
  for (const char* name : {"global_step", "previous_lr"})
    EXPECT_REFUSED(read(altered_copy(path, replace_with_array("/progress", name, H5T_NATIVE_LLONG, 8, 4096))),
                   std::string("attribute '") + name + "'");
  EXPECT_REFUSED(read(altered_copy(path, replace_with_array("/", "world_size", H5T_NATIVE_LLONG, 8, 4096))),
                 "attribute 'world_size'");
  for (const char* name : {"config", "last_metrics"}) {
    const std::string bad = altered_copy(path, replace_with_array("/", name, long_text.get(), 100, 512));
    EXPECT_REFUSED(read(bad), std::string("attribute '") + name + "'");
    EXPECT_REFUSED(read_checkpoint_meta(bad), "holds 512 values, expected one text");
  }
  EXPECT_NO_THROW(read(path));  // the original is intact
}

TEST_F(CheckpointTest, TruncatedFileIsRefused) {
  const std::string path = write("ckpt-e0001.h5");
  fs::resize_file(path, fs::file_size(path) / 2);
  EXPECT_REFUSED(read(path), "truncated");
  EXPECT_REFUSED(read(path), path);
}

TEST_F(CheckpointTest, MissingFieldIsRefusedByName) {
  const std::string path = write("ckpt-e0001.h5");
  const std::string no_step =
      altered_copy(path, [](hid_t f) { ASSERT_GE(H5Adelete_by_name(f, "progress", "global_step", H5P_DEFAULT), 0); });
  EXPECT_REFUSED(read(no_step), "'global_step'");
  const std::string no_spec = altered_copy(path, [](hid_t f) { ASSERT_GE(H5Adelete(f, "model_spec"), 0); });
  EXPECT_REFUSED(read(no_spec), "'model_spec'");
  EXPECT_REFUSED(read_checkpoint_meta(no_spec), "'model_spec'");
  const std::string no_bias =
      altered_copy(path, [](hid_t f) { ASSERT_GE(H5Ldelete(f, "/params/dense1/b", H5P_DEFAULT), 0); });
  EXPECT_REFUSED(read(no_bias), "/params/dense1/b");
  EXPECT_REFUSED(read_checkpoint(path, model.arena(), {"adam_m", "adam_v"}), "/optimizer/adam_m/");
}

TEST_F(CheckpointTest, CheckpointOfAnotherModelIsRefused) {
  const std::string path = write("ckpt-e0001.h5");
  Model wider("5-8-3", Activation::kRelu, 1), deeper("5-7-3-2", Activation::kRelu, 1);
  const std::string msg = user_error([&] { read_checkpoint(path, wider.arena(), {"velocity"}); });
  EXPECT_NE(msg.find("different shape"), std::string::npos) << msg;
  EXPECT_NE(msg.find("dense0/W"), std::string::npos) << msg;
  EXPECT_REFUSED(read_checkpoint(path, deeper.arena(), {"velocity"}), "/params/dense2/W");
}

TEST_F(CheckpointTest, OtherFilesAreRefused) {
  fs::create_directories(dir);
  const std::string dataset = (dir / "data.h5").string(), text = (dir / "notes.txt").string();
  {
    h5::Handle f = h5::create_file_truncate(dataset);
    const std::vector<hsize_t> dims = {2, 2};
    const float x[4] = {1, 2, 3, 4};
    h5::write_dataset(f.get(), "x", H5T_NATIVE_FLOAT, dims, x, 2, dataset);
  }
  std::ofstream(text) << "model = 5-7-3\n";
  EXPECT_REFUSED(read(dataset), "not an mpitrain checkpoint");
  EXPECT_REFUSED(read_checkpoint_meta(dataset), "not an mpitrain checkpoint");
  EXPECT_REFUSED(read(text), "not an HDF5 file");
  EXPECT_REFUSED(read((dir / "absent.h5").string()), "does not exist");
  EXPECT_REFUSED(read_checkpoint_meta((dir / "absent.h5").string()), "does not exist");
}

TEST_F(CheckpointTest, AddedProgressFieldsRoundTripExactly) {
  progress.best_ckpt_epoch = 17;
  progress.best_ckpt_value = 0.1 + 0.2;  // not a short binary fraction: must come back bit for bit
  NoiseScaleEstimator est(0.95);
  for (int i = 1; i <= 37; ++i) est.update(3.0 + 0.1 * i, 1.0 / 16, 64, 1.0 + 0.01 * i);
  progress.noise = est.state();
  ASSERT_EQ(progress.noise.updates, 37);
  const Checkpoint c = read(write("ckpt-e0001.h5"));
  EXPECT_EQ(c.progress.best_ckpt_epoch, 17);
  EXPECT_EQ(c.progress.best_ckpt_value, 0.1 + 0.2);
  EXPECT_EQ(c.progress.noise.updates, progress.noise.updates);
  EXPECT_EQ(c.progress.noise.ema_g2, progress.noise.ema_g2);
  EXPECT_EQ(c.progress.noise.ema_s, progress.noise.ema_s);
  EXPECT_EQ(c.progress.noise.decay_pow, progress.noise.decay_pow);
  // The trainer's path: an estimator restored from the checkpoint continues as the original.
  NoiseScaleEstimator resumed(0.95);
  resumed.restore(c.progress.noise);
  for (int i = 0; i < 5; ++i) {
    est.update(2.5 + i, 1.0 / 8, 32, 1.25);
    resumed.update(2.5 + i, 1.0 / 8, 32, 1.25);
  }
  EXPECT_EQ(resumed.updates(), est.updates());
  EXPECT_EQ(resumed.b_simple(), est.b_simple());
  EXPECT_EQ(resumed.g2(), est.g2());
  EXPECT_EQ(resumed.trace_s(), est.trace_s());
  // Stored as named attributes of /progress (readable with h5py).
  h5::Handle f = h5::open_file_readonly((dir / "ckpt-e0001.h5").string());
  h5::Handle g(H5Gopen2(f.get(), "/progress", H5P_DEFAULT), H5Gclose);
  EXPECT_EQ(h5::read_attr_int(g.get(), "best_ckpt_epoch"), 17);
  EXPECT_EQ(h5::read_attr_int(g.get(), "noise_updates"), 37);
  EXPECT_EQ(h5::read_attr_double(g.get(), "noise_decay_pow"), progress.noise.decay_pow);
}

TEST_F(CheckpointTest, AlteredAddedFieldFailsTheChecksum) {
  const std::string path = write("ckpt-e0001.h5");
  for (const std::string& name : kAddedAttrs) {
    SCOPED_TRACE(name);
    const bool is_int = name == "best_ckpt_epoch" || name == "noise_updates" || name == "target_streak" ||
                        name == "target_first_epoch" || name == "target_first_step" || name == "target_first_samples";
    // Changed in place.
    EXPECT_REFUSED(read(altered_copy(path, [&](hid_t f) {
                     h5::Handle g(H5Gopen2(f, "/progress", H5P_DEFAULT), H5Gclose);
                     if (is_int)
                       h5::write_attr_int(g.get(), name, *h5::read_attr_int(g.get(), name) + 1);
                     else
                       h5::write_attr_double(g.get(), name, *h5::read_attr_double(g.get(), name) * 1.0000001);
                   })),
                   "checksum");
    // Deleted from a file whose value was not the default: read as the default, which does not verify.
    EXPECT_REFUSED(read(altered_copy(path, [&](hid_t f) {
                     ASSERT_GE(H5Adelete_by_name(f, "progress", name.c_str(), H5P_DEFAULT), 0);
                   })),
                   "checksum");
  }
  // A default value set to something else in a file whose added fields are all defaults.
  progress.best_ckpt_epoch = 0;
  progress.best_ckpt_value = 0;
  progress.noise = {};
  const std::string defaults = write("ckpt-e0002.h5");
  EXPECT_NO_THROW(read(defaults));
  EXPECT_REFUSED(read(altered_copy(defaults, [](hid_t f) {
                   h5::Handle g(H5Gopen2(f, "/progress", H5P_DEFAULT), H5Gclose);
                   h5::write_attr_int(g.get(), "best_ckpt_epoch", 3);
                 })),
                 "checksum");
  EXPECT_NO_THROW(read(path));  // the original is intact
}

TEST_F(CheckpointTest, CheckpointFromBeforeTheAddedFieldsLoadsWithDefaults) {
  // An older build's checkpoint: no added attributes, and the checksum of the
  // first format (computed here independently of checkpoint_checksum).
  const std::string path = write("ckpt-e0001.h5");
  const long long n = model.arena().param_count();
  std::vector<float> params(static_cast<size_t>(n), 0.0f), velocity(static_cast<size_t>(n), 0.0f);
  for (const ParamView& v : model.arena().views())
    for (long long k = 0; k < v.size; ++k) {
      params[v.offset + k] = model.arena().params()[v.offset + k];
      velocity[v.offset + k] = opt->state_buffers()[0].second[v.offset + k];
    }
  const std::string old = altered_copy(path, [&](hid_t f) {
    for (const std::string& name : kAddedAttrs)
      ASSERT_GE(H5Adelete_by_name(f, "progress", name.c_str(), H5P_DEFAULT), 0) << name;
    h5::write_attr_int(f, "checksum_crc32", old_format_checksum(params, "velocity", velocity, progress));
  });
  Checkpoint c;
  ASSERT_NO_THROW(c = read(old));
  const TrainProgress fresh;
  EXPECT_EQ(c.progress.best_ckpt_epoch, 0);
  EXPECT_EQ(c.progress.best_ckpt_value, 0.0);
  EXPECT_EQ(c.progress.noise.updates, 0);
  EXPECT_EQ(c.progress.noise.ema_g2, 0.0);
  EXPECT_EQ(c.progress.noise.ema_s, 0.0);
  EXPECT_EQ(c.progress.noise.decay_pow, 1.0);
  EXPECT_EQ(fresh.noise.decay_pow, NoiseScaleEstimator(0.9).state().decay_pow);  // defaults = a fresh estimator
  EXPECT_EQ(fresh.noise.updates, NoiseScaleEstimator(0.9).state().updates);
  for (auto f : kInts)
    if (!added_int(f)) EXPECT_EQ(c.progress.*f, progress.*f);
  for (auto f : kReals)
    if (!added_real(f)) EXPECT_EQ(c.progress.*f, progress.*f);
  EXPECT_EQ(c.params, floats(model.arena().params(), n));
  // Its state_crc32 is the first format's too.
  h5::Handle f = h5::open_file_readonly(old);
  EXPECT_EQ(h5::read_attr_int(f.get(), "state_crc32"),
            static_cast<long long>(old_format_checksum(params, "velocity", velocity, {})));
}

TEST(CheckpointChecksum, ChangesWithParamsStateAndEveryProgressField) {
  std::vector<float> params(40, 0.5f), velocity(40, -0.25f);
  TrainProgress p;
  auto crc = [&](const std::string& name = "velocity") {
    return checkpoint_checksum(params.data(), 40, {{name, velocity.data()}}, p);
  };
  const std::uint32_t base = crc();
  EXPECT_EQ(crc(), base);  // deterministic
  params[39] = 0.75f;
  EXPECT_NE(crc(), base);
  params[39] = 0.5f;
  velocity[0] = 1.0f;
  EXPECT_NE(crc(), base);
  velocity[0] = -0.25f;
  EXPECT_NE(crc("adam_m"), base);
  EXPECT_NE(checkpoint_checksum(params.data(), 40, {}, p), base);
  for (auto f : kInts) {
    p.*f += 1;
    EXPECT_NE(crc(), base);
    p.*f -= 1;
  }
  for (auto f : kReals) {
    p.*f += 0.5;
    EXPECT_NE(crc(), base);
    p.*f -= 0.5;
  }
  for (auto f : kNoiseInts) {
    p.noise.*f += 1;
    EXPECT_NE(crc(), base);
    p.noise.*f -= 1;
  }
  for (auto f : kNoiseReals) {
    p.noise.*f += 0.5;
    EXPECT_NE(crc(), base);
    p.noise.*f -= 0.5;
  }
  EXPECT_EQ(crc(), base);
  // Which added field holds a value is covered, not just the value.
  TrainProgress a, b;
  a.noise.ema_g2 = 2.0;
  b.noise.ema_s = 2.0;
  EXPECT_NE(checkpoint_checksum(params.data(), 40, {}, a), checkpoint_checksum(params.data(), 40, {}, b));
}

TEST(CheckpointChecksum, DefaultProgressKeepsTheFirstFormatsValue) {
  // state_crc32 (taken with a default progress) and checkpoints written before
  // the added fields existed keep their values.
  std::vector<float> params(40), velocity(40);
  for (int i = 0; i < 40; ++i) params[i] = 0.5f * static_cast<float>(i), velocity[i] = -0.25f * static_cast<float>(i);
  TrainProgress p;
  for (size_t i = 0; i < std::size(kInts); ++i) p.*kInts[i] = 3 + static_cast<long long>(i);
  for (size_t i = 0; i < std::size(kReals); ++i) p.*kReals[i] = 1.25 * static_cast<double>(i);
  for (auto f : kInts)
    if (added_int(f)) p.*f = 0;
  for (auto f : kReals)
    if (added_real(f)) p.*f = 0.0;
  EXPECT_EQ(checkpoint_checksum(params.data(), 40, {{"velocity", velocity.data()}}, p),
            old_format_checksum(params, "velocity", velocity, p));
  EXPECT_EQ(checkpoint_checksum(params.data(), 40, {{"velocity", velocity.data()}}, {}),
            old_format_checksum(params, "velocity", velocity, {}));
  p.noise.decay_pow = 0.5;  // any non-default added field changes it
  EXPECT_NE(checkpoint_checksum(params.data(), 40, {{"velocity", velocity.data()}}, p),
            old_format_checksum(params, "velocity", velocity, p));
}

}  // namespace
