# libcnnviz -- sources are found by wildcard; the user's CFLAGS come last.
#   make            library (static + shared), cnnviz-dump, examples
#   make test       build and run the test suite
#   make asan       the same under AddressSanitizer + UBSan
#   make demo       render the bundled demo into demo-out/
#   make bench      speed on ../shared/models/bench (JSON lines)
#   make deps       install missing Debian build/test packages (apt-get)
#   make install    PREFIX=/usr/local DESTDIR=

VERSION    := 0.1.0
SOVERSION  := 0
PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR     ?= $(PREFIX)/bin
BUILD      ?= build

CC         ?= cc
PKG_CONFIG ?= pkg-config
DEPS       := hdf5 jansson libzip libpng libturbojpeg
# Deferred (=, not :=) so that `make deps all` sees what `deps` installed.
DEP_CFLAGS  = $(shell $(PKG_CONFIG) --cflags $(DEPS))
DEP_LIBS    = $(shell $(PKG_CONFIG) --libs $(DEPS))
TEST_LIBS   = $(shell $(PKG_CONFIG) --libs cmocka)
# Extra link flags of one test, TEST_LDFLAGS_<name>: test_oom interposes
# on the allocator calls made from libcnnviz's own code.
TEST_LDFLAGS_test_oom := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc \
	-Wl,--wrap=free,--wrap=strdup,--wrap=strndup,--wrap=aligned_alloc

OPT        ?= -O2
WARN       := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
              -Wno-unused-parameter -Wvla -Wformat=2
BASE_CFLAGS = -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -fPIC -pthread \
              -Iinclude -Ilib $(DEP_CFLAGS)
ifeq ($(SAN),1)
BASE_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer \
               -fno-sanitize-recover=undefined
SAN_LDFLAGS := -fsanitize=address,undefined
endif
ALL_CFLAGS  = $(BASE_CFLAGS) $(CPPFLAGS) $(CFLAGS)
ALL_LDFLAGS = -pthread $(SAN_LDFLAGS) $(LDFLAGS)
LIBS        = $(DEP_LIBS) -lm

