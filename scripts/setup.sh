#!/usr/bin/env bash
# Installs what daos-rs needs on a Debian machine: the Debian packages below and a Rust
# toolchain (if cargo is missing). Idempotent: installs only what is absent. Needs root,
# or sudo: run it as `sudo -E scripts/setup.sh` if you are not root.
set -euo pipefail

# protobuf-compiler: protoc for the dRPC/gRPC .proto files; pkg-config: -sys crates;
# libfabric-dev + libclang-dev: the libfabric bindings (bindgen); libfabric-bin: fi_info and
# fi_pingpong; libhwloc-dev + libudev-dev: the hwloc topology (hwlocality); ipmctl + ndctl:
# PMem modules and namespaces (storage scan, storage prepare); libpmem-dev: SCM files of targets.
# fio: the storage benchmark's same-run reference (daos_bench storage --compare-fio).
# openssl: RSA keys as DAOS's gen_certificates.sh makes them (the RSA-PSS credential test).
PACKAGES=(iproute2 protobuf-compiler pkg-config libfabric-dev libclang-dev libfabric-bin libhwloc-dev libudev-dev ipmctl ndctl libpmem-dev fio openssl python3 python3-grpcio python3-protobuf)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then SUDO=sudo; else
      echo "setup: need root to install: ${missing[*]}" >&2
      echo "fix: run 'sudo -E $0' or install them with apt-get as root" >&2
      exit 1
    fi
  else
    SUDO=
  fi
  echo "setup: installing ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
  if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: cargo not found; installing Debian's rustc and cargo" >&2
    ${SUDO:-} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cargo rustc
  fi
fi
