#!/usr/bin/env bash
# Plays a CI bot: pushes a pull request, waits until the reviewer is on it, pushes a new commit
# while the review is still going, then waits for the final verdict and prints the runs.
#
# Needs kubectl, and KUBECONFIG pointing at the cluster (for the dev cluster, the line
# `export KUBECONFIG=...` that `review-operator dev` prints), and the Reviewer of
# examples/reviewer.yaml. The `kubectl review` plugin (binary `kubectl-review`) must be on PATH;
# when it is not, this script uses target/release or target/debug of this repository.
# Settings (environment): NAMESPACE, REVIEWER, PR, NUMBER, TIMEOUT; each run of the script pushes
# two fresh commits.
set -euo pipefail

NAMESPACE=${NAMESPACE:-demo}
REVIEWER=${REVIEWER:-review-example}
NUMBER=${NUMBER:-2}
PR=${PR:-https://github.com/example/widgets/pull/$NUMBER}
TIMEOUT=${TIMEOUT:-180s}

if ! command -v kubectl-review >/dev/null; then
  repo=$(cd "$(dirname "$0")/.." && pwd)
  for dir in "$repo/target/release" "$repo/target/debug"; do
    if [[ -x $dir/kubectl-review ]]; then
      PATH=$dir:$PATH
      break
    fi
  done
fi
if ! command -v kubectl-review >/dev/null; then
  echo "ci-bot: kubectl-review is not on PATH; build it with cargo build --release" >&2
  exit 1
fi

# Two distinct commits per run of the script (the first 7 characters name the runs).
stamp=$(printf '%06x' $(($(date +%s) % 16777216)))
FIRST_SHA=a${stamp}000000001
SECOND_SHA=b${stamp}000000002

# Pushes a commit: creates the ReviewRun and prints its name.
push() {
  local sha=$1 out
  out=$(kubectl review trigger -n "$NAMESPACE" --reviewer "$REVIEWER" --pr "$PR" --number "$NUMBER" --sha "$sha")
  echo "ci-bot: pushed ${sha:0:7}: $out" >&2
  out=${out#reviewrun.review.ao.dev/}
  echo "${out%% *}"
}

first=$(push "$FIRST_SHA")
kubectl wait -n "$NAMESPACE" --for=jsonpath='{.status.phase}'=Running "reviewrun/$first" --timeout="$TIMEOUT"
echo "ci-bot: $first is under review; pushing a new commit"

second=$(push "$SECOND_SHA")
kubectl wait -n "$NAMESPACE" --for=jsonpath='{.status.phase}'=Failed "reviewrun/$first" --timeout="$TIMEOUT"
echo "ci-bot: $first: $(kubectl get -n "$NAMESPACE" "reviewrun/$first" -o jsonpath='{.status.reason} by {.status.supersededBy}')"
kubectl wait -n "$NAMESPACE" --for=jsonpath='{.status.phase}'=Succeeded "reviewrun/$second" --timeout="$TIMEOUT"
echo "ci-bot: verdict for ${SECOND_SHA:0:7}: $(kubectl get -n "$NAMESPACE" "reviewrun/$second" -o jsonpath='{.status.result.verdict}')"

kubectl get reviewruns -n "$NAMESPACE" -l "review.ao.dev/reviewer=$REVIEWER"
