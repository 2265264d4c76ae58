// Image augmentation for convolutional networks (issue 13): random crop
// after zero padding, and random horizontal flip, applied in place to a
// shard of NHWC images just before the forward pass.
// The draws for a row are a pure function of (seed, epoch, dataset row
// number), never of the rank, the shard or the row's place in it: the math
// depends on the global batch, not on the rank count, so P ranks must augment
// each row exactly as 1 rank would (DESIGN.md). A fresh epoch gives new draws
// for the same row; a resumed epoch repeats them.
#pragma once
#include <cstdint>
#include <string>

namespace mpitrain {

struct AugmentOptions {
  int pad = 0;        // random crop after zero-padding by `pad` pixels on each side (0: no crop)
  bool flip = false;  // horizontal flip with probability 1/2
  // The value the padding takes: a stored 0 after the reader's normalization,
  // (0 * scale - mean) / std, so the border looks like the image background
  // (the trainer sets it from the data; 0 for raw values).
  float fill = 0.0f;
  bool enabled() const { return pad > 0 || flip; }
};

// Parses --augment: "none", "flip", "crop", "crop+flip" (or "flip+crop").
// `pad` is --augment-pad, used only when crop is on, and then it must be >= 1.
// Anything else is a UserError naming the option and the accepted values.
AugmentOptions parse_augment(const std::string& text, int pad);

// For the run header: "none", "flip", "crop4", "crop4+flip".
std::string augment_text(const AugmentOptions& o);

// Augments `rows` images in place. x: (rows, h, w, c), channels innermost, so
// pixel (y, x) of row r starts at x + r*h*w*c + (y*w + x)*c. row_ids: (rows)
// dataset row numbers, which key the draws. Per row, from
// Rng(stream_key(stream_key(seed, "augm"), epoch, row_id)): the crop offsets
// oy then ox, uniform in [0, 2*pad] (drawn only when pad > 0), then the flip
// bit (drawn only when flip is on). Output pixel (y, x) is input
// (y + oy - pad, x' + ox - pad), or o.fill outside the image, with x' = w-1-x when
// flipped and x otherwise (the cropped image is mirrored).
// scratch: at least h*w*c floats, one row's copy; nothing is allocated, since
// this runs every step.
void augment_images(float* x, int rows, int c, int h, int w, const std::int64_t* row_ids, std::uint64_t seed,
                    long long epoch, const AugmentOptions& o, float* scratch);

}  // namespace mpitrain
