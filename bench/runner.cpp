// sluice_bench: runs the registered suites (bench/suite_*.cpp), interleaving each case's
// implementations within every round, and reports medians and same-round ratios to sluice
// as a table, a CSV file and a PNG plot.
#include <fnmatch.h>
#if __has_include(<malloc.h>)
#include <malloc.h>  // mallopt (glibc)
#endif

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "registry.hpp"

#ifndef SLUICE_BENCH_SOURCE_DIR
#define SLUICE_BENCH_SOURCE_DIR "."
#endif

namespace sb = sluice::bench;

namespace {

constexpr const char* usage = R"(usage: sluice_bench [options]

Runs sluice and its peers side by side and reports medians and same-round ratios.

  --suite NAMES     run only these suites (comma-separated; default: all)
  --case NAMES      run only these cases: comma-separated names or shell patterns, with or
                    without the suite (bounded_1p1c,pingpong  'bounded_*'  channel/pingpong)
  --impl NAMES      run only these implementations, names or patterns (keep the sluice
                    baselines, or there is no ratio)
  --rounds N        rounds per case (default 7; each round runs every impl once, interleaved)
  --duration-ms N   measuring time per sample (default 300; --quick: 20)
  --quick           fast smoke run: 2 rounds, 20 ms samples, no warm-up
  --threads LIST    producer = consumer counts of the scaling cases (default 1,2,4;
                    e.g. --threads 1,2,4,8,16 on a 16-core machine)
  --out DIR         where the CSV and PNG go (default out/bench)
  --no-plot         skip the PNG
  --glibc-trim      keep glibc's default of giving freed heap back to the kernel at once
                    (by default the runner keeps it, for every implementation alike: a
                    sample that frees 100,000 tasks would otherwise make the next one
                    page-fault all of that memory in again)
  --list            list suites, cases and implementations, then exit
  --help            this text

Output: DIR/bench-<commit>-<cpu>-<compiler>.csv (and .png), copied to DIR/latest.csv/.png.
CSV columns suite,case,impl,producers,consumers,metric,value,unit; metric <m> (ops_per_sec,
rtt_ns, ns_per_item) is one row per round, <m>_median the median over rounds,
ratio_to_<baseline> the same-round ratio and ratio_to_<baseline>_median its median.
Packet cases add words_per_sec rows (per round, and _median from <m>_median): the same
samples in words/s.
Ratio = the implementation's speed / its sluice baseline's speed in the same round (for
latency, speed = 1 / time), median over rounds: below 1.00 sluice is faster.
Exit status: 0 ok, 1 a delivery check failed, 2 bad arguments, 3 a sample hung, 4 no plot.
)";

struct options {
  std::set<std::string> suites, cases, impls;
  int rounds = 7;
  bool rounds_given = false;
  long duration_ms = 300;
  bool duration_given = false;
  bool quick = false;
  bool plot = true;
  bool glibc_trim = false;
  bool list = false;
  std::vector<int> threads{1, 2, 4};
  std::string out = "out/bench";
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> parts;
  std::stringstream in(s);
  std::string p;
  while (std::getline(in, p, ',')) {
    if (!p.empty()) parts.push_back(p);
  }
  return parts;
}

// Shell-style patterns: "bounded_*", "channel/pingpong", "sluice_*".
bool matches_any(const std::set<std::string>& patterns, const std::string& name) {
  return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& p) {
    return fnmatch(p.c_str(), name.c_str(), 0) == 0;
  });
}

[[noreturn]] void bad_args(const std::string& why) {
  std::fprintf(stderr, "sluice_bench: %s\n\n%s", why.c_str(), usage);
  std::exit(2);
}

