#!/usr/bin/env bash
# CrossHair over the modules listed in .ci/crosshair-targets, within a total time budget.
#
#     bash .ci/crosshair.sh            # from anywhere; needs .venv (./run-tests sets it up)
#
# .ci/crosshair-targets: one target a line, a module path (spec.transitions) or a file
# (spec/transitions.py); blank lines and lines starting with # are ignored. Each target's
# PEP 316 docstring contracts, icontract/deal contracts and asserts are checked:
#     crosshair check --analysis_kind=PEP316,icontract,deal,asserts
#                     --per_condition_timeout=SECONDS
#                     --extra_plugin=.ci/crosshair_plugin.py TARGET...
# The plugin teaches CrossHair to build symbolic FrozenMaps (spec/fmap.py); without it
# every FrozenMap it makes is empty.
#
# Environment:
#   KAFKAREF_CROSSHAIR_BUDGET=300          total seconds for the whole run (via `timeout`)
#   KAFKAREF_CROSSHAIR_PER_CONDITION=3     --per_condition_timeout, CPU seconds per
#                                          postcondition (the targets file says what the
#                                          whole list costs at this setting)
#   KAFKAREF_CROSSHAIR_ON_OVERRUN=fail     or `warn`: what a budget overrun means (below)
#
# Exit status:
#   0  no counterexample (a condition whose own per-condition timeout ran out counts as
#      checked: that is how CrossHair bounds its search)
#   1  CrossHair found at least one counterexample ("FILE:LINE: error: ..." lines)
#   2  CrossHair could not run: missing targets file entry, import error, bad target, ...
#   3  the total budget ran out before CrossHair finished, with no counterexample so far.
#      This fails by default: the targets file promises that those modules are checked,
#      and an overrun means some conditions were never looked at, silently. The fix is a
#      larger budget, a smaller per-condition timeout, or fewer targets. With
#      KAFKAREF_CROSSHAIR_ON_OVERRUN=warn it prints a warning and exits 0 instead.
#      A counterexample printed before the budget ran out still exits 1.
set -uo pipefail

root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
targets_file="$root/.ci/crosshair-targets"
budget="${KAFKAREF_CROSSHAIR_BUDGET:-300}"
per_condition="${KAFKAREF_CROSSHAIR_PER_CONDITION:-3}"
on_overrun="${KAFKAREF_CROSSHAIR_ON_OVERRUN:-fail}"
crosshair="$root/.venv/bin/crosshair"
plugin="$root/.ci/crosshair_plugin.py"

say() { printf 'crosshair.sh: %s\n' "$*" >&2; }

if [[ ! -f "$targets_file" ]]; then
    say "no $targets_file: nothing to check"
    exit 0
fi
if [[ ! -x "$crosshair" ]]; then
    say "$crosshair not found: run ./run-tests (or ./kafkaref --help) once to set up .venv"
    exit 2
fi
if ! [[ "$budget" =~ ^[0-9]+$ && "$budget" -gt 0 ]]; then
    say "KAFKAREF_CROSSHAIR_BUDGET must be a positive whole number of seconds, not '$budget'"
    exit 2
fi
case "$on_overrun" in
    fail | warn) ;;
    *)
        say "KAFKAREF_CROSSHAIR_ON_OVERRUN must be 'fail' or 'warn', not '$on_overrun'"
        exit 2
        ;;
esac

targets=()
while IFS= read -r line || [[ -n "$line" ]]; do
    line="${line%%#*}"
    line="${line#"${line%%[![:space:]]*}"}"
    line="${line%"${line##*[![:space:]]}"}"
    [[ -n "$line" ]] && targets+=("$line")
done <"$targets_file"
if [[ ${#targets[@]} -eq 0 ]]; then
    say "$targets_file lists no targets: nothing to check"
    exit 0
fi

plugin_args=()
# One `=`-joined value: --extra_plugin takes several and would swallow the targets.
[[ -f "$plugin" ]] && plugin_args=("--extra_plugin=$plugin")

say "${#targets[@]} target(s), budget ${budget}s, per condition ${per_condition}s"
out="$(mktemp "${TMPDIR:-/tmp}/kafkaref-crosshair.XXXXXX")"
trap 'rm -f "$out"' EXIT

cd "$root" || exit 2
start=$SECONDS
PYTHONUNBUFFERED=1 timeout --kill-after=15 "$budget" \
    "$crosshair" check --analysis_kind=PEP316,icontract,deal,asserts \
    --per_condition_timeout="$per_condition" "${plugin_args[@]}" "${targets[@]}" 2>&1 |
    tee "$out"
rc=${PIPESTATUS[0]}
elapsed=$((SECONDS - start))

counterexamples="$(grep -cE '^[^[:space:]].*:[0-9]+: error: ' "$out")"

if [[ "$counterexamples" -gt 0 ]]; then
    say "FAILED: $counterexamples counterexample(s) (${elapsed}s)"
    exit 1
fi
case "$rc" in
    0)
        say "OK: no counterexamples (${elapsed}s)"
        exit 0
        ;;
    124 | 137)
        if [[ "$on_overrun" == "warn" ]]; then
            say "WARNING: budget of ${budget}s ran out before CrossHair finished; no" \
                "counterexample so far (KAFKAREF_CROSSHAIR_ON_OVERRUN=warn)"
            exit 0
        fi
        say "FAILED: budget of ${budget}s ran out before CrossHair finished (no counterexample" \
            "so far). Raise KAFKAREF_CROSSHAIR_BUDGET, lower KAFKAREF_CROSSHAIR_PER_CONDITION," \
            "or trim .ci/crosshair-targets"
        exit 3
        ;;
    *)
        say "FAILED: CrossHair could not run (exit $rc; see above)"
        exit 2
        ;;
esac
