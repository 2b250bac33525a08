# shellcheck shell=bash
# The verdict: the main boot's console and HOST_LOG (the host driver's scenarios, the verdicts
# of the boots of their own, host-side metrics) hold VMTEST-* lines; report sums them up.

# report: summary, metrics, failing scenarios' context, then exactly "N passed, M failed".
# Returns non-zero on any failure, when no scenario ran, or when a run never finished:
# MAIN_BOOTED=1 wants the guest's VMTEST-END, SEL_HOST wants the driver's VMTEST-HOST-END.
report() {
  local log n pass=0 failed=0 plan why t ran
  local -a failed_names=() unfinished=()
  log=$({ [[ -n ${MAIN_BOOTED:-} ]] && tr -d '\r' <"$CONSOLE"; cat "$HOST_LOG" 2>/dev/null; } || true)
  if [[ -n ${MAIN_BOOTED:-} ]] && ! grep -qx VMTEST-END <<<"$log"; then
    unfinished+=("vm: the guest never printed VMTEST-END (crash, panic or timeout; qemu status $MAIN_QEMU_RC)")
  fi
  if [[ -n $SEL_HOST ]] && ! grep -qx VMTEST-HOST-END <<<"$log"; then
    unfinished+=("host: the host driver never finished")
  fi
  # every planned scenario, plus any reported one that was not planned
  # shellcheck disable=SC2046
  plan=$(printf '%s\n' $(sed -n 's/^VMTEST-PLAN //p' <<<"$log") \
    $(sed -nE 's/^VMTEST-(PASS|FAIL) ([^: ]+).*/\2/p' <<<"$log") | awk 'NF && !seen[$0]++')
  echo
  echo "==== results (${MAIN_BOOTED:+$CONSOLE, }$HOST_LOG)"
  for n in $plan; do
    t=$(awk -v n="$n" '$1 == "VMTEST-TIME" && $2 == n { printf " (%ss)", $3 }' <<<"$log")
    if grep -qx "VMTEST-PASS $n" <<<"$log" && ! grep -q "^VMTEST-FAIL $n:" <<<"$log"; then
      printf '  PASS  %-19s%s\n' "$n" "$t"
      pass=$((pass + 1))
    else
      why=$(sed -n "s/^VMTEST-FAIL $n: //p" <<<"$log" | head -n 1)
      printf '  FAIL  %-19s%s: %s\n' "$n" "$t" "${why:-no result (the run stopped before it)}"
      failed=$((failed + 1))
      failed_names+=("$n")
    fi
  done
  for why in "${unfinished[@]}"; do
    printf '  FAIL  %-19s: %s\n' "${why%%:*}" "${why#*: }"
    failed=$((failed + 1))
  done
  echo "==== metrics"
  sed -n 's/^VMTEST-METRIC //p' <<<"$log" | awk '{ printf "  %-24s %s\n", $1, $2 }'
  for n in "${failed_names[@]}"; do
    echo "==== context: $n"
    grep -F "  [$n] " <<<"$log" | tail -n "${VM_CONTEXT_LINES:-40}" || true
  done
  if ((${#unfinished[@]})) && [[ -n ${MAIN_BOOTED:-} ]]; then
    echo "==== last console lines"
    tr -d '\r' <"$CONSOLE" | tail -n 30
  fi
  # "boot" is setup: it alone does not count as a scenario having run
  ran=$(grep -cE '^VMTEST-(PASS|FAIL) ' <<<"$log" || true)
  grep -qE '^VMTEST-(PASS|FAIL) boot\b' <<<"$log" && ran=$((ran - 1))
  ((ran > 0)) || echo "no scenario ran"
  echo "$pass passed, $failed failed"
  ((failed == 0 && ran > 0))
}
