// Command line of `mpitrain convert <idx|csv>`: parses options, runs the
// conversion, maps errors to exit codes (2 user error, 3 system error) and
// prints a one-line summary read back from the written file.
#include <boost/program_options.hpp>
#include <charconv>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "mpitrain/cli/commands.hpp"
#include "mpitrain/core/errors.hpp"
#include "mpitrain/data/convert.hpp"
#include "mpitrain/io/h5.hpp"

namespace po = boost::program_options;

namespace mpitrain {
namespace {

constexpr const char* kPrefix = "mpitrain convert: ";

void print_usage(std::ostream& os) {
  os << "usage: mpitrain convert idx --input DIR --output FILE\n"
        "       mpitrain convert csv --input FILE --output FILE --label-column NAME\n"
        "                            [--test-fraction F] [--seed S] [--task auto|classify|regress]\n"
        "       mpitrain convert <idx|csv> --help\n";
}

// Boost's lexical_cast turns "-1" into a huge unsigned value, so the seed is
// parsed here and anything but a plain non-negative integer is rejected.
std::uint64_t parse_seed(const std::string& s) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size())
    throw UserError("--seed '" + s + "' must be a non-negative integer below 2^64");
  return v;
}

// Rejected before the (possibly long) read so the user learns at once.
void check_output(const std::string& output) {
  std::error_code ec;
  if (output.empty()) throw UserError("--output must name the HDF5 file to write");
  if (std::filesystem::is_directory(output, ec))
    throw UserError("--output '" + output + "' is a directory: give a file name such as " +
                    (std::filesystem::path(output) / "data.h5").string());
}

// Reads the shapes back from the finished file, so the summary reports what
// is on disk rather than what we meant to write.
void print_summary(const std::string& output) {
  h5::Handle file = h5::open_file_readonly(output);
  std::uint64_t rows[2] = {0, 0}, width = 1;
  const char* splits[2] = {"/train/x", "/test/x"};
  for (int i = 0; i < 2; ++i) {
    h5::Handle x = h5::open_dataset(file.get(), splits[i], output);
    const std::vector<hsize_t> dims = h5::dataset_dims(x.get(), output + ":" + splits[i]);
    rows[i] = dims.empty() ? 0 : dims[0];
    if (i == 0)
      for (size_t k = 1; k < dims.size(); ++k) width *= dims[k];
  }
  const long long classes = h5::read_attr_int(file.get(), "num_classes").value_or(0);
  std::cout << kPrefix << "wrote " << output << ": " << rows[0] << " train rows, " << rows[1] << " test rows, "
            << width << " features, num_classes " << classes << (classes == 0 ? " (regression)" : "") << "\n";
}

po::options_description idx_options() {
  po::options_description d("mpitrain convert idx options");
  d.add_options()
      ("help,h", "print these options")
      ("input", po::value<std::string>()->required(),
       "directory with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]")
      ("output", po::value<std::string>()->required(), "HDF5 dataset file to write");
  return d;
}

po::options_description csv_options() {
  po::options_description d("mpitrain convert csv options");
  d.add_options()
      ("help,h", "print these options")
      ("input", po::value<std::string>()->required(), "CSV file with a header row, numeric columns")
      ("output", po::value<std::string>()->required(), "HDF5 dataset file to write")
      ("label-column", po::value<std::string>()->required(), "name of the label column in the header")
      ("test-fraction", po::value<double>()->default_value(0.2, "0.2"),
       "fraction of rows held out as /test, in [0, 1)")
      ("seed", po::value<std::string>()->default_value("1"), "seed of the train/test split")
      ("task", po::value<std::string>()->default_value("auto"),
       "auto (classify if every label is a non-negative integer) | classify | regress");
  return d;
}

// Returns -1 to continue, or the exit code when --help was handled.
int parse(const std::vector<std::string>& args, const po::options_description& desc, po::variables_map& vm) {
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  po::store(po::command_line_parser(rest).options(desc).run(), vm);
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  po::notify(vm);  // after --help, so --help works without the required options
  return -1;
}

int run(const std::vector<std::string>& args) {
  po::variables_map vm;
  std::string output;
  if (args[0] == "idx") {
    const po::options_description desc = idx_options();
    if (const int rc = parse(args, desc, vm); rc >= 0) return rc;
    output = vm["output"].as<std::string>();
    check_output(output);
    convert_idx(vm["input"].as<std::string>(), output);
  } else {
    const po::options_description desc = csv_options();
    if (const int rc = parse(args, desc, vm); rc >= 0) return rc;
    CsvConvertOptions o;
    o.input = vm["input"].as<std::string>();
    o.output = output = vm["output"].as<std::string>();
    o.label_column = vm["label-column"].as<std::string>();
    o.test_fraction = vm["test-fraction"].as<double>();
    o.seed = parse_seed(vm["seed"].as<std::string>());
    o.task = vm["task"].as<std::string>();
    check_output(output);
    convert_csv(o);
  }
  print_summary(output);
  return 0;
}

}  // namespace

int convert_command(const std::vector<std::string>& args) {
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    print_usage(std::cout);
    return 0;
  }
  if (args.empty() || (args[0] != "idx" && args[0] != "csv")) {
    std::cerr << kPrefix << "error: "
              << (args.empty() ? std::string("missing input format") : "unknown input format '" + args[0] + "'")
              << ": use 'idx' or 'csv'\n";
    print_usage(std::cerr);
    return kExitUserError;
  }
  try {
    return run(args);
  } catch (const po::error& e) {
    std::cerr << kPrefix << "error: " << e.what() << " (see 'mpitrain convert " << args[0] << " --help')\n";
    return kExitUserError;
  } catch (const UserError& e) {
    std::cerr << kPrefix << "error: " << e.what() << "\n";
    return kExitUserError;
  } catch (const std::exception& e) {
    // SystemError and anything unexpected (filesystem, allocation): not the user's input.
    std::cerr << kPrefix << "error: " << e.what() << "\n";
    return kExitSystemError;
  }
}

}  // namespace mpitrain
