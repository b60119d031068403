# paperclip — one binary, a plugin SDK, plugins and their tests.
#
#   make            build ./paperclip, libpaperclip-plugin.a and every plugin
#   make run        deps + build + serve on the embedded default
#   make test       deps + build + layer check + the whole suite (ends with "N passed, N failed")
#   make asan       the suite again under ASan+UBSan (separate build tree)
#   make tsan       the suite again under ThreadSanitizer (build/tsan)
#   make fuzz       every libFuzzer target in fuzz/ for FUZZ_SECONDS (15) each (clang)
#   make bench      measured numbers, printed as a table
#   make install    binary, SDK header, static library and pkg-config file
#
# Sources are found by directory, so adding a file never needs an edit here.

CC      ?= gcc
PREFIX  ?= /usr/local
PKGS    := libmicrohttpd libuv jansson sqlite3 libsodium libcurl

ifeq ($(SAN),1)
BUILD   := build/asan
OPT     := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else ifeq ($(SAN),tsan)
BUILD   := build/tsan
OPT     := -O1 -fsanitize=thread -fno-omit-frame-pointer
# TSan's options and suppressions, linked into every program of this build.
SAN_OBJS := $(BUILD)/tests/tsan_defaults.o
else
BUILD   := build/release
OPT     := -O2
endif

CFLAGS  ?=
CFLAGS  += -std=c17 -Wall -Wextra -Werror -g $(OPT) -D_GNU_SOURCE -pthread \
           -Isrc -Iinclude $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
LDFLAGS += $(filter -fsanitize=%,$(OPT))

