// The unit-test image: starts every core, runs the registered tests (the
// other files of tests/baremetal) and exits with 0 only if all passed.
#include "board.hpp"
#include "runner.hpp"

int main() {
  runner::print("tests: cores=", board::core_count());
  board::start_cores(&runner::secondary_main);
  return runner::run_all() == 0 ? 0 : 1;
}
