// The benchmark registry: suites, cases and implementations.
//
// How a suite adds itself
// -----------------------
// 1. Create bench/suite_<name>.cpp (bench/CMakeLists.txt globs bench/suite_*.cpp into
//    sluice_bench; nothing else needs editing).
// 2. Write a builder that appends cases for the given options, and register it once at
//    namespace scope:
//
//      namespace sb = sluice::bench;
//      namespace {
//      void build(const sb::suite_options& opt, std::vector<sb::case_desc>& out) {
//        for (int n : opt.threads) {  // honour --threads in scaling cases
//          sb::case_desc c{.suite = "packet_buffer",
//                          .name = "alloc_commit_" + std::to_string(n) + "p1c",
//                          .producers = n, .consumers = 1,
//                          .metric = "ops_per_sec", .unit = "ops/s",
//                          .direction = sb::better::higher};
//          c.impls.push_back({.name = "sluice", .role = sb::impl_role::reference,
//                             .mode = "spin", .run = [n](const sb::run_params& p) { ... }});
//          c.impls.push_back({.name = "peer", .role = sb::impl_role::peer,
//                             .baseline = "sluice", .mode = "spin", .run = ...});
//          out.push_back(std::move(c));
//        }
//      }
//      const sb::suite_registrar registered{"packet_buffer", &build};
//      }  // namespace
//
//    Names: the suite and case names appear in the CSV and in --suite / --case; keep them
//    [a-z0-9_]. Metrics: per-round name such as ops_per_sec, rtt_ns, ns_per_item (the runner
//    adds <metric>_median and ratio_to_<baseline>[_median] rows), and optionally a derived
//    one (words_per_sec from packets_per_sec) with its own rows.
//
// 3. Each impl's `run` measures ONE sample for about `params.duration` and returns it in the
//    case's unit. It must check its own results (exact-once delivery, checksums, ...) and put
//    a message in `sample::error` when they are wrong: the runner then stops, naming suite,
//    case and impl, and exits non-zero. bench/harness.hpp (header-only) has the shared pieces:
//    thread pinning (`pin_to_slot`), the start gate, the spin policy, and generic drivers
//    (run_throughput, run_pingpong, run_uncontended) with exact-once accounting for any
//    queue-like adapter. Suites with other shapes (an executor's spawn/run) write their own
//    `run` with the same pieces.
//
// The runner interleaves the impls of a case within each round (rotating the order each
// round), repeats for --rounds, and reports per impl the median and the median of the
// same-round ratios to its `baseline` (the sluice reference it competes with).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace sluice::bench {

// What one sample run may use.
struct run_params {
  std::chrono::nanoseconds duration;  // measuring time to aim for
  std::uint64_t max_items;            // cap on items per sample (bounds unbounded queues' memory)
  const std::vector<int>* cpus;       // CPUs the process may run on; threads pin round-robin
};

// One measurement in the case's unit. A non-empty error fails the whole run.
struct sample {
  double value = 0.0;
  std::string error;
};

enum class better { higher, lower };

// reference: a sluice impl others are compared with (its own baseline);
// variant: another sluice flavour, compared with a reference;
// peer: a library a user could pick instead.
enum class impl_role { reference, variant, peer };

struct impl_desc {
  std::string name;  // e.g. "sluice_bounded", "moodycamel_tokens"
  impl_role role = impl_role::peer;
  std::string baseline;  // name of the reference impl in the same case; empty for a reference
  std::string mode;      // how it waits: "spin" or "block" (shown in the table)
  std::function<sample(const run_params&)> run;
};

// Each value of a case also in a second unit (words/s beside packets/s), computed from it by
// `of`. Written to the CSV as <metric> rows (per round, and _median from the case's median)
// and shown as a column of medians; ratios stay on the case's own metric.
struct derived_metric {
  std::string metric;                // e.g. "words_per_sec"
  std::string unit;                  // e.g. "words/s"
  std::function<double(double)> of;  // empty: no second unit
};

struct case_desc {
  std::string suite;
  std::string name;  // unique within the suite, e.g. "bounded_2p2c"
  int producers = 1;
  int consumers = 1;
  std::string metric;  // per-round metric name in the CSV, e.g. "ops_per_sec", "rtt_ns"
  std::string unit;    // e.g. "ops/s", "ns"
  better direction = better::higher;
  std::vector<impl_desc> impls;
  derived_metric derived;  // optional; `{}` for none
};

struct suite_options {
  std::vector<int> threads;  // producer (= consumer) counts for scaling cases; default 1,2,4
  bool quick = false;        // smoke run: suites may drop their slowest cases
};

using suite_builder = void (*)(const suite_options&, std::vector<case_desc>&);

struct suite_entry {
  const char* name;
  suite_builder build;
};

// All registered suites, in registration order (order between files is unspecified; the
// runner sorts by name).
std::vector<suite_entry>& registered_suites();

struct suite_registrar {
  suite_registrar(const char* name, suite_builder build) {
    registered_suites().push_back({name, build});
  }
};

}  // namespace sluice::bench
