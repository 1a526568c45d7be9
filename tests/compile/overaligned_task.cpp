// Must not compile: a task whose result type is over-aligned. The promise
// refuses it with a message that names the mistake (the compile test
// checks the compiler's output for it).
#include <sluice/task.hpp>

struct alignas(128) wide {
  unsigned char bytes[128];
};

sluice::task<wide> make_wide() {
  co_return wide{};
}

int main() {
  sluice::task<wide> t = make_wide();
  (void)t;
}
