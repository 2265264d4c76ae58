// `mpitrain convert`: turns MNIST-style IDX files or a CSV file into the HDF5
// dataset layout of DESIGN.md. No MPI: conversion is a single process.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mpitrain {

// Reads {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] from input_dir.
void convert_idx(const std::string& input_dir, const std::string& output);

struct CsvConvertOptions {
  std::string input, output, label_column;
  double test_fraction = 0.2;     // held out deterministically by seed
  std::uint64_t seed = 1;
  std::string task = "auto";      // auto | classify | regress
};
void convert_csv(const CsvConvertOptions& options);


}  // namespace mpitrain
