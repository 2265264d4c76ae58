// The progress fields of a checkpoint, named once for the writer, the reader
// and the checksum (checkpoint_file.cpp, checkpoint_reader.cpp). Private to
// src/io.
#pragma once
#include "mpitrain/io/checkpoint_file.hpp"

namespace mpitrain::checkpoint_fields {

// The progress fields, named once for writing, reading and the checksum.
struct IntField { const char* name; long long TrainProgress::*field; };
struct RealField { const char* name; double TrainProgress::*field; };
inline constexpr IntField kIntFields[] = {
    {"epoch", &TrainProgress::epoch}, {"step_in_epoch", &TrainProgress::step_in_epoch},
    {"global_step", &TrainProgress::global_step}, {"samples", &TrainProgress::samples},
    {"global_batch", &TrainProgress::global_batch}, {"optimizer_steps", &TrainProgress::optimizer_steps},
    {"epoch_samples", &TrainProgress::epoch_samples}, {"best_epoch", &TrainProgress::best_epoch},
    {"target_epoch", &TrainProgress::target_epoch}, {"target_step", &TrainProgress::target_step},
    {"target_samples", &TrainProgress::target_samples}};
inline constexpr RealField kRealFields[] = {
    {"previous_lr", &TrainProgress::previous_lr}, {"first_loss", &TrainProgress::first_loss},
    {"epoch_loss_sum", &TrainProgress::epoch_loss_sum}, {"epoch_correct_sum", &TrainProgress::epoch_correct_sum},
    {"elapsed_s", &TrainProgress::elapsed_s}, {"best_value", &TrainProgress::best_value},
    {"target_time_s", &TrainProgress::target_time_s}};

// Progress fields added after the format's first release (best.h5 tracker,
// noise-scale estimator). Files written before them lack these attributes;
// the reader treats them as optional and leaves the defaults. Calls
// f(name, field, default) for each, for a const or non-const progress.
template <class P, class F>
void for_each_added_field(P& p, F&& f) {
  static const TrainProgress d{};
  f("best_ckpt_epoch", p.best_ckpt_epoch, d.best_ckpt_epoch);
  f("best_ckpt_value", p.best_ckpt_value, d.best_ckpt_value);
  f("noise_updates", p.noise.updates, d.noise.updates);
  f("noise_ema_g2", p.noise.ema_g2, d.noise.ema_g2);
  f("noise_ema_s", p.noise.ema_s, d.noise.ema_s);
  f("noise_decay_pow", p.noise.decay_pow, d.noise.decay_pow);
  f("target_streak", p.target_streak, d.target_streak);
  f("target_first_epoch", p.target_first_epoch, d.target_first_epoch);
  f("target_first_step", p.target_first_step, d.target_first_step);
  f("target_first_samples", p.target_first_samples, d.target_first_samples);
  f("target_first_time_s", p.target_first_time_s, d.target_first_time_s);
  f("adascale_tau", p.adascale_tau, d.adascale_tau);
  f("eval_time_s", p.eval_time_s, d.eval_time_s);
  f("target_train_time_s", p.target_train_time_s, d.target_train_time_s);
  f("target_first_train_time_s", p.target_first_train_time_s, d.target_first_train_time_s);
}

}  // namespace mpitrain::checkpoint_fields