LIB_SRC   := $(wildcard lib/*.c lib/layers/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
# Each tools/<name>/ folder is one program: build/<name>.
TOOL_DIRS := $(patsubst %/,%,$(dir $(wildcard tools/*/*.c)))
TOOLS     := $(sort $(TOOL_DIRS:tools/%=$(BUILD)/%))
EX_SRC    := $(wildcard examples/*.c)
EXAMPLES  := $(EX_SRC:examples/%.c=$(BUILD)/examples/%)
TEST_SRC  := $(wildcard tests/test_*.c)
TESTS     := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_UTIL := $(wildcard tests/util/*.c)
TEST_UOBJ := $(TEST_UTIL:%.c=$(BUILD)/%.o)

STATIC    := $(BUILD)/libcnnviz.a
SHARED    := $(BUILD)/libcnnviz.so.$(VERSION)
SONAME    := libcnnviz.so.$(SOVERSION)

.PHONY: all lib test asan demo deps readme bench install uninstall clean
.DELETE_ON_ERROR:
.SECONDARY:

all: lib $(TOOLS) $(EXAMPLES)

lib: $(STATIC) $(SHARED)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ISA_FLAGS) $(VEC_FLAGS) -MMD -MP -c $< -o $@

# The backward pass is element-wise loops over whole tensors: let GCC
# vectorise them (-O2 barely does; -fno-trapping-math lets it turn the
# ReLU derivatives' comparisons into selects). Without -ffast-math no sum
# is reordered and no value changes: results keep every bit.
# finite.c's integer loop over all weights at load profits the same way.
VEC_OBJ := $(filter $(BUILD)/lib/grad.o $(BUILD)/lib/finite.o \
	     $(BUILD)/lib/layers/%_grad.o,$(LIB_OBJ))
$(VEC_OBJ): VEC_FLAGS := -ftree-vectorize -fvect-cost-model=dynamic \
	-fno-trapping-math

# Hot kernels built once per instruction set; lib/cpu.c picks one at run
# time (CNNVIZ_ISA=avx512|avx2|generic forces one). Elsewhere these files
# compile to nothing.
ifneq ($(filter x86_64-% amd64-% i686-% i386-%,$(shell $(CC) -dumpmachine)),)
$(BUILD)/lib/isa_avx512.o: ISA_FLAGS := -mavx512f -mavx512vl -mavx2 -mfma
$(BUILD)/lib/isa_avx2.o: ISA_FLAGS := -mavx2 -mfma
endif

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(SHARED): $(LIB_OBJ) lib/cnnviz.map
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=lib/cnnviz.map \
	  $(ALL_LDFLAGS) -o $@ $(LIB_OBJ) $(LIBS)
	ln -sf libcnnviz.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf libcnnviz.so.$(VERSION) $(BUILD)/libcnnviz.so

# Tools and examples link the static library: they run from the build tree.
tool_objs = $(patsubst %.c,$(BUILD)/%.o,$(wildcard tools/$(1)/*.c))
.SECONDEXPANSION:
$(BUILD)/cnnviz-%: $$(call tool_objs,cnnviz-$$*) $(STATIC)
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) $(STATIC) $(LIBS)

$(BUILD)/examples/%: $(BUILD)/examples/%.o $(STATIC)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(STATIC) $(LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_UOBJ) $(STATIC)
	$(CC) $(ALL_LDFLAGS) $(TEST_LDFLAGS_$*) -o $@ $< $(TEST_UOBJ) $(STATIC) $(LIBS) $(TEST_LIBS)

# Tests run from the project root; CNNVIZ_SHARED points at ../shared.
test: all $(TESTS)
	@fail=0; for t in $(TESTS); do \
	  echo "== $$t"; \
	  CNNVIZ_TOOL=$(BUILD)/cnnviz-dump $$t || fail=1; \
	done; \
	sh .ci/readme_layers.sh $(BUILD)/cnnviz-dump || fail=1; \
	if [ $$fail -ne 0 ]; then echo "TESTS FAILED"; exit 1; fi; \
	echo "ALL TESTS PASSED"

asan:
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(MAKE) BUILD=build/asan SAN=1 OPT=-O1 test

deps:
	sh .ci/install-deps.sh

demo: all
	$(BUILD)/cnnviz-dump examples/demo/demo_model.h5 examples/demo/demo.png \
	  -o demo-out --labels edges,red,blue,green --layers all
	@echo "open demo-out/demo/index.html in a browser"

# One JSON line per model and thread count (see cnnviz-dump --help).
SHARED_DIR ?= $(or $(CNNVIZ_SHARED),../shared)
BENCH_RUNS ?= 100
bench: all
	@ls $(SHARED_DIR)/models/bench/*.h5 >/dev/null 2>&1 || \
	  { echo "bench: no models in $(SHARED_DIR)/models/bench (set CNNVIZ_SHARED)"; exit 1; }
	@for m in $(SHARED_DIR)/models/bench/*.h5 $(SHARED_DIR)/models/bench/*.hdf5; do \
	  [ -f "$$m" ] || continue; \
	  for t in 1 2; do $(BUILD)/cnnviz-dump --bench $(BENCH_RUNS) --threads $$t "$$m" || exit 1; done; \
	done

readme: all
	sh .ci/readme_layers.sh $(BUILD)/cnnviz-dump --write

$(BUILD)/cnnviz.pc: Makefile
	@mkdir -p $(BUILD)
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' \
	  'includedir=$(INCLUDEDIR)' '' 'Name: cnnviz' \
	  'Description: Run Keras CNN models in C and inspect every layer' \
	  'Version: $(VERSION)' 'Requires.private: $(DEPS)' \
	  'Libs: -L$${libdir} -lcnnviz' 'Libs.private: -lm -pthread' \
	  'Cflags: -I$${includedir}' > $@

install: all $(BUILD)/cnnviz.pc
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(BINDIR)
	install -m 644 include/cnnviz.h $(DESTDIR)$(INCLUDEDIR)/cnnviz.h
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/libcnnviz.a
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/libcnnviz.so.$(VERSION)
	ln -sf libcnnviz.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf libcnnviz.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libcnnviz.so
	install -m 644 $(BUILD)/cnnviz.pc $(DESTDIR)$(LIBDIR)/pkgconfig/cnnviz.pc
	install -m 755 $(BUILD)/cnnviz-dump $(DESTDIR)$(BINDIR)/cnnviz-dump

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/cnnviz.h $(DESTDIR)$(LIBDIR)/libcnnviz.a \
	  $(DESTDIR)$(LIBDIR)/libcnnviz.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	  $(DESTDIR)$(LIBDIR)/libcnnviz.so $(DESTDIR)$(LIBDIR)/pkgconfig/cnnviz.pc \
	  $(DESTDIR)$(BINDIR)/cnnviz-dump

clean:
	rm -rf build demo-out

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Fuzzing (clang + libFuzzer) lives in its own file.
-include tests/fuzz/fuzz.mk
# make valgrind: the test suite under valgrind.
-include tests/valgrind.mk
