#!/usr/bin/env bash
# The GPU benchmarks, in under 8 minutes on one H100/H200: the full-data gradient pass against
# the device's memory bandwidth, SGLD throughput at N = 10^6, and time to target against NUTS,
# HMCECS and BlackJAX at N = 10^6 and 10^7 (d = 100). Writes JSON and Markdown into
# ${OUT:-benchmarks/results/gpu}.
#
# Run from the project's root. On a machine without Pyro/ArviZ/BlackJAX and without an index,
# first fill .whl/ elsewhere (../shared/gpu/wheels.sh blackjax==1.7.1 jaxtyping fastprogress)
# and bring it along; this script installs it into .site/ when it is there.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --target "$PWD/.site" .whl/*.whl
    export PYTHONPATH="$PWD/.site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import torch, jax, numpyro; print(torch.__version__, jax.__version__, numpyro.__version__, jax.devices())" \
    | tee "$OUT/versions.txt"
start=$SECONDS
timeout 90 python3 benchmarks/full_gradient_bandwidth.py --sizes 1000000 10000000 --dim 100 --device cuda \
    --repeats 20 --out "$OUT/full_gradient_bandwidth"
timeout 90 python3 benchmarks/sgld_throughput.py --num-data 1000000 --dims 100 --device cuda --repeats 3 \
    --out "$OUT/sgld_throughput"
# NUTS and HMCECS are the slowest rows: --mcmc-budget stops each after 90 s (a lower bound on its
# time to target where it has not reached it), and each case is one process, so a timeout loses one case only
for n in 1000000 10000000; do
    left=$(( 470 - (SECONDS - start) ))
    if [ "$left" -lt 60 ]; then echo "no time left for N = $n" >&2; break; fi
    timeout "$left" python3 benchmarks/vs_alternatives.py --dims 100 --sizes "$n" --budget 60 --mcmc-budget 90 --append --device cuda \
        --methods "ppzoo sgld-cv (numpyro)" "ppzoo svrg-ld (numpyro)" "ppzoo sarah-ld (numpyro)" \
                  "ppzoo sgld-cv (pyro)" NUTS HMCECS "BlackJAX sgld" \
        --out "$OUT/vs_alternatives" || echo "N = $n stopped at the time limit" >&2
done
echo "GPU benchmarks took $(( SECONDS - start )) s"
