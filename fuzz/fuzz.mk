# Coverage-guided fuzzing with libFuzzer; included by the top-level Makefile.
#
#   make fuzz                     build every fuzz/fuzz_<name>.c into
#                                 build/fuzz/fuzz_<name> and run each for
#                                 FUZZ_SECONDS on its committed corpus
#   make fuzz-build               only build them
#   make fuzz FUZZ_SECONDS=600    a longer local session
#
# The core library and the SDK are compiled again with clang, with coverage
# instrumentation (-fsanitize=fuzzer-no-link) and ASan+UBSan, into their own
# tree, so the release and asan builds are untouched. A new target is a new
# fuzz/fuzz_<name>.c plus fuzz/corpus/fuzz_<name>/; nothing here changes.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 15
FUZZ_BUILD   := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := -std=c17 -Wall -Wextra -Werror -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE \
                -pthread -Isrc -Iinclude $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
                $(FUZZ_SAN) -fsanitize=fuzzer-no-link

FUZZ_CORE_LIB := $(FUZZ_BUILD)/libpaperclip-core.a
FUZZ_SDK_LIB  := $(FUZZ_BUILD)/libpaperclip-plugin.a
FUZZ_TARGETS  := $(patsubst fuzz/%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_BINS     := $(addprefix $(FUZZ_BUILD)/,$(FUZZ_TARGETS))

.PHONY: fuzz fuzz-build
.PRECIOUS: $(FUZZ_BUILD)/%.o

fuzz-build: $(FUZZ_BINS)

fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) sh fuzz/run.sh $(FUZZ_TARGETS)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<

# The embedded files are generated once, by the normal build's tool.
$(FUZZ_BUILD)/gen/embedded.o: $(BUILD)/gen/embedded.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_CORE_LIB): $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(CORE_SRCS)) $(FUZZ_BUILD)/gen/embedded.o
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_SDK_LIB): $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(SDK_SRCS))
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/fuzz/fuzz_%.o $(FUZZ_CORE_LIB) $(FUZZ_SDK_LIB)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)
