#!/usr/bin/env bash
# A separate environment for `python benchmarks/bench_irl.py --imitation` only: imitation 1.0.1
# pins gymnasium~=0.29 and stable-baselines3~=2.2, which the project's own environment must not
# be downgraded to. torch is installed first (the local CPU wheel) so pip does not fetch CUDA builds.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV=.venv-imitation
python3 -m venv "$ENV"
"$ENV/bin/pip" install -q torch==2.13.0
"$ENV/bin/pip" install -q imitation==1.0.1
"$ENV/bin/pip" install -q -e . --no-deps
"$ENV/bin/pip" install -q pyro-ppl networkx matplotlib scipy tqdm
echo "ready: $ENV/bin/python benchmarks/bench_irl.py --imitation"
