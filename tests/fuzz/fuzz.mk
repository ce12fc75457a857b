# libFuzzer targets, built with clang into build/fuzz/ (included by the
# Makefile). Each target links its own copy of the library sources built
# with -fsanitize=fuzzer-no-link,address,undefined.
#
#   make fuzz                 build, seed, run every target FUZZ_SECONDS
#   make fuzz FUZZ_SECONDS=600 FUZZ_TARGETS_RUN="config model"
#   make fuzz-build           only build build/fuzz/fuzz_<target>
#
# Seeds come from the project's own files (tests/fixtures/cases, tests/bad)
# through tests/fuzz/seeds.py into build/fuzz/corpus/<target>/, where
# libFuzzer also keeps what it finds; crashes go to build/fuzz/crashes/.
# Each run's log is build/fuzz/<target>.log; a summary of execs, execs/s
# and coverage is printed at the end. A crash fails the target.

FUZZ_CC          ?= clang
FUZZ_SECONDS     ?= 60
FUZZ_DIR         := build/fuzz
FUZZ_SAN         := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                    -fno-omit-frame-pointer
FUZZ_CFLAGS       = -std=c11 -D_GNU_SOURCE -g -O1 $(WARN) -pthread -Iinclude -Ilib \
                    $(DEP_CFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SAN)
FUZZ_LIB_OBJ     := $(LIB_SRC:%.c=$(FUZZ_DIR)/%.o)
FUZZ_NAMES       := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS        := $(FUZZ_NAMES:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_TARGETS_RUN ?= $(FUZZ_NAMES)
FUZZ_ARGS        ?= -rss_limit_mb=2560 -timeout=10 -print_final_stats=1
# libhdf5 (a shared library, not instrumented, not ours to fix) crashes and
# hangs on some corrupt files, so the model target runs in fork mode and
# keeps going; tests/fuzz/triage.sh then blames each artifact on the first
# stack frame and only failures in libcnnviz's own code fail the run.
FUZZ_ARGS_model  ?= -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -timeout=1
# The CLI parser prints a usage error for most inputs: close the target's
# stderr (libFuzzer keeps its own copy for reports), or the log grows by
# hundreds of MB a minute.
FUZZ_ARGS_args   ?= -close_fd_mask=2

.PHONY: fuzz fuzz-build fuzz-corpus

$(FUZZ_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/tests/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -pthread -o $@ $^ $(LIBS)

# the command-line parser is the tool's, not the library's
$(FUZZ_DIR)/fuzz_args: $(FUZZ_DIR)/tools/cnnviz-dump/args.o

fuzz-build: $(FUZZ_BINS)

# Re-seeded on every run: seeds are cheap, libFuzzer dedups by coverage.
fuzz-corpus:
	@mkdir -p $(FUZZ_DIR)/corpus
	/usr/bin/python3 tests/fuzz/seeds.py $(FUZZ_DIR)/corpus

fuzz: fuzz-build fuzz-corpus
	@fail=0; for t in $(FUZZ_TARGETS_RUN); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/crashes/$$t; \
	  dict=; [ -f tests/fuzz/$$t.dict ] && dict=-dict=tests/fuzz/$$t.dict; \
	  extra=; [ $$t = model ] && extra="$(FUZZ_ARGS_model)"; \
	  [ $$t = args ] && extra="$(FUZZ_ARGS_args)"; \
	  echo "== fuzz_$$t for $(FUZZ_SECONDS) s (log $(FUZZ_DIR)/$$t.log)"; \
	  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(FUZZ_DIR)/fuzz_$$t $(FUZZ_ARGS) $$extra $$dict \
	    -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(FUZZ_DIR)/crashes/$$t/ \
	    $(FUZZ_DIR)/corpus/$$t > $(FUZZ_DIR)/$$t.log 2>&1; \
	  grep -E '^#[0-9]+(:|.*DONE)' $(FUZZ_DIR)/$$t.log | tail -1; \
	  grep -E 'stat::(number_of_executed_units|average_exec_per_sec)' \
	    $(FUZZ_DIR)/$$t.log | tail -2; \
	  sh tests/fuzz/triage.sh $(FUZZ_DIR)/fuzz_$$t $(FUZZ_DIR)/crashes/$$t || fail=1; \
	done; \
	if [ $$fail -ne 0 ]; then \
	  echo "FUZZING FOUND BUGS IN LIBCNNVIZ (inputs in $(FUZZ_DIR)/crashes)"; exit 1; fi
