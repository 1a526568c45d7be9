// The runner of runner.hpp: the test list, the failure count, the
// all-cores rendezvous and the summary line.
#include "runner.hpp"

#include <cstddef>
#include <cstdint>

#include <sluice/detail/atomic.hpp>
#include <sluice/port.hpp>

#include "board.hpp"

namespace runner {
namespace {

test* first = nullptr;
test* last = nullptr;

// Failed checks of the running test, from any core. Relaxed everywhere: the
// count is read after on_all_cores (or the test body) returned, which
// orders it through the rendezvous below.
sluice::detail::atomic<std::uint32_t> failures{0};

// The all-cores rendezvous. Core 0 publishes a job and bumps `generation`;
// each other core waits on `generation` (port::wait_until: WFE), runs the
// job and bumps `finished`, on which core 0 waits.
void (*job_body)(unsigned, void*) noexcept = nullptr;
void* job_context = nullptr;
sluice::detail::atomic<std::uint32_t> generation{0};
sluice::detail::atomic<std::uint32_t> finished{0};

void write(const char* text) noexcept {
  std::size_t n = 0;
  while (text[n] != '\0')
    ++n;
  board::write(text, n);
}

}  // namespace

void add(test& t) noexcept {
  if (last == nullptr) {
    first = &t;
  } else {
    last->next = &t;
  }
  last = &t;
}

void print(const char* text, std::uint64_t number) noexcept {
  char line[160];
  std::size_t n = 0;
  while (*text != '\0' && n < sizeof line - 24)
    line[n++] = *text++;
  if (number != ~std::uint64_t{0}) {
    char digits[20];
    std::size_t d = 0;
    do {
      digits[d++] = static_cast<char>('0' + number % 10);
      number /= 10;
    } while (number != 0);
    while (d != 0)
      line[n++] = digits[--d];
  }
  line[n++] = '\n';
  board::write(line, n);
}

void fail(const char* file, int line, const char* expression) noexcept {
  // Relaxed: see `failures`.
  failures.fetch_add(1, std::memory_order_relaxed);
  char number[12];
  std::size_t d = 0;
  auto value = static_cast<unsigned>(line);
  do {
    number[d++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  char text[200];
  std::size_t n = 0;
  auto append = [&](const char* s) {
    while (*s != '\0' && n < sizeof text - 2)
      text[n++] = *s++;
  };
  append("  check failed: ");
  append(expression);
  append(" at ");
  append(file);
  append(":");
  while (d != 0 && n < sizeof text - 2)
    text[n++] = number[--d];
  text[n++] = '\n';
  board::write(text, n);
}

void on_all_cores(void (*body)(unsigned core, void* context) noexcept, void* context) noexcept {
  job_body = body;
  job_context = context;
  // Relaxed: nobody reads `finished` before the generation bump below.
  finished.store(0, std::memory_order_relaxed);
  // Release [R1]: the job (and everything the test set up) is visible to a
  // core that sees the new generation.
  generation.fetch_add(1, std::memory_order_release);
  sluice::port::notify_all(generation);
  body(0, context);
  const std::uint32_t others = board::core_count() - 1;
  for (;;) {
    // Acquire [R2]: pairs with the release increment in secondary_main; the
    // other cores' effects (and failures) are visible after the wait.
    const std::uint32_t done = finished.load(std::memory_order_acquire);
    if (done == others) break;
    (void)sluice::port::wait_until(finished, done, sluice::time_point::max());
  }
}

void secondary_main(unsigned core) noexcept {
  std::uint32_t seen = 0;
  for (;;) {
    // Acquire [R1].
    std::uint32_t now = generation.load(std::memory_order_acquire);
    while (now == seen) {
      (void)sluice::port::wait_until(generation, seen, sluice::time_point::max());
      now = generation.load(std::memory_order_acquire);  // [R1]
    }
    seen = now;
    job_body(core, job_context);
    // Release [R2].
    finished.fetch_add(1, std::memory_order_release);
    sluice::port::notify_all(finished);
  }
}

unsigned run_all() noexcept {
  unsigned passed = 0;
  unsigned failed = 0;
  for (test* t = first; t != nullptr; t = t->next) {
    failures.store(0, std::memory_order_relaxed);  // Relaxed: see `failures`.
    const sluice::time_point start = sluice::port::now();
    t->body();
    const std::uint64_t ms = (sluice::port::now().ns - start.ns) / 1'000'000;
    if (failures.load(std::memory_order_relaxed) == 0) {
      ++passed;
      write("ok   ");
    } else {
      ++failed;
      write("FAIL ");
    }
    write(t->name);
    print(" ms=", ms);
  }
  char line[48];
  std::size_t n = 0;
  auto put = [&](unsigned value) {
    char digits[10];
    std::size_t d = 0;
    do {
      digits[d++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value != 0);
    while (d != 0)
      line[n++] = digits[--d];
  };
  put(passed);
  for (const char* s = " passed, "; *s != '\0'; ++s)
    line[n++] = *s;
  put(failed);
  for (const char* s = " failed\n"; *s != '\0'; ++s)
    line[n++] = *s;
  board::write(line, n);
  return failed;
}

}  // namespace runner
