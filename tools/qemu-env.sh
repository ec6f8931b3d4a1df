# Sourced by tools/setup and tools/demo: sets QEMU_BUILD and QEMU_INCLUDE.
# Both given in the environment: a QEMU of your own. Otherwise the one
# tools/build-qemu builds (and caches) from Debian trixie's source.
if [[ -z ${QEMU_BUILD:-} || -z ${QEMU_INCLUDE:-} ]]; then
  # shellcheck source=/dev/null
  . "$(dirname "$(tools/build-qemu trixie | tail -n 1)")/env.sh"
fi