long parse_positive(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  const long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || n <= 0)
    bad_args(flag + " needs a positive number, got '" + v + "'");
  return n;
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) bad_args(a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::fputs(usage, stdout);
      std::exit(0);
    } else if (a == "--suite") {
      for (auto& s : split(value()))
        o.suites.insert(s);
    } else if (a == "--case") {
      for (auto& s : split(value()))
        o.cases.insert(s);
    } else if (a == "--impl") {
      for (auto& s : split(value()))
        o.impls.insert(s);
    } else if (a == "--rounds") {
      o.rounds = static_cast<int>(parse_positive(a, value()));
      o.rounds_given = true;
    } else if (a == "--duration-ms") {
      o.duration_ms = parse_positive(a, value());
      o.duration_given = true;
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--threads") {
      o.threads.clear();
      for (auto& s : split(value()))
        o.threads.push_back(static_cast<int>(parse_positive(a, s)));
      if (o.threads.empty()) bad_args("--threads needs a list such as 1,2,4");
    } else if (a == "--out") {
      o.out = value();
    } else if (a == "--no-plot") {
      o.plot = false;
    } else if (a == "--glibc-trim") {
      o.glibc_trim = true;
    } else if (a == "--list") {
      o.list = true;
    } else {
      bad_args("unknown option '" + a + "'");
    }
  }
  if (o.quick) {
    if (!o.rounds_given) o.rounds = 2;
    if (!o.duration_given) o.duration_ms = 20;
  }
  return o;
}

// ---- Environment: commit, CPU and compiler name the output file. ----

std::string run_command(const std::string& cmd) {
  std::string out;
  if (FILE* f = popen(cmd.c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, f))
      out += buf;
    pclose(f);
  }
  while (!out.empty() && std::isspace(static_cast<unsigned char>(out.back())))
    out.pop_back();
  return out;
}

std::string slug(const std::string& s) {
  std::string r;
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (std::isalnum(c)) {
      r += static_cast<char>(std::tolower(c));
    } else if (c == '.') {
      r += '.';
    } else if (!r.empty() && r.back() != '_') {
      r += '_';
    }
  }
  while (!r.empty() && r.back() == '_')
    r.pop_back();
  return r.empty() ? "unknown" : r;
}

std::string commit_name() {
  const std::string dir = SLUICE_BENCH_SOURCE_DIR;
  std::string sha = run_command("git -C '" + dir + "' rev-parse --short=10 HEAD 2>/dev/null");
  if (sha.empty()) return "nogit";
  if (!run_command("git -C '" + dir + "' status --porcelain --untracked-files=no 2>/dev/null")
           .empty()) {
    sha += "-dirty";
  }
  return sha;
}

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return slug(line.substr(colon + 1));
    }
  }
  return "unknown_cpu";
}

// Other work on the machine moves every figure; the run says how busy it was.
std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one.empty() ? "unknown" : one + " " + five + " " + fifteen;
}

std::string compiler_name() {
#if defined(__clang__)
  return "clang" + std::to_string(__clang_major__) + "." + std::to_string(__clang_minor__) + "." +
         std::to_string(__clang_patchlevel__);
#elif defined(__GNUC__)
  return "gcc" + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." +
         std::to_string(__GNUC_PATCHLEVEL__);
#else
  return "cxx";
#endif
}

// ---- Watchdog: a sample that never finishes (a lost wake-up, a lost poison pill) ends the
// run with a message instead of hanging it. ----

class watchdog {
 public:
  watchdog()
      : thread_([this] {
          std::unique_lock lock(mutex_);
          while (!quit_) {
            if (armed_ && sb::clock::now() > deadline_) {
              std::fprintf(stderr,
                           "\nsluice_bench: HANG: %s did not finish within %.0f s (a lost wake-up "
                           "or a lost item?)\n",
                           label_.c_str(), limit_s_);
              std::fflush(stderr);
              std::_Exit(3);
            }
            lock.unlock();
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            lock.lock();
          }
        }) {}
  ~watchdog() {
    {
      std::lock_guard lock(mutex_);
      quit_ = true;
    }
    thread_.join();
  }
  void arm(const std::string& label, double limit_s) {
    std::lock_guard lock(mutex_);
    label_ = label;
    limit_s_ = limit_s;
    deadline_ = sb::clock::now() + std::chrono::duration_cast<sb::clock::duration>(
                                       std::chrono::duration<double>(limit_s));
    armed_ = true;
  }
  void disarm() {
    std::lock_guard lock(mutex_);
    armed_ = false;
  }

 private:
  std::mutex mutex_;
  bool quit_ = false;
  bool armed_ = false;
  std::string label_;
  double limit_s_ = 0;
  sb::clock::time_point deadline_{};
  std::thread thread_;
};

// ---- Statistics ----

double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

double speed(const sb::case_desc& c, double v) {
  return c.direction == sb::better::higher ? v : (v > 0 ? 1.0 / v : 0.0);
}

