// A producer task's alloc_async: room that appears between its first try
// and its listing on the producers' waiter list. The free that makes it
// finds nobody listed and wakes nobody, so only the re-check after the
// wait fence ([PB4] in src/packet_buffer.cpp) can see it. Held at
// room_refused, the first try's refusal, where this thread frees the
// consumer's packet itself.
#include <atomic>
#include <cstdint>

#include <gtest/gtest.h>

#include <sluice/detail/pbuf_core.hpp>
#include <sluice/packet_buffer.hpp>

#include "hooks.hpp"
#include "pbuf_test_support.hpp"

namespace {

using sluice::detail::pbuf_core;
using sluice::detail::pbuf_hook;
using sluice::detail::pbuf_span;

// What the hook frees, and where. Atomic only because a hook may run on any
// thread; here it runs on the test thread itself, inside its poll, so
// relaxed: program order orders them.
std::atomic<pbuf_core*> core_to_free{nullptr};
std::atomic<const std::uint32_t*> packet_to_free{nullptr};

void free_at_the_first_refusal(pbuf_hook point) {
  if (point != pbuf_hook::room_refused) return;
  if (const std::uint32_t* packet = packet_to_free.exchange(nullptr, std::memory_order_relaxed))
    core_to_free.load(std::memory_order_relaxed)->free(packet);
}

class AsyncRoom : public ::testing::TestWithParam<bool> {};  // with overwrite?

TEST_P(AsyncRoom, TheRecheckSeesRoomFreedBeforeTheTaskIsListed) {
  sluice::test::eight_word_core engine(GetParam());
  pbuf_core& core = engine.core;
  const pbuf_span held = sluice::test::full_holding_the_first(core);
  ASSERT_NE(held.words, nullptr);
  core_to_free.store(&core, std::memory_order_relaxed);
  packet_to_free.store(held.words, std::memory_order_relaxed);
  observe_hook.store(&free_at_the_first_refusal, std::memory_order_release);
  sluice::test::wake_counter wakes;
  sluice::alloc_awaiter awaiter(core, 4);
  const sluice::poll_status status = awaiter.poll(sluice::make_waker(wakes));
  observe_hook.store(nullptr, std::memory_order_release);
  EXPECT_EQ(packet_to_free.load(std::memory_order_relaxed), nullptr)
      << "no refusal: the first try found room";
  EXPECT_EQ(status, sluice::poll_status::ready)
      << "the room freed before the listing was missed: nobody would wake the task";
  EXPECT_EQ(wakes.count(), 0);
  if (status == sluice::poll_status::ready) {
    auto a = awaiter.await_resume();
    ASSERT_TRUE(a);
    EXPECT_EQ(a->words(), held.words);
    std::move(*a).abandon();
  }
}

INSTANTIATE_TEST_SUITE_P(Policies, AsyncRoom, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Overwrite" : "NoOverwrite"; });

}  // namespace
