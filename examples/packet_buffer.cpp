// A log-style packet buffer: two producer threads write variable-length
// records into caller-provided storage, one consumer reads them in
// allocation order. Then the same storage in drop_oldest mode, where a
// full buffer drops (and reports) the oldest records instead of refusing.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>

#include <sluice/packet_buffer.hpp>

namespace {

std::uint32_t storage[256];  // static storage: no heap involved

void fill_record(sluice::allocated_packet& p, std::uint32_t producer, std::uint32_t seq) {
  p.payload()[0] = producer;
  for (std::uint32_t i = 1; i < p.payload_size(); ++i)
    p.payload()[i] = seq + i;
}

}  // namespace

int main() {
  using namespace std::chrono_literals;
  {
    sluice::packet_buffer pb({.storage = storage, .size_words = 256});
    auto produce = [&pb](std::uint32_t id) {
      for (std::uint32_t seq = 0; seq < 1000; ++seq) {
        // Waits up to 1 s for room (the consumer frees as it goes).
        auto p = pb.alloc_for(2 + seq % 7, 1s);
        if (!p) {
          std::printf("alloc failed: %s\n", sluice::to_string(p.error()));
          return;
        }
        fill_record(*p, id, seq);
        std::move(*p).commit();
      }
    };
    std::thread a(produce, 1), b(produce, 2);
    std::uint32_t received = 0;
    while (received < 2000) {
      if (auto c = pb.claim_for(1s)) {  // freed when `c` goes out of scope
        ++received;
      } else {
        break;
      }
    }
    a.join();
    b.join();
    std::printf("no-overwrite: %u records received, counters: %u committed, %u claimed\n", received,
                pb.counters().committed, pb.counters().claimed);
  }
  {
    std::uint32_t dropped = 0;
    sluice::packet_buffer pb(
        {.storage = storage,
         .size_words = 64,
         .policy = sluice::overflow_policy::drop_oldest,
         .on_drop = [](void* ctx, const std::uint32_t*,
                       std::uint32_t) noexcept { ++*static_cast<std::uint32_t*>(ctx); },
         .context = &dropped});
    for (std::uint32_t seq = 0; seq < 100; ++seq) {
      auto p = pb.try_alloc(4);  // never fails for lack of room: drops the oldest
      if (p) {
        fill_record(*p, 0, seq);
        std::move(*p).commit();
      }
    }
    std::uint32_t kept = 0;
    while (pb.try_claim())
      ++kept;
    std::printf("overwrite: %u kept, %u dropped\n", kept, dropped);
  }
  return 0;
}
