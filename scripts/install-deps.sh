#!/usr/bin/env bash
# Installs the Debian packages qiusuo needs to build and test (Open MPI: data and expert
# parallelism under mpirun, docs/dist.md; its tests run `mpirun -np 2` on loopback). Idempotent: packages already
# present are skipped, and `apt-get update` runs only when something is missing.
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh --bench  also the benchmark-only peers (PyTorch with OpenBLAS, jemalloc;
#                                    tqdm and yaml for llama.cpp's GGUF converter)
set -euo pipefail

pkgs=(build-essential cmake pkg-config
      libpcre2-dev nlohmann-json3-dev libcli11-dev
      libgtest-dev libgmock-dev libbenchmark-dev
      libdnnl-dev
      libcpp-httplib-dev zlib1g-dev
      libopenmpi-dev openmpi-bin
      chromium)
# Node.js and npm run the server's client and browser tests (tests/serve/node): Debian's packages,
# unless a node with npm is installed already (NodeSource's nodejs bundles npm and conflicts with Debian's).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  pkgs+=(nodejs npm)
fi
if [[ "${1:-}" == "--bench" ]]; then
  pkgs+=(python3-torch python3-numpy libopenblas0-openmp libjemalloc2 python3-tqdm python3-yaml)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
