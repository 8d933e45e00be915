# One command to build, one to test, one to demo. Everything installs itself on first use.
SHELL := /bin/bash
BUILD_DIR ?= build
JOBS ?= 2
CMAKE_FLAGS ?=

.PHONY: all setup build test demo bench fuzz asan tsan clean

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

# Real-shape random-weight 2B checkpoint: export, vision, prefill, decode, load and peak RSS
# (about 10 minutes on 2 cores, ~10 GB of disk in $$TMPDIR/q3vl-bench; BENCH_ARGS=--4b adds the 4B).
bench: build
	bash bench/run_benchmarks.sh $(BENCH_ARGS)

# libFuzzer runs (clang, ASan+UBSan, the whole library instrumented) of every parser a user's
# file or text reaches, FUZZ_SECONDS each; new corpus entries go to build-fuzz/corpus-NAME.
FUZZ_TARGETS = safetensors_header image_decode checkpoint_configs tokenizer_json package_manifest chat_input chat_template video_decode chat_request
FUZZ_SECONDS ?= 60
fuzz: setup
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQ3VL_FUZZ=ON -DQ3VL_BUILD_TESTS=OFF >/dev/null
	cmake --build build-fuzz -j $(JOBS) --target $(addsuffix _fuzzer,$(FUZZ_TARGETS))
	set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/corpus-$$t; \
	  echo "== fuzzing $$t for $(FUZZ_SECONDS) s"; \
	  ./build-fuzz/fuzz/$${t}_fuzzer -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -print_final_stats=1 \
	    build-fuzz/corpus-$$t fuzz/corpus/$$t $$([ $$t = chat_template ] && echo tools/golden/templates) 2>&1 | grep -E "^(==|#[0-9]+ *DONE|stat::number_of_executed_units|SUMMARY)" ; \
	  test $${PIPESTATUS[0]} -eq 0; \
	done

# The whole test suite built with AddressSanitizer and UndefinedBehaviorSanitizer (gcc); any
# report fails the test it happens in. ONNX Runtime itself is not instrumented.
asan: setup
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQ3VL_SANITIZE=ON >/dev/null
	cmake --build build-asan -j $(JOBS)
	ASAN_OPTIONS=$(ASAN_OPTIONS_DEFAULT) UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitizers/lsan.supp:print_suppressions=0 \
	  ctest --test-dir build-asan --output-on-failure -j $(JOBS) $(CTEST_ARGS)
ASAN_OPTIONS_DEFAULT = detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=0

# The server's tests (in-process HTTP, real clients, a shorter load test) and the batch engine's
# built with ThreadSanitizer (gcc): races between the HTTP threads, the scheduler, the slots and
# the engine thread fail them. ONNX Runtime itself is not instrumented.
tsan: setup
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQ3VL_TSAN=ON >/dev/null
	cmake --build build-tsan -j $(JOBS) --target q3vl_cli q3vl_server_tests q3vl_runtime_tests
	TSAN_OPTIONS=halt_on_error=1:report_mutex_bugs=0:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/sanitizers/tsan.supp \
	  ctest --test-dir build-tsan --output-on-failure -L server $(CTEST_ARGS)
	TSAN_OPTIONS=halt_on_error=1:report_mutex_bugs=0:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/sanitizers/tsan.supp \
	  ctest --test-dir build-tsan --output-on-failure -R '^Batch\.' $(CTEST_ARGS)

clean:
	rm -rf $(BUILD_DIR) build-fuzz build-asan build-tsan
