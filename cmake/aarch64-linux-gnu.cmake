# Cross-building astembed for arm64 (aarch64) on Debian, with the cross toolchain
# (crossbuild-essential-arm64) and the :arm64 multiarch -dev packages, as installed
# by tools/deps.sh --arm64. `make test-arm64` uses it:
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#         -Ddnnl_DIR=<libdnnl-dev:arm64 unpacked>/usr/lib/aarch64-linux-gnu/cmake/dnnl
# Tests run under qemu-aarch64-static (CMAKE_CROSSCOMPILING_EMULATOR).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Multiarch: arm64 libraries live in /usr/lib/aarch64-linux-gnu beside the host's,
# headers in /usr/include (shared) and /usr/include/aarch64-linux-gnu.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# /lib/ld-linux-aarch64.so.1 and the :arm64 libraries are installed natively, so
# qemu needs no sysroot prefix.
find_program(AE_QEMU_AARCH64 qemu-aarch64-static)
if(AE_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${AE_QEMU_AARCH64})
endif()
