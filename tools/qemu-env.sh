# Sourced by tools/setup and tools/demo. Defines qemu_env SUITE, which sets
# QEMU_BUILD, QEMU_INCLUDE and QEMU_SYSTEM_AARCH64 (and the rest of the
# env.sh tools/build-qemu writes) for the QEMU built and cached from
# Debian SUITE's source: trixie (QEMU 10.0) or sid (QEMU 10.2).
# For trixie, the default QEMU, QEMU_BUILD and QEMU_INCLUDE both given in
# the environment win: a QEMU of your own.
qemu_env() {
  if [[ $1 == trixie && -n ${QEMU_BUILD:-} && -n ${QEMU_INCLUDE:-} ]]; then
    QEMU_SYSTEM_AARCH64=${QEMU_SYSTEM_AARCH64:-$QEMU_BUILD/qemu-system-aarch64}
    return
  fi
  # shellcheck source=/dev/null
  . "$(dirname "$(tools/build-qemu "$1" | tail -n 1)")/env.sh"
}
