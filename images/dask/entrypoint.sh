#!/bin/sh
# The Dask image's entrypoint (scripts/images' ska-sdp-dask): runs its arguments, as the dask chart passes them
# (`dask scheduler ...`, `dask worker tcp://...:8786 ...`); arguments starting with `-` go to `dask`. The public
# image's start-up installs (EXTRA_PIP_PACKAGES, EXTRA_APT_PACKAGES, EXTRA_CONDA_PACKAGES) are not available:
# this image runs Debian's Dask as it is, and says so when they are set.
set -eu
for name in EXTRA_PIP_PACKAGES EXTRA_APT_PACKAGES EXTRA_CONDA_PACKAGES; do
  eval "value=\${$name:-}"
  [ -z "$value" ] || echo "dask-entrypoint: $name is set, but this image installs no packages: ignored" >&2
done
case "${1:-}" in
  "" | -*) set -- dask "$@" ;;
esac
exec "$@"
