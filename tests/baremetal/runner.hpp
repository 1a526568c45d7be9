// A tiny test runner for bare-metal images: tests register themselves at
// start-up (static constructors), CHECKs count failures from any core, and
// run_all() prints one line per test and closes with `N passed, M failed`.
// on_all_cores(fn) runs fn(core) on every core at once, for tests of
// cross-core behaviour. It talks to the hardware only through the board
// interface (examples/baremetal/board.hpp) and sluice's port.
#pragma once

#include <cstddef>
#include <cstdint>

namespace runner {

struct test {
  const char* name;
  void (*body)();
  test* next = nullptr;
};

// Appends `t` to the list (start-up, one core).
void add(test& t) noexcept;

struct registration {
  explicit registration(test& t) noexcept { add(t); }
};

// Records a failed check of the running test; any core, any context.
void fail(const char* file, int line, const char* expression) noexcept;

// Runs body(core, context) on every core (core 0 is the caller) and returns
// when all have returned. Thread context, core 0.
void on_all_cores(void (*body)(unsigned core, void* context) noexcept, void* context) noexcept;

// Runs every registered test; returns the number that failed.
[[nodiscard]] unsigned run_all() noexcept;

// The secondary cores' entry (for board::start_cores).
void secondary_main(unsigned core) noexcept;

// A line to the console: text and unsigned numbers.
void print(const char* text, std::uint64_t number = ~std::uint64_t{0}) noexcept;

}  // namespace runner

#define SLUICE_TEST_CAT2(a, b) a##b
#define SLUICE_TEST_CAT(a, b) SLUICE_TEST_CAT2(a, b)

// TEST_CASE(name) { ... CHECK(cond); ... }
#define TEST_CASE(name)                                                                        \
  static void SLUICE_TEST_CAT(test_body_, name)();                                             \
  static runner::test SLUICE_TEST_CAT(test_, name){#name, &SLUICE_TEST_CAT(test_body_, name)}; \
  static const runner::registration SLUICE_TEST_CAT(test_reg_,                                 \
                                                    name){SLUICE_TEST_CAT(test_, name)};       \
  static void SLUICE_TEST_CAT(test_body_, name)()

// Counts a failure (and prints where) when `cond` is false; evaluates to it.
#define CHECK(cond) ((cond) ? true : (runner::fail(__FILE__, __LINE__, #cond), false))
#define CHECK_EQ(a, b) CHECK((a) == (b))