CORE_DIRS := src/lib src/store src/model src/plugin src/env src/run src/http src/api src/daemon src/cli
CORE_SRCS := $(foreach d,$(CORE_DIRS),$(wildcard $(d)/*.c))
CORE_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(CORE_SRCS)) $(BUILD)/gen/embedded.o
CORE_LIB  := $(BUILD)/libpaperclip-core.a

# The SDK starts commands with the daemon's pc_spawn() and repairs UTF-8 with its
# pc_utf8_repair(); spawn.c and utf8.c use only libc, so the static library stays
# self-contained (their objects are shared with the core library).
SDK_SRCS  := $(wildcard sdk/*.c) src/lib/spawn.c src/lib/utf8.c
SDK_OBJS  := $(patsubst %.c,$(BUILD)/%.o,$(SDK_SRCS))
SDK_LIB   := $(BUILD)/libpaperclip-plugin.a

# Every plugins/<name>/ and tests/plugins/<name>/ with C sources builds <dir>/worker.
PLUGIN_DIRS := $(patsubst %/,%,$(sort $(dir $(wildcard plugins/*/*.c tests/plugins/*/*.c))))
PLUGIN_BINS := $(addsuffix /worker,$(PLUGIN_DIRS))

UNIT_SRCS := $(wildcard tests/unit/*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRCS))
INT_SRCS  := $(wildcard tests/integration/*.c)
INT_BINS  := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(INT_SRCS))
HARNESS   := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/lib/*.c))
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))

EMBED_FILES := $(sort $(shell find ui -type f ! -name ".*") $(wildcard src/store/migrations/*.sql))

# Objects of test programs are intermediates of a pattern rule; keep them.
.PRECIOUS: $(BUILD)/%.o

.PHONY: all deps run test asan tsan bench install clean check-build tests check-layers
.DEFAULT_GOAL := all

all: paperclip $(SDK_LIB) $(PLUGIN_BINS)

deps:
	@sh deps/install.sh

# ./paperclip is a copy of the variant just built, so tests and plugin
# packages always find the binaries at fixed paths. Copy then rename: writing
# over the file in place would crash a daemon that is running from it.
paperclip: $(BUILD)/paperclip
	@cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/paperclip: $(BUILD)/src/main.o $(CORE_LIB) $(SAN_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(CORE_LIB): $(CORE_OBJS)
	@mkdir -p $(dir $@) && rm -f $@
	ar rcs $@ $^

$(SDK_LIB): $(SDK_OBJS)
	@mkdir -p $(dir $@) && rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# Static assets (the web UI) and SQL migrations are compiled into the binary.
$(BUILD)/tools/embed: tools/embed.c
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -Wall -Wextra -Werror -O2 -o $@ $<

$(BUILD)/gen/embedded.c: $(BUILD)/tools/embed $(EMBED_FILES)
	@mkdir -p $(dir $@)
	$(BUILD)/tools/embed $(EMBED_FILES) > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/embedded.o: $(BUILD)/gen/embedded.c
	$(CC) $(CFLAGS) -c -o $@ $<

# A plugin worker is always rebuilt into its package directory; the variant
# stamp forces a relink when switching between release and asan.
$(BUILD)/variant.stamp:
	@mkdir -p $(BUILD) && rm -f build/*/variant.stamp && touch $@

# Extra libraries of one plugin: PLUGIN_LIBS_<dir>.
PLUGIN_LIBS_plugins/bwrap-sandbox := -lseccomp
define plugin_rule
$(1)/worker: $(patsubst %.c,$(BUILD)/%.o,$(wildcard $(1)/*.c)) $(SDK_LIB) $(SAN_OBJS) $(BUILD)/variant.stamp
	$$(CC) $$(LDFLAGS) -o $$@ $$(filter %.o %.a,$$^) $$(shell pkg-config --libs jansson libsodium) $$(PLUGIN_LIBS_$(1)) -lpthread -lm
endef
$(foreach d,$(PLUGIN_DIRS),$(eval $(call plugin_rule,$(d))))

paperclip: $(BUILD)/variant.stamp

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(HARNESS) $(CORE_LIB) $(SDK_LIB) $(SAN_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/integration/%: $(BUILD)/tests/integration/%.o $(HARNESS) $(CORE_LIB) $(SAN_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Benchmark programs (bench/*.c) link like the integration tests.
$(BUILD)/bench/%: $(BUILD)/bench/%.o $(HARNESS) $(CORE_LIB) $(SAN_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

tests: all $(UNIT_BINS) $(INT_BINS)

check-layers:
	@sh tools/check-layers.sh

run: deps
	@$(MAKE) --no-print-directory all
	./paperclip serve

# The layer check runs first and lists each wrong-way include as file:line with
# their count; the suite still runs (tests/shell/check_layers.sh counts the check
# as a failure there too) and the target fails at the end, naming the check.
test: deps
	@$(MAKE) --no-print-directory tests
	@sh tools/check-layers.sh; layers=$$?; BUILD=$(BUILD) sh tests/run.sh; suite=$$?; \
	  if [ $$layers != 0 ]; then echo "make test: layer check FAILED (wrong-way includes listed before the suite)"; fi; \
	  [ $$layers = 0 ] && [ $$suite = 0 ]

asan: deps
	@$(MAKE) --no-print-directory SAN=1 tests
	@BUILD=build/asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 sh tests/run.sh
	@$(MAKE) --no-print-directory all

# A report fails the test that triggered it (exit code 66). The options and
# the suppressions (third-party libraries only, each with its reason) are
# compiled in from tests/tsan_defaults.c.
tsan: deps
	@$(MAKE) --no-print-directory SAN=tsan tests
	@BUILD=build/tsan PC_TEST_TIMEOUT=$${PC_TEST_TIMEOUT:-600} sh tests/run.sh
	@$(MAKE) --no-print-directory all

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BINS)
	@sh bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include/paperclip \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 0755 paperclip $(DESTDIR)$(PREFIX)/bin/paperclip
	install -m 0644 include/paperclip/plugin.h $(DESTDIR)$(PREFIX)/include/paperclip/plugin.h
	install -m 0644 $(SDK_LIB) $(DESTDIR)$(PREFIX)/lib/libpaperclip-plugin.a
	sed -e 's|@PREFIX@|$(PREFIX)|g' sdk/paperclip-plugin.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/paperclip-plugin.pc

clean:
	rm -rf build paperclip $(PLUGIN_BINS)

include fuzz/fuzz.mk

-include $(shell find build -name '*.d' 2>/dev/null)