std::string human(double v, const std::string& unit) {
  char buf[64];
  if (unit == "ops/s" || unit == "words/s") {
    std::snprintf(buf, sizeof buf, "%.2f M", v / 1e6);
  } else if (v >= 100000) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f", v);
  }
  return buf;
}

// `s` right-aligned in `width` characters.
std::string fixed_width(const std::string& s, int width) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%*s", width, s.c_str());
  return buf;
}

struct impl_result {
  std::vector<double> values;  // per round
  std::vector<double> ratios;  // per round, to the baseline
  double median_value = 0;
  double median_ratio = std::nan("");
};

struct csv_writer {
  std::ostringstream rows;
  void row(const sb::case_desc& c, const std::string& impl, const std::string& metric, double v,
           const std::string& unit) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    rows << c.suite << ',' << c.name << ',' << impl << ',' << c.producers << ',' << c.consumers
         << ',' << metric << ',' << buf << ',' << unit << '\n';
  }
};

// Prints the case's table; appends a line to `behind` for each sluice baseline a peer beats.
void print_table(const sb::case_desc& c, const std::vector<impl_result>& res, int rounds,
                 std::vector<std::string>& behind) {
  std::printf("\n%s/%s: %d producer(s) x %d consumer(s), %s (%s is better), median of %d rounds\n",
              c.suite.c_str(), c.name.c_str(), c.producers, c.consumers, c.unit.c_str(),
              c.direction == sb::better::higher ? "higher" : "lower", rounds);
  const bool derived = static_cast<bool>(c.derived.of);
  std::printf("  %-28s %-5s %12s %25s %s %s\n", "impl", "mode", "median", "min .. max",
              derived ? fixed_width(c.derived.unit, 12).c_str() : "",
              "ratio to sluice (same-round median)");
  for (std::size_t i = 0; i < c.impls.size(); ++i) {
    const auto& d = c.impls[i];
    const auto& r = res[i];
    const auto [lo, hi] = std::minmax_element(r.values.begin(), r.values.end());
    const std::string range = human(*lo, c.unit) + " .. " + human(*hi, c.unit);
    std::string ratio;
    if (d.role == sb::impl_role::reference) {
      ratio = "(reference)";
    } else if (std::isnan(r.median_ratio)) {
      ratio = "(baseline " + d.baseline + " not run)";
    } else {
      char buf[96];
      std::snprintf(buf, sizeof buf, "%5.2f  vs %s", r.median_ratio, d.baseline.c_str());
      ratio = buf;
    }
    const std::string also =
        derived ? fixed_width(human(c.derived.of(r.median_value), c.derived.unit), 12) : "";
    std::printf("  %-28s %-5s %12s %25s %s %s\n", d.name.c_str(), d.mode.c_str(),
                human(r.median_value, c.unit).c_str(), range.c_str(), also.c_str(), ratio.c_str());
  }
  // The bar: the best peer against each reference.
  for (std::size_t i = 0; i < c.impls.size(); ++i) {
    if (c.impls[i].role != sb::impl_role::reference) continue;
    const sb::impl_desc* best = nullptr;
    double best_ratio = 0;
    for (std::size_t k = 0; k < c.impls.size(); ++k) {
      const auto& d = c.impls[k];
      if (d.role != sb::impl_role::peer || d.baseline != c.impls[i].name) continue;
      if (!std::isnan(res[k].median_ratio) && (!best || res[k].median_ratio > best_ratio)) {
        best = &d;
        best_ratio = res[k].median_ratio;
      }
    }
    if (best) {
      std::printf("  best peer vs %s: %s at %.2f -> %s\n", c.impls[i].name.c_str(),
                  best->name.c_str(), best_ratio,
                  best_ratio <= 1.0 ? "sluice ahead or equal" : "SLUICE BEHIND");
      if (best_ratio > 1.0) {
        char line[256];
        std::snprintf(line, sizeof line, "%s/%s: %s beats %s by %.2fx", c.suite.c_str(),
                      c.name.c_str(), best->name.c_str(), c.impls[i].name.c_str(), best_ratio);
        behind.push_back(line);
      }
    }
  }
  std::fflush(stdout);
}

}  // namespace

