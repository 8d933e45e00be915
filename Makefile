# One command to build, one to test, one to demo. Everything installs itself on first use.
BUILD_DIR ?= build
JOBS ?= 2
CMAKE_FLAGS ?=

.PHONY: all setup build test demo fuzz clean

all: build

setup: .deps/.setup-done

.deps/.setup-done: scripts/setup.sh
	bash scripts/setup.sh

build: setup
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

demo: build
	bash scripts/demo.sh $(BUILD_DIR)/q3vl

# libFuzzer runs (clang, ASan+UBSan) of the safetensors header parser and the image decoders,
# 60 s each.
fuzz: setup
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQ3VL_FUZZ=ON -DQ3VL_BUILD_TESTS=OFF >/dev/null
	cmake --build build-fuzz -j $(JOBS) --target safetensors_header_fuzzer image_decode_fuzzer
	mkdir -p build-fuzz/corpus-safetensors build-fuzz/corpus-image
	./build-fuzz/fuzz/safetensors_header_fuzzer -max_total_time=60 build-fuzz/corpus-safetensors fuzz/corpus/safetensors_header
	./build-fuzz/fuzz/image_decode_fuzzer -max_total_time=60 build-fuzz/corpus-image fuzz/corpus/image_decode

clean:
	rm -rf $(BUILD_DIR) build-fuzz
