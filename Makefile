# astembed — the two commands a newcomer needs:
#   make demo   build, embed the shipped example and run a query (the main job)
#   make test   build and run every test, then again under ASan+UBSan (and TSan for
#               the concurrency tests)
# Other targets: make (build), make bench, make bench-pipeline, make bench-retrieval,
# make bench-mcp, make fuzz, make clean,
# make test-arm64 (cross-build for arm64 into build-arm64/, release tests under qemu).
# All build output lands in build/ (release), build-asan/, build-tsan/, build-fuzz/.

JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
CTEST = ctest --output-on-failure --no-tests=error -j$(JOBS) --output-junit ctest-junit.xml

.PHONY: all deps deps-test build test test-release test-asan test-tsan test-arm64 demo bench bench-pipeline bench-retrieval bench-mcp fuzz clean

all: build

# Debian packages: `deps` what building and running need (make, make demo), `deps-test`
# those plus what only the tests need (make test, make fuzz). See tools/deps.sh.
deps:
	@tools/deps.sh build

deps-test:
	@tools/deps.sh test

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build build -j$(JOBS)

# make install PREFIX=DIR: bin/astembed, include/astembed.h, lib/libastembed.so.MAJOR
# (+ .so links), lib/libastembed.a and lib/pkgconfig/astembed.pc under DIR.
PREFIX ?= /usr/local
.PHONY: install
install: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS) >/dev/null
	@cmake --build build -j$(JOBS)
	cmake --install build

# ends with the tests each pass skipped and why (tools/skipped.py)
test: test-release test-asan test-tsan
	@tools/skipped.py build build-asan build-tsan

test-release: build deps-test
	cd build && $(CTEST)

test-asan: deps-test
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAE_SANITIZE=address,undefined $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tools/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(CTEST) -LE nosan

test-tsan: deps-test
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAE_SANITIZE=thread $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-tsan -j$(JOBS)
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 $(CTEST) -L tsan

# The arm64 cross build: Debian's cross toolchain and :arm64 libraries (tools/deps.sh
# --arm64), every release test run under qemu-aarch64-static except those that need
# Python (the float64 PyTorch reference), AVX-512 (bf16) or an x86 host (qemu Haswell),
# and test_probe: qemu-user fakes /proc/self/stat, whose CPU times then read 0, and
# test_install, which compiles and runs a program against the installed tree with the
# host's compiler and pkg-config (a native install check; a cross tree cannot serve it).
ARM64_DNNL = $(CURDIR)/build-arm64/dnnl-dev
ARM64_EXCLUDE = test_encoder_reference|test_model_python|test_encoder_bf16|test_qemu_haswell|test_probe|test_install
test-arm64:
	@tools/deps.sh --arm64 $(ARM64_DNNL)
	@cmake -S . -B build-arm64 -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/cmake/aarch64-linux-gnu.cmake \
	  -Ddnnl_DIR=$(ARM64_DNNL)/usr/lib/aarch64-linux-gnu/cmake/dnnl $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-arm64 -j$(JOBS)
	cd build-arm64 && $(CTEST) -E '$(ARM64_EXCLUDE)'

demo: build
	@tools/demo.sh

bench: build
	@tools/deps.sh bench
	@bench/run.sh

bench-pipeline: build
	@tools/deps.sh bench
	@bench/pipeline.sh

# retrieval quality per search mode (exit status: lexical >= +10% MRR@10 over plain
# BM25), then lexical query latency end to end (exit status: p50 within 3x sqlite3's)
bench-retrieval: build
	@build/bench/bench_retrieval $(BENCH_ARGS)
	@build/bench/bench_lexical_latency

bench-mcp: build
	@AE_SOURCE_DIR=$(CURDIR) build/bench/bench_mcp

fuzz: deps-test
	@CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAE_FUZZ=ON -DAE_NATIVE=ON >/dev/null
	@cmake --build build-fuzz -j$(JOBS)
	@bench/fuzz.sh

clean:
	rm -rf build build-asan build-tsan build-fuzz build-arm64
