// The C API of <zephyr/sys/mpsc_pbuf.h> over sluice's packet buffer engine.
// A struct mpsc_pbuf_buffer is the storage of a detail::pbuf_core: the two
// have the same layout, and Zephyr's field names sit where the engine keeps
// the same values (checked below).
#include <zephyr/sys/mpsc_pbuf.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <new>

#include <sluice/detail/backoff.hpp>
#include <sluice/detail/pbuf_core.hpp>
#include <sluice/port.hpp>

namespace {

using sluice::detail::pbuf_core;

#define SLUICE_SAME_OFFSET(field)                                                \
  static_assert(offsetof(mpsc_pbuf_buffer, field) == offsetof(pbuf_core, field), \
                "struct mpsc_pbuf_buffer and pbuf_core disagree on " #field)
SLUICE_SAME_OFFSET(tmp_wr_idx);
SLUICE_SAME_OFFSET(wr_idx);
SLUICE_SAME_OFFSET(tmp_rd_idx);
SLUICE_SAME_OFFSET(rd_idx);
SLUICE_SAME_OFFSET(flags);
SLUICE_SAME_OFFSET(lock);
static_assert(
    offsetof(mpsc_pbuf_buffer, sluice_deferred_any) == offsetof(pbuf_core, deferred_any) &&
        offsetof(mpsc_pbuf_buffer, sluice_deferred_frees) == offsetof(pbuf_core, deferred_frees) &&
        sizeof(mpsc_pbuf_buffer::sluice_deferred_frees) == sizeof(pbuf_core::deferred_frees),
    "struct mpsc_pbuf_buffer and pbuf_core disagree on the deferred frees");
SLUICE_SAME_OFFSET(notify_drop);
SLUICE_SAME_OFFSET(get_wlen);
SLUICE_SAME_OFFSET(buf);
SLUICE_SAME_OFFSET(size);
SLUICE_SAME_OFFSET(max_usage);
static_assert(
    offsetof(mpsc_pbuf_buffer, sluice_rd_seen) == offsetof(pbuf_core, rd_seen) &&
        offsetof(mpsc_pbuf_buffer, sluice_wr_seen) == offsetof(pbuf_core, wr_seen) &&
        offsetof(mpsc_pbuf_buffer, sluice_consumer_in) == offsetof(pbuf_core, consumer_in) &&
        offsetof(mpsc_pbuf_buffer, sluice_lock_bias) == offsetof(pbuf_core, lock_bias) &&
        offsetof(mpsc_pbuf_buffer, sluice_rebias_after) == offsetof(pbuf_core, rebias_after) &&
        offsetof(mpsc_pbuf_buffer, sluice_rebias_stretch) == offsetof(pbuf_core, rebias_stretch) &&
        offsetof(mpsc_pbuf_buffer, sluice_dropped_in_stretch) ==
            offsetof(pbuf_core, dropped_in_stretch) &&
        offsetof(mpsc_pbuf_buffer, sluice_consumer_lock) == offsetof(pbuf_core, c_consumer) &&
        offsetof(mpsc_pbuf_buffer, sluice_observers) == offsetof(pbuf_core, observers) &&
        offsetof(mpsc_pbuf_buffer, sem) == offsetof(pbuf_core, space_waiters) &&
        sizeof(mpsc_pbuf_sluice_sync) >= offsetof(pbuf_core, data_waiters) +
                                             sizeof(pbuf_core::data_waiters) -
                                             offsetof(pbuf_core, space_waiters),
    "struct mpsc_pbuf_buffer and pbuf_core disagree on sluice's fields");
#undef SLUICE_SAME_OFFSET
static_assert(sizeof(pbuf_core) <= sizeof(mpsc_pbuf_buffer),
              "struct mpsc_pbuf_buffer is too small for the engine: grow sem.opaque");
static_assert(alignof(pbuf_core) <= alignof(mpsc_pbuf_buffer),
              "struct mpsc_pbuf_buffer is less aligned than the engine");
static_assert(sizeof(union mpsc_pbuf_generic) == sizeof(std::uint32_t),
              "a packet header is one word");
static_assert(MPSC_PBUF_SIZE_POW2 == sluice::detail::pbuf_flag_pow2 &&
                  MPSC_PBUF_MODE_OVERWRITE == sluice::detail::pbuf_flag_overwrite &&
                  MPSC_PBUF_MAX_UTILIZATION == sluice::detail::pbuf_flag_max_utilization &&
                  MPSC_PBUF_FULL == sluice::detail::pbuf_flag_full,
              "flag values differ from the engine's");

pbuf_core& core(mpsc_pbuf_buffer* buffer) noexcept {
  return *std::launder(reinterpret_cast<pbuf_core*>(buffer));
}

std::uint32_t* words(union mpsc_pbuf_generic* packet) noexcept {
  return reinterpret_cast<std::uint32_t*>(packet);
}

std::uint32_t first_word(const union mpsc_pbuf_generic& word) noexcept {
  std::uint32_t raw;
  static_assert(sizeof raw == sizeof word);
  __builtin_memcpy(&raw, &word, sizeof raw);
  return raw;
}

// Zephyr's claim and free take its buffer's spinlock, so Zephyr code may
// free in one context while another claims (a completion interrupt, a
// second thread); the engine's consumer calls must run one at a time. So
// here each takes the buffer's consumer lock (c_consumer):
//   value     meaning
//   0         free
//   1         held by a context that masked (the port's critical section:
//             nothing on its core can run and spin on it)
//   token+1   held by the thread whose context token that is, unmasked
// Where the consumer masks (bare metal: an interrupt mask, cheap) or the
// port gives no token, the call masks around the lock. Elsewhere (hosted:
// masking is two system calls) it does not, and a signal handler that
// finds its own thread holding the lock cannot wait for it: it stops the
// program, naming the mistake, rather than spin for ever. Nor can one that
// interrupted its own thread while it holds the engine's overwrite lock
// as a dropper (an allocation making room) and finds the consumer lock
// held: once that dropper has ended the consumer's bias, the holder may be
// waiting for the dropper's lock. The call is then refused without taking
// anything (refused()): the claim finds nothing, the free is deferred to
// the dropper (pbuf_core::defer_free). While the bias is on, the holder's
// turn takes no lock, so the handler waits for it as any other context;
// nothing can change the bias meanwhile (only a holder of the overwrite
// lock does, and that is the interrupted thread).
class c_consumer_call {
 public:
  explicit c_consumer_call(pbuf_core& core) noexcept : core_(core) {
    const std::uint32_t token =
        sluice::detail::pbuf_consumer_masks ? 0 : sluice::port::context_token();
    masked_ = token == 0;
    if (masked_) state_ = sluice::port::enter_critical();
    const std::uint32_t holder = masked_ ? 1 : token + 1;
    sluice::detail::backoff spin;
    std::uint32_t seen = 0;
    // Acquire [C1]: pairs with the release in the destructor; the last
    // claim's or free's changes to the consumer's state are ours.
    while (!core_.c_consumer.compare_exchange_weak(seen, holder, std::memory_order_acquire,
                                                   std::memory_order_relaxed)) {
      if (seen == holder && !masked_) {
        sluice::port::panic(
            "mpsc_pbuf_claim or mpsc_pbuf_free in a signal handler that interrupted its own "
            "thread's claim or free",
            __FILE__, __LINE__);
      }
      // Relaxed: written only by the overwrite lock's holder, our own
      // thread here, which we interrupted (see above).
      if (!masked_ && core_.held_by_own_dropper(token) &&
          core_.lock_bias.load(std::memory_order_relaxed) == 0) {
        refused_ = true;
        return;
      }
      // Wait until it looks free before trying again, with loads only (no
      // write: waiters do not take the line from the holder or each
      // other). Relaxed: the compare-and-swap above orders. The holder may
      // be preempted (more threads than cores): after a while, let it run.
      while (seen != 0) {
        if (spin.is_completed()) sluice::port::yield_core();
        spin.snooze();
        seen = core_.c_consumer.load(std::memory_order_relaxed);
      }
    }
  }
  ~c_consumer_call() {
    if (refused_) return;
    // Release [C1]: pairs with the next call's acquire.
    core_.c_consumer.store(0, std::memory_order_release);
    if (masked_) sluice::port::leave_critical(state_);
  }
  c_consumer_call(const c_consumer_call&) = delete;
  c_consumer_call& operator=(const c_consumer_call&) = delete;

  // Holding nothing: the caller may not touch the consumer's state.
  bool refused() const noexcept { return refused_; }

 private:
  pbuf_core& core_;
  bool masked_;
  bool refused_ = false;
  sluice::port::critical_state state_{};
};

}  // namespace

extern "C" {

void mpsc_pbuf_init(struct mpsc_pbuf_buffer* buffer, const struct mpsc_pbuf_buffer_config* config) {
  sluice::detail::pbuf_config c;
  c.buffer = config->buf;
  c.size = config->size;
  // As Zephyr's init, a power-of-two size sets MPSC_PBUF_SIZE_POW2 itself
  // (the engine derives it).
  c.flags = config->flags;
  c.c_notify_drop = config->notify_drop;
  c.c_get_wlen = config->get_wlen;
  pbuf_core& engine = *::new (static_cast<void*>(buffer)) pbuf_core(c);
  // The caller may read the flags: Zephyr's bits only. Without a get_wlen
  // the engine marks the buffer for its fast paths (lengths in the
  // header); the mark goes, and the buffer takes the full paths.
  engine.flags &= ~sluice::detail::pbuf_flag_header_lengths;
}

union mpsc_pbuf_generic* mpsc_pbuf_alloc(struct mpsc_pbuf_buffer* buffer, size_t wlen,
                                         k_timeout_t timeout) {
  pbuf_core& c = core(buffer);
  if (wlen == 0 || wlen > c.size) return nullptr;
  const auto n = static_cast<std::uint32_t>(wlen);
  sluice::detail::pbuf_span span;
  sluice::detail::pbuf_status status;
  const std::int64_t ns = sluice_k_timeout_ns(timeout);
  // As Zephyr's, it pends only in thread context with interrupts unmasked:
  // elsewhere (an interrupt handler, a critical section) the timeout counts
  // as K_NO_WAIT, so with overwrite the oldest packets are dropped.
  if (ns == 0 || !sluice::port::may_block()) {
    status = c.try_alloc(n, span);
  } else {
    const sluice::time_point deadline =
        ns < 0 ? sluice::time_point::max() : sluice::deadline_after(sluice::duration{ns});
    status = c.alloc_until(n, deadline, span);
  }
  if (status != sluice::detail::pbuf_status::ok) return nullptr;
  if (c.get_wlen == nullptr) {
    // No length callback: the length lives in the header's upper bits.
    // Relaxed: the producer's own word until commit.
    sluice::detail::atomic_ref<std::uint32_t>(*span.words)
        .store(n << sluice::detail::pbuf_hdr_bits, std::memory_order_relaxed);
  }
  return reinterpret_cast<union mpsc_pbuf_generic*>(span.words);
}

void mpsc_pbuf_commit(struct mpsc_pbuf_buffer* buffer, union mpsc_pbuf_generic* packet) {
  core(buffer).commit(words(packet));
}

void mpsc_pbuf_put_word(struct mpsc_pbuf_buffer* buffer, const union mpsc_pbuf_generic word) {
  (void)core(buffer).put_word(first_word(word));
}

void mpsc_pbuf_put_word_ext(struct mpsc_pbuf_buffer* buffer, const union mpsc_pbuf_generic word,
                            const void* data) {
  (void)core(buffer).put_word_ext(first_word(word), data);
}

void mpsc_pbuf_put_data(struct mpsc_pbuf_buffer* buffer, const uint32_t* data, size_t wlen) {
  if (wlen == 0 || wlen > core(buffer).size) return;
  (void)core(buffer).put_data(data, static_cast<std::uint32_t>(wlen));
}

const union mpsc_pbuf_generic* mpsc_pbuf_claim(struct mpsc_pbuf_buffer* buffer) {
  const c_consumer_call one_at_a_time(core(buffer));
  if (one_at_a_time.refused()) return nullptr;  // nothing to take now, as a try may answer
  return reinterpret_cast<const union mpsc_pbuf_generic*>(core(buffer).try_claim().words);
}

void mpsc_pbuf_free(struct mpsc_pbuf_buffer* buffer, const union mpsc_pbuf_generic* packet) {
  const c_consumer_call one_at_a_time(core(buffer));
  if (one_at_a_time.refused()) {
    core(buffer).defer_free(reinterpret_cast<const std::uint32_t*>(packet));
    return;
  }
  core(buffer).free(reinterpret_cast<const std::uint32_t*>(packet));
}

bool mpsc_pbuf_is_pending(struct mpsc_pbuf_buffer* buffer) {
  return core(buffer).is_pending();
}

void mpsc_pbuf_get_utilization(struct mpsc_pbuf_buffer* buffer, uint32_t* size, uint32_t* now) {
  const pbuf_core& c = core(buffer);
  *size = c.size * static_cast<std::uint32_t>(sizeof(std::uint32_t));
  *now = c.used_words() * static_cast<std::uint32_t>(sizeof(std::uint32_t));
}

int mpsc_pbuf_get_max_utilization(struct mpsc_pbuf_buffer* buffer, uint32_t* max) {
  const pbuf_core& c = core(buffer);
  if ((c.flags & MPSC_PBUF_MAX_UTILIZATION) == 0) return -ENOTSUP;
  // Relaxed: a statistic.
  *max = c.max_usage.load(std::memory_order_relaxed) *
         static_cast<std::uint32_t>(sizeof(std::uint32_t));
  return 0;
}

}  // extern "C"
