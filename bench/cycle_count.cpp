// sluice_cycle_count: a packet buffer's single-thread cycle (try_alloc, fill,
// commit, try_claim, check, free through the handle), run a given number of
// times, for scripts/cycle_instructions.sh to count its instructions under
// callgrind. An instruction count does not depend on what else the machine
// runs, as a time does: it shows what a change to the fast paths adds or
// takes away, and the benchmark runner then shows what that is worth.
//
// usage: sluice_cycle_count WORDS reject|drop CYCLES [SIZE]
//   WORDS   packet length: 1, 4, 16 or 64
//   SIZE    buffer size in words (default 4096; another size than a power of
//           two takes the fast paths' other arithmetic)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <sluice/packet_buffer.hpp>

namespace {

// The loop, not inlined into main, so that its code is one function. The
// fill and the check are word by word; the sum keeps the check's loads.
template <std::uint32_t W>
[[gnu::noinline]] std::uint32_t run(sluice::packet_buffer& pb, std::uint32_t cycles) {
  std::uint32_t sum = 0;
  for (std::uint32_t i = 0; i < cycles; ++i) {
    auto a = pb.try_alloc(W);
    if (!a) {
      std::fprintf(stderr, "sluice_cycle_count: an allocation failed on an empty buffer\n");
      std::exit(1);
    }
    for (std::uint32_t k = 1; k < W; ++k)
      a->words()[k] = i + k;
    std::move(*a).commit();
    const sluice::claimed_packet c = pb.try_claim();
    if (!c || c.size() != W) {
      std::fprintf(stderr, "sluice_cycle_count: the packet just committed was not claimed\n");
      std::exit(1);
    }
    sum += c.words()[W - 1];
  }
  return sum;
}

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: sluice_cycle_count WORDS reject|drop CYCLES [SIZE]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) usage();
  const auto words = static_cast<std::uint32_t>(std::strtoul(argv[1], nullptr, 10));
  const bool drop = std::strcmp(argv[2], "drop") == 0;
  if (!drop && std::strcmp(argv[2], "reject") != 0) usage();
  const auto cycles = static_cast<std::uint32_t>(std::strtoul(argv[3], nullptr, 10));
  const auto size =
      argc == 5 ? static_cast<std::uint32_t>(std::strtoul(argv[4], nullptr, 10)) : 4096u;
  if (size < 64 || size > (1u << 20)) usage();
  const auto storage = std::make_unique<std::uint32_t[]>(size);
  sluice::packet_buffer pb({.storage = storage.get(),
                            .size_words = size,
                            .policy = drop ? sluice::overflow_policy::drop_oldest
                                           : sluice::overflow_policy::reject_new});
  using loop = std::uint32_t (*)(sluice::packet_buffer&, std::uint32_t);
  const loop chosen = words == 1    ? &run<1>
                      : words == 4  ? &run<4>
                      : words == 16 ? &run<16>
                      : words == 64 ? &run<64>
                                    : nullptr;
  if (chosen == nullptr) usage();
  const std::uint32_t sum = chosen(pb, cycles);
  std::printf("%u\n", sum);
  return 0;
}
