#!/bin/sh
# Installs what supernest needs on Debian 12 (only the packages missing),
# then configures and builds it in ./build (release).  Idempotent.
#   scripts/setup.sh            build dependencies + Fashion-MNIST and fortunes (LM text)
#   scripts/setup.sh --tests    also what the tests need (PyTorch, numpy, SLURM + munge, valgrind;
#                               clang with libFuzzer, the sanitizers and OpenMP for scripts/fuzz.sh)
set -eu
cd "$(dirname "$0")/.."

pkgs="gcc libc6-dev meson ninja-build pkg-config libblis-dev libopenmpi-dev openmpi-bin
      libhdf5-openmpi-dev hdf5-tools zlib1g-dev libxxhash-dev libinih-dev dataset-fashion-mnist fortunes gnuplot-nox"
if [ "${1:-}" = "--tests" ]; then
    pkgs="$pkgs libcmocka-dev python3 python3-torch python3-numpy python3-h5py python3-xxhash
          slurm-wlm munge valgrind clang libclang-rt-14-dev libomp-14-dev"
fi

missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup: installing$missing"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# the tests need CMocka: without --tests they are built if it is installed;
# --tests requires them (a build the demo set up without them gains them)
tests=auto
[ "${1:-}" = "--tests" ] && tests=enabled
if [ ! -f build/build.ninja ]; then
    meson setup build --buildtype=release -Dtests=$tests
elif [ "$tests" = enabled ] &&
     ! grep -q '"name": "tests", "value": "enabled"' build/meson-info/intro-buildoptions.json; then
    meson configure build -Dtests=enabled
fi
ninja -C build
