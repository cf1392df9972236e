#!/usr/bin/env bash
# The one test command: installs the Debian packages the lab tests need (when missing and
# running as root), points the control-plane tests at kube-apiserver and
# kube-controller-manager, then runs formatting, lints and every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(bird2 frr gobgpd arping ndisc6 tcpdump iproute2 iputils-ping etcd-server curl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "not root: lab tests will be skipped (missing: ${missing[*]})"
  fi
fi

# The control-plane tests take kube-apiserver and kube-controller-manager from
# KUBEBUILDER_ASSETS, as controller-runtime's envtest does; the workspace's shared copy is the
# default. Elsewhere: `setup-envtest use -p path` prints a directory to set it to.
if [ -z "${KUBEBUILDER_ASSETS:-}" ] && [ -d ../shared/envtest ]; then
  KUBEBUILDER_ASSETS="$(cd ../shared/envtest && pwd)"
  export KUBEBUILDER_ASSETS
fi
echo "control plane binaries: ${KUBEBUILDER_ASSETS:-none (control-plane tests skip, or fail under CI)}"

# A cold build takes about 3 GiB under target/; say so up front rather than fail mid-link.
free_kib=$(df -Pk . | awk 'NR == 2 {print $4}')
if [ "$free_kib" -lt $((4 * 1024 * 1024)) ]; then
  echo "warning: only $((free_kib / 1024)) MiB free here; the build needs about 3 GiB" >&2
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
