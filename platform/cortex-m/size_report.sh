#!/usr/bin/env bash
# Size of sluice's own code and data in the Cortex-M demo image, per part.
#
#   platform/cortex-m/size_report.sh [build/cortex-m/demo.elf]
#
# Source of the figures: the linker map (demo.map beside the ELF). The image
# is built with -ffunction-sections -fdata-sections and --gc-sections, so
# every function and object that survives is one input section, listed in
# the map with its size and the object file it came from. Sections are
# counted the way arm-none-eabi-size counts them: .text = code and
# read-only data (.vectors, .text.*, .rodata.*), .data = initialised
# writable data (.data.*, .init_array), .bss = zeroed data (.bss.*, COMMON).
#
# Which part a section belongs to (first rule that matches):
#   1. by object file:
#        src/packet_buffer.cpp              -> packet buffer (the engine)
#        platform/baremetal/runtime.cpp     -> runtime
#        libgcc.a                           -> runtime
#        platform/cortex-m/board.cpp,
#        platform/cortex-m/startup.cpp      -> board + startup
#      other objects (the demo, port.cpp) hold header code too (inline
#      functions and template instantiations): their sections go on to 2.
#   2. by the demangled qualified name of the section's symbol (the
#      function or object name with its template arguments, without return
#      type and parameters):
#        sluice::port::...                              -> port
#        contains timeout_awaiter, sleep                -> executor (timers)
#        contains pbuf, packet_buffer, claimed_packet,
#          allocated_packet, claim_awaiter              -> packet buffer
#        contains channel, array_engine, ring_geometry,
#          list_engine, send_awaiter, recv_awaiter      -> channel (also the
#                                    executor's run queue, a channel engine,
#                                    where not inlined into the executor)
#        contains executor, task, frame_pool, timer,
#          join_, completion_poll, value_slot, promise, allocat, spawn,
#          current_executor                             -> executor
#        other sluice:: (waker, parker, waiter_list,
#          backoff, spin_lock, poll, result, time)      -> shared (all parts)
#        std:: (instantiated by the headers)            -> shared
#   3. the rest: from port.cpp -> port; from the demo -> demo.
# sluice's total is executor + channel + packet buffer + shared; the bar is
# 8 KiB of .text for it (the script exits 1 at or above it).
#
# Inlining: -Os inlines small header functions into their callers, and that
# code is counted where it lands. In this image that is mostly the demo's
# coroutine bodies (awaiter set-up around each co_await), which are counted
# as demo, so the sluice figures are what sluice adds out of line.
set -euo pipefail
elf=${1:-build/cortex-m/demo.elf}
map=${elf%.elf}.map
[ -f "$map" ] || { echo "size_report: no map $map (link with -Wl,-Map)" >&2; exit 1; }
bar=8192
verbose=${SIZE_REPORT_VERBOSE:-0}  # 1: list every section with its part

# One line per input section: kind, size, object, symbol (demangled).
sed -n '/^Linker script and memory map/,$p' "$map" | awk '
  # An input section line: " .name addr size object", possibly with the
  # name alone on its line and the rest on the next.
  function emit(name, size, object,   kind, symbol) {
    if (name ~ /^\.(vectors|text|rodata)/) kind = "text"
    else if (name ~ /^\.(data|init_array)/) kind = "data"
    else if (name ~ /^\.bss/ || name == "COMMON") kind = "bss"
    else return
    symbol = name
    sub(/^\.(text|rodata|data|bss|init_array)\./, "", symbol)
    sub(/^\.rodata\.str.*/, "(strings)", symbol)
    if (size + 0 == 0) return
    printf "%s\t%d\t%s\t%s\n", kind, size, object, symbol
  }
  function hex(s,   i, c, v) {
    v = 0
    s = tolower(s)
    sub(/^0x/, "", s)
    for (i = 1; i <= length(s); ++i) {
      c = index("0123456789abcdef", substr(s, i, 1)) - 1
      v = v * 16 + c
    }
    return v
  }
  # Output sections start in column 0; padding counts in the one it pads.
  /^\.[a-z]/ { output = $1; next }
  /^ \*fill\*/ {
    if (output ~ /^\.(text|ARM|init_array|data)/) printf "fill\t%d\t%s\t-\n", hex($3), output
    next
  }
  /^ [.A-Z]/ && NF == 1 { pending = $1; next }
  pending != "" && /^ +0x/ && NF >= 3 { emit(pending, hex($2), $3); pending = ""; next }
  /^ [.A-Z]/ && NF >= 4 && $2 ~ /^0x/ { emit($1, hex($3), $4); pending = ""; next }
  { pending = "" }
