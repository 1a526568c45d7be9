// libFuzzer target: the fuzzer's bytes choose the buffer size, the policy
// and a sequence of operations; the packet buffer must agree with the
// sequential reference model at every step (tests/property).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "../property/packet_buffer_model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint32_t words = 1 + data[0] % 40;
  const bool overwrite = (data[1] & 1) != 0;
  sluice::test::pbuf_checker checker(words, overwrite);
  for (std::size_t i = 2; i + 3 <= size; i += 3) {
    const std::uint32_t arg = data[i + 1] | (std::uint32_t{data[i + 2]} << 8);
    if (!checker.step(data[i], arg) || !checker.check_observers()) {
      std::fprintf(stderr, "packet_buffer fuzz: size %u %s, step %zu: %s\n", words,
                   overwrite ? "overwrite" : "no overwrite", (i - 2) / 3, checker.error().c_str());
      std::abort();
    }
  }
  return 0;
}
