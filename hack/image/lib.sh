# shellcheck shell=bash disable=SC2034  # (its variables are for the scripts that source it)
# Shared by hack/image/*.sh (sourced, not run): where the image cache and the container
# store live, the podman flags that work on CI's machine, and the tools' install.
#
# Environment:
#   XLINEFED_IMAGE_CACHE   cache root (default ~/.cache/xlinefed-image): base tarballs,
#                          build logs and a container store of its own (storage/)
#   XLINEFED_IMAGE_DRIVER  storage driver (default overlay where the kernel mounts it as
#                          we are, else vfs)

image_cache="${XLINEFED_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xlinefed-image}"
image_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

say() { printf '\033[1m%s: %s\033[0m\n' "$(basename "$0")" "$*" >&2; }

# podman (whose `build` is buildah's), the OCI runtimes and debootstrap come from Debian's
# packages: no registry serves images here, and CI installs what it needs on a fresh machine.
ensure_tools() {
  local missing=()
  command -v podman > /dev/null || missing+=(podman)
  command -v crun > /dev/null || missing+=(crun)
  command -v runc > /dev/null || missing+=(runc)
  command -v debootstrap > /dev/null || missing+=(debootstrap)
  if ((${#missing[@]})); then
    say "installing ${missing[*]} (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
  fi
}

# A container store of our own under the cache, not /var/lib/containers: CI can keep
# (or drop) it as one directory, and nothing else on the machine sees our images.
# The run root and podman's tmpdir are per boot, so they go to /run (tmpfs) where we may
# write there, one per store (podman keeps both in the store's database and refuses another,
# and two stores must not share one).
storage_flags() {
  local driver="${XLINEFED_IMAGE_DRIVER:-}"
  if [[ -z "$driver" ]]; then
    if grep -qw overlay /proc/filesystems && [[ $(id -u) == 0 ]]; then driver=overlay; else driver=vfs; fi
  fi
  local runroot store
  store="$(echo "$image_cache" | sha256sum | cut -c1-12)"
  runroot="/run/xlinefed-image/$store"
  [[ -w /run ]] || runroot="${XDG_RUNTIME_DIR:-/tmp}/xlinefed-image-$(id -u)/$store"
  STORAGE=(--root "$image_cache/storage" --runroot "$runroot" --tmpdir "$runroot/libpod"
    --storage-driver "$driver")
}

# The OCI runtime: crun, except on a host with cgroup v1 and v2 hierarchies mounted side by
# side whose v2 one has a controller (CI's machine: hugetlb), which crun 1.8 refuses
# ("cgroups in hybrid mode not supported"); runc runs there. XLINEFED_IMAGE_RUNTIME wins.
oci_runtime() {
  if [[ -n "${XLINEFED_IMAGE_RUNTIME:-}" ]]; then
    echo "$XLINEFED_IMAGE_RUNTIME"
  elif grep -qs . /sys/fs/cgroup/unified/cgroup.controllers; then
    echo runc
  else
    echo crun
  fi
}

# podman's global flags for a machine where systemd is not PID 1 (CI's, containers):
# cgroupfs instead of systemd's cgroup manager, events to a file instead of journald.
podman_cmd() {
  storage_flags
  PODMAN=(podman "${STORAGE[@]}" --cgroup-manager cgroupfs --events-backend file
    --runtime "$(oci_runtime)")
}

# Flags for `podman run`: podman asks for nofile 1048576 and nproc 32768 by default, more
# than a root without CAP_SYS_RESOURCE (CI's) may set; ask for what this shell has.
run_flags() {
  local nofile nproc
  nofile="$(ulimit -Hn)"
  nproc="$(ulimit -Hu)"
  [[ "$nofile" == unlimited || "$nofile" -gt 1048576 ]] && nofile=1048576
  [[ "$nproc" == unlimited || "$nproc" -gt 32768 ]] && nproc=32768
  RUN_FLAGS=(--pull=never --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
}