' | arm-none-eabi-c++filt | awk -F '\t' -v bar="$bar" -v verbose="$verbose" '
  # The qualified name: drop "(anonymous namespace)", the parameter list and
  # a leading return type (both found at bracket depth 0).
  function qualified(s,   i, c, depth, start, end) {
    gsub(/\(anonymous namespace\)/, "anon", s)
    gsub(/operator<=>/, "operator_cmp", s)
    gsub(/operator\(\)/, "operator_call", s)
    depth = 0; start = 1; end = length(s) + 1
    for (i = 1; i <= length(s); ++i) {
      c = substr(s, i, 1)
      if (c == "<") ++depth
      else if (c == ">") --depth
      else if (depth == 0 && c == " ") start = i + 1
      else if (depth == 0 && c == "(") { end = i; break }
    }
    return substr(s, start, end - start)
  }
  function part(object, symbol,   q) {
    if (object ~ /packet_buffer\.cpp/) return "packet buffer"
    if (object ~ /runtime\.cpp|libgcc/) return "runtime"
    if (object ~ /(board|startup)\.cpp/) return "board + startup"
    q = qualified(symbol)
    if (q ~ /^sluice::port::/) return "port"
    if (q ~ /^sluice::/ || q ~ /^std::/) {
      if (q ~ /timeout_awaiter|sleep/) return "executor"
      if (q ~ /pbuf|packet_buffer|claimed_packet|allocated_packet|claim_awaiter/) return "packet buffer"
      if (q ~ /channel|array_engine|ring_geometry|list_engine|send_awaiter|recv_awaiter/) return "channel"
      if (q ~ /executor|task|frame_pool|timer|join_|completion_poll|value_slot|promise|allocat|spawn/) return "executor"
      return "shared"
    }
    if (object ~ /port\.cpp/) return "port"
    return "demo"
  }
  $1 == "fill" { pad += $2; next }
  {
    p = part($3, $4)
    if (verbose) printf "%-16s %-5s %6d  %s\n", p, $1, $2, $4
    size[p, $1] += $2
    total[$1] += $2
  }
  END {
    n = split("executor|channel|packet buffer|shared|port|board + startup|runtime|demo", rows, "|")
    printf "%-34s %7s %7s %7s\n", "part (Cortex-M3, -Os, release)", ".text", ".data", ".bss"
    for (i = 1; i <= n; ++i) {
      r = rows[i]
      printf "%-34s %7d %7d %7d\n", r, size[r, "text"], size[r, "data"], size[r, "bss"]
      if (i == 4) {
        for (k = 1; k <= 4; ++k) for (j = 1; j <= 3; ++j) {
          split("text data bss", kinds, " ")
          sluice[kinds[j]] += size[rows[k], kinds[j]]
        }
        printf "%-34s %7d %7d %7d\n", "= sluice (the four rows above)", sluice["text"], sluice["data"], sluice["bss"]
      }
    }
    printf "%-34s %7d\n", "alignment padding", pad
    printf "%-34s %7d %7d %7d\n", "all input sections", total["text"] + pad, total["data"], total["bss"]
    if (sluice["text"] >= bar) {
      printf "size: FAIL: sluice .text %d bytes, bar %d\n", sluice["text"], bar
      exit 1
    }
    printf "size: sluice .text %d bytes, under the %d-byte bar\n", sluice["text"], bar
  }
'
echo "arm-none-eabi-size (whole image; .bss includes the main stack):"
arm-none-eabi-size "$elf"
