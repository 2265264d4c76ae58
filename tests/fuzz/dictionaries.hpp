// The names and texts each structure-aware recipe picks by index
// (h5_recipe.hpp): what mpitrain's files hold, so one mutated byte swaps
// one attribute, path or value for another. Shared by the targets and the
// seed generator, so a seed's indices mean the same in both.
#pragma once
#include <string>
#include <vector>

namespace mpitrain::fuzz {

// Dataset files (datasets/README.md).
inline const std::vector<std::string> kDatasetDict = {
    "/train", "/train/x", "/train/y", "/test", "/test/x", "/test/y", "/val", "/val/x", "/val/y",
    "/", "num_classes", "scale", "mean", "std", "description", "/train/x/extra", "/other"};

// Checkpoints (io/checkpoint_file.hpp) of the seed models "3-4-2" and
// "1x4x4 conv3x3:2 relu flatten dense:2".
inline const std::vector<std::string> kCheckpointDict = {
    // 0: groups and datasets
    "/", "/params", "/optimizer", "/progress",
    "/params/dense0/W", "/params/dense0/b", "/params/dense1/W", "/params/dense1/b",
    "/optimizer/velocity/dense0/W", "/optimizer/velocity/dense0/b",
    "/optimizer/velocity/dense1/W", "/optimizer/velocity/dense1/b",
    "/optimizer/m/dense0/W", "/optimizer/v/dense0/W", "/params/conv0/W", "/params/conv0/b",
    // 16: root attributes
    "format", "version", "model_spec", "optimizer", "config", "last_metrics", "world_size", "train_rows",
    "x_width", "num_classes", "y_width", "seed", "rng", "meta_crc32", "checksum_crc32", "state_crc32",
    // 32: progress attributes
    "epoch", "step_in_epoch", "global_step", "samples", "global_batch", "optimizer_steps", "epoch_samples",
    "best_epoch", "target_epoch", "target_step", "target_samples", "previous_lr", "first_loss",
    "epoch_loss_sum", "epoch_correct_sum", "elapsed_s", "best_value", "target_time_s", "best_ckpt_epoch",
    "best_ckpt_value", "noise_updates", "noise_ema_g2", "noise_ema_s", "noise_decay_pow", "target_streak",
    "target_first_epoch", "target_first_step", "target_first_samples", "target_first_time_s",
    // 61: texts
    "mpitrain-checkpoint-1", "0.1.0", "3-4-2", "1x4x4 conv3x3:2 relu flatten dense:2", "sgd", "adamw",
    "seed = 1\nglobal-batch = 8\nactivation = relu\n", "{\"type\":\"epoch\",\"epoch\":1}", "",
    "784-1000000000-10"};

}  // namespace mpitrain::fuzz
