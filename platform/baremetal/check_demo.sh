#!/usr/bin/env bash
# Checks the UART output of the shared bare-metal demo (examples/baremetal/):
#   - two summary lines, mode=overwrite then mode=no-overwrite, each with
#     sent == received > 0, produced == claimed + dropped > 0, tasks > 0, and
#     as many `log seq=` lines since the previous summary as claimed;
#   - exactly one `demo: PASS` line and no `demo: FAIL` line.
# Prints what is wrong and exits 1; exits 0 when it all checks out.
#
#   platform/baremetal/check_demo.sh UART_LOG
set -euo pipefail
awk '
  function field(name,   i, kv) {
    for (i = 2; i <= NF; ++i) {
      split($i, kv, "=")
      if (kv[1] == name) return kv[2]
    }
    return ""
  }
  /^log seq=/ { ++logs; next }
  /^summary / {
    ++runs
    mode = field("mode")
    expected = runs == 1 ? "overwrite" : "no-overwrite"
    if (mode != expected) { print "summary " runs ": mode=" mode ", expected " expected; bad = 1 }
    n = split("sent received produced claimed dropped tasks", names, " ")
    for (i = 1; i <= n; ++i) {
      v[names[i]] = field(names[i])
      if (v[names[i]] !~ /^[0-9]+$/) { print "summary " runs ": no count " names[i]; bad = 1 }
    }
    if (v["sent"] + 0 == 0 || v["sent"] != v["received"]) {
      print "summary " runs ": sent=" v["sent"] " received=" v["received"]; bad = 1
    }
    if (v["produced"] + 0 == 0 || v["produced"] != v["claimed"] + v["dropped"]) {
      print "summary " runs ": produced=" v["produced"] " != claimed=" v["claimed"] " + dropped=" v["dropped"]
      bad = 1
    }
    if (v["tasks"] + 0 == 0) { print "summary " runs ": no task completed"; bad = 1 }
    if (logs != v["claimed"]) {
      print "summary " runs ": " logs " log lines for claimed=" v["claimed"]; bad = 1
    }
    logs = 0
    next
  }
  /^demo: PASS$/ { ++pass }
  /^demo: FAIL/ { print "the demo reports: " $0; bad = 1 }
  END {
    if (runs != 2) { print "expected 2 summary lines, found " runs; bad = 1 }
    if (pass != 1) { print "expected one \"demo: PASS\" line, found " pass + 0; bad = 1 }
    exit bad
  }
' "$1"