// glibc gives the top of a heap back to the kernel as soon as 128 KiB of it
// are free (M_TRIM_THRESHOLD), and a heap of a thread's own arena likewise.
// The executor cases allocate and free up to 100,000 task frames per sample;
// with trimming on, every sample pays for faulting the same memory in again,
// which measures the kernel rather than the runtimes. Off by default, for
// the whole process (every implementation alike); the header line says so.
const char* keep_freed_heap(bool trim) {
#if defined(__GLIBC__)
  if (trim) return "glibc default (freed heap trimmed)";
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
  return "glibc, freed heap kept (M_TRIM_THRESHOLD 1 GiB, M_TOP_PAD 64 MiB)";
#else
  (void)trim;
  return "default";
#endif
}

int main(int argc, char** argv) {
  options opt = parse(argc, argv);
  const char* const heap = keep_freed_heap(opt.glibc_trim);

  sb::suite_options sopt;
  sopt.threads = opt.threads;
  sopt.quick = opt.quick;

  auto suites = sb::registered_suites();
  std::sort(suites.begin(), suites.end(), [](const sb::suite_entry& a, const sb::suite_entry& b) {
    return std::string(a.name) < b.name;
  });
  for (const auto& s : opt.suites) {
    if (std::none_of(suites.begin(), suites.end(),
                     [&](const sb::suite_entry& e) { return s == e.name; })) {
      bad_args("no suite named '" + s + "'");
    }
  }

  std::vector<sb::case_desc> cases;
  for (const auto& s : suites) {
    if (!opt.suites.empty() && !opt.suites.count(s.name)) continue;
    std::vector<sb::case_desc> built;
    s.build(sopt, built);
    for (auto& c : built) {
      if (!opt.cases.empty() && !matches_any(opt.cases, c.name) &&
          !matches_any(opt.cases, c.suite + "/" + c.name)) {
        continue;
      }
      if (!opt.impls.empty()) {
        std::erase_if(c.impls,
                      [&](const sb::impl_desc& d) { return !matches_any(opt.impls, d.name); });
      }
      if (!c.impls.empty()) cases.push_back(std::move(c));
    }
  }

  if (opt.list) {
    for (const auto& c : cases) {
      std::printf("%s/%s (%dP%dC, %s):", c.suite.c_str(), c.name.c_str(), c.producers, c.consumers,
                  c.metric.c_str());
      for (const auto& d : c.impls)
        std::printf(" %s", d.name.c_str());
      std::printf("\n");
    }
    return 0;
  }
  if (cases.empty()) bad_args("the selection matches no case");

  const std::vector<int> cpus = sb::allowed_cpus();
  sb::run_params params;
  params.duration = std::chrono::milliseconds(opt.duration_ms);
  params.max_items = opt.quick ? (std::uint64_t{1} << 21) : (std::uint64_t{1} << 25);
  params.cpus = &cpus;

  const std::string stem = "bench-" + commit_name() + "-" + cpu_name() + "-" + compiler_name();
  std::string cpu_list;
  for (int c : cpus)
    cpu_list += (cpu_list.empty() ? "" : ",") + std::to_string(c);
  std::printf(
      "sluice_bench %s: %zu case(s), %d round(s), %ld ms per sample, threads pinned "
      "round-robin over CPUs %s; load average %s; malloc: %s\n",
      stem.c_str(), cases.size(), opt.rounds, opt.duration_ms, cpu_list.c_str(),
      load_average().c_str(), heap);
  std::fflush(stdout);

  const std::string mkdir = "mkdir -p '" + opt.out + "'";
  if (std::system(mkdir.c_str()) != 0) bad_args("cannot create " + opt.out);
  const std::string csv_path = opt.out + "/" + stem + ".csv";
  const std::string png_path = opt.out + "/" + stem + ".png";

  csv_writer csv;
  auto write_csv = [&] {
    const std::string header = "suite,case,impl,producers,consumers,metric,value,unit\n";
    for (const std::string& path : {csv_path, opt.out + "/latest.csv"}) {
      std::ofstream f(path);
      f << header << csv.rows.str();
    }
  };

  watchdog dog;
  const double limit_s = 60.0 + 20.0 * static_cast<double>(opt.duration_ms) / 1000.0;
  int exit_code = 0;
  std::vector<std::string> behind;

  for (const auto& c : cases) {
    std::vector<impl_result> res(c.impls.size());
    auto measure = [&](std::size_t i, sb::run_params p, const char* what) {
      const auto& d = c.impls[i];
      const std::string label = c.suite + "/" + c.name + "/" + d.name;
      dog.arm(label + " (" + what + ")", limit_s);
      sb::sample s = d.run(p);
      dog.disarm();
      if (!s.error.empty()) {
        std::fprintf(stderr, "\nsluice_bench: FAILED: %s (%s): %s\n", label.c_str(), what,
                     s.error.c_str());
        write_csv();
        std::exit(1);
      }
      return s.value;
    };
    std::printf("%s/%s:", c.suite.c_str(), c.name.c_str());
    std::fflush(stdout);
    if (!opt.quick) {
      sb::run_params warm = params;
      warm.duration = params.duration / 8;
      for (std::size_t i = 0; i < c.impls.size(); ++i)
        (void)measure(i, warm, "warm-up");
    }
    for (int r = 0; r < opt.rounds; ++r) {
      const std::string what = "round " + std::to_string(r + 1);
      // Interleave: every impl once per round, starting one further along each round.
      for (std::size_t k = 0; k < c.impls.size(); ++k) {
        const std::size_t i = (k + static_cast<std::size_t>(r)) % c.impls.size();
        res[i].values.push_back(measure(i, params, what.c_str()));
      }
      std::printf(" %d", r + 1);
      std::fflush(stdout);
    }
    std::printf("\n");

    std::map<std::string, std::size_t> index;
    for (std::size_t i = 0; i < c.impls.size(); ++i)
      index[c.impls[i].name] = i;
    for (std::size_t i = 0; i < c.impls.size(); ++i) {
      const auto& d = c.impls[i];
      auto& r = res[i];
      for (int k = 0; k < opt.rounds; ++k) {
        csv.row(c, d.name, c.metric, r.values[static_cast<std::size_t>(k)], c.unit);
      }
      r.median_value = median(r.values);
      csv.row(c, d.name, c.metric + "_median", r.median_value, c.unit);
      if (c.derived.of) {
        for (int k = 0; k < opt.rounds; ++k) {
          csv.row(c, d.name, c.derived.metric, c.derived.of(r.values[static_cast<std::size_t>(k)]),
                  c.derived.unit);
        }
        csv.row(c, d.name, c.derived.metric + "_median", c.derived.of(r.median_value),
                c.derived.unit);
      }
      auto b = index.find(d.baseline);
      if (d.role == sb::impl_role::reference || b == index.end()) continue;
      for (int k = 0; k < opt.rounds; ++k) {
        const auto ku = static_cast<std::size_t>(k);
        const double base = speed(c, res[b->second].values[ku]);
        r.ratios.push_back(base > 0 ? speed(c, r.values[ku]) / base : std::nan(""));
        csv.row(c, d.name, "ratio_to_" + d.baseline, r.ratios.back(), "x");
      }
      r.median_ratio = median(r.ratios);
      csv.row(c, d.name, "ratio_to_" + d.baseline + "_median", r.median_ratio, "x");
    }
    print_table(c, res, opt.rounds, behind);
    write_csv();
  }

  std::printf("\n%s\n", behind.empty()
                            ? "sluice is ahead of or equal to the best peer in every case"
                            : "where a peer is ahead of sluice (median same-round ratio):");
  for (const auto& line : behind)
    std::printf("  %s\n", line.c_str());
  std::printf("load average at the end (this run's own threads included): %s\n",
              load_average().c_str());
  std::printf("CSV: %s (also %s/latest.csv)\n", csv_path.c_str(), opt.out.c_str());
  if (opt.plot) {
    const std::string cmd = "/usr/bin/python3 '" SLUICE_BENCH_SOURCE_DIR "/bench/plot.py' '" +
                            csv_path + "' '" + png_path + "' && cp '" + png_path + "' '" + opt.out +
                            "/latest.png'";
    if (std::system(cmd.c_str()) == 0) {
      std::printf("PNG: %s (also %s/latest.png)\n", png_path.c_str(), opt.out.c_str());
    } else {
      std::fprintf(stderr, "sluice_bench: the plot failed (%s)\n", cmd.c_str());
      exit_code = 4;
    }
  }
  return exit_code;
}
