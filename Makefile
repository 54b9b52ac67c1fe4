# flowd: the flow engine library (lib/), the daemon (server/), their tests and benchmarks.
# `make help` lists the targets. SAN=asan or SAN=tsan builds into build/asan or build/tsan.

CC ?= cc
SAN ?=
PKGS := libuv jansson libmicrohttpd libcurl sqlite3 libpq lua5.4 libpcre2-8 yaml-0.1 libcrypto icu-i18n icu-uc \
	libgvc libcgraph
TEST_PKGS := check

# pkg-config name -> Debian package, for `make deps`
DEB_libuv := libuv1-dev
DEB_jansson := libjansson-dev
DEB_check := check
DEB_libmicrohttpd := libmicrohttpd-dev
DEB_libcurl := libcurl4-openssl-dev
DEB_sqlite3 := libsqlite3-dev
DEB_libpq := libpq-dev
DEB_lua5.4 := liblua5.4-dev
DEB_libpcre2-8 := libpcre2-dev
DEB_yaml-0.1 := libyaml-dev
DEB_libcrypto := libssl-dev
DEB_icu-i18n := libicu-dev
DEB_icu-uc := libicu-dev
DEB_libgvc := libgraphviz-dev
DEB_libcgraph := libgraphviz-dev

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -g $(WARN) -MMD -MP

# Each directory is compiled with only the include paths it may use. lib/include holds the
# library's public headers; the rest of lib/ is private to it. server/ and the examples see the
# public headers alone; the unit tests, the fuzz harnesses and the benchmark test the library's
# insides too, so they see lib/. The library itself is compiled with -fvisibility=hidden: only what
# lib/include declares with FLOW_EXPORT is exported (tests/exports.sh checks it).
INC_lib := -Ilib/include -fvisibility=hidden
INC_server := -Ilib/include -Iserver
INC_examples := -Ilib/include
INC_bench := -Ilib/include -Ilib
INC_docker :=
INC_tests/unit := -Ilib/include -Ilib -Iserver -Itests -Iexamples
INC_tests/fuzz := -Ilib/include -Ilib -Iserver -Itests
INC_tests/support := -Ilib/include -Itests
INC_tests/e2e := -Itests
INC_tests/mock := -Itests
INC = $(INC_$(patsubst %/,%,$(dir $<)))
OPT := -O2

ifeq ($(SAN),asan)
BUILD := build/asan
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT := -O1
else ifeq ($(SAN),tsan)
BUILD := build/tsan
SANFLAGS := -fsanitize=thread
OPT := -O1
export TSAN_OPTIONS ?= suppressions=$(CURDIR)/tests/tsan.supp
else
BUILD := build
SANFLAGS :=
endif
INC_$(BUILD)/gen := -Ilib/include -Iserver

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)
CFLAGS := $(BASE_CFLAGS) $(OPT) $(SANFLAGS) $(EXTRA_CFLAGS)
LDFLAGS := $(SANFLAGS) $(EXTRA_LDFLAGS)
# server/graph.c links Graphviz's dot layout and core (SVG) plugins itself, so that no plugin is
# loaded by name at run time (graph.c says why); they live in Graphviz's plugin folder.
GV_PLUGINS = $(shell pkg-config --variable=libdir libgvc 2>/dev/null)/graphviz
LDLIBS = $(PKG_LIBS) -L$(GV_PLUGINS) -lgvplugin_dot_layout -lgvplugin_core -Wl,-rpath,$(GV_PLUGINS) \
	-lpthread -lm

LIB_SRC := $(sort $(wildcard lib/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
# libflow.a is what programs link: one object whose hidden symbols are made local, so that only the
# FLOW_EXPORT functions can be linked against (a call to a private one fails to link). The unit
# tests, the fuzz replays and the benchmark reach inside: they link libflow-internal.a, the objects
# as they are.
LIB := $(BUILD)/libflow.a
LIB_INTERNAL := $(BUILD)/libflow-internal.a

# The dashboard's files (server/ui/) become one generated C file (server/embed_ui.sh, with xxd),
# compiled as a file of server/.
UI_FILES := $(sort $(wildcard server/ui/*.html server/ui/*.css server/ui/*.js server/ui/*.svg))
UI_GEN := $(BUILD)/gen/ui_assets.c
SERVER_SRC := $(sort $(filter-out server/main.c,$(wildcard server/*.c))) $(UI_GEN)
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/obj/%.o)
FLOWD := $(BUILD)/flowd

# tests/unit/test_<name>.c each make one Check runner; tests/support/*.c is linked into every runner.
TEST_SRC := $(sort $(wildcard tests/unit/test_*.c))
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
SUPPORT_SRC := $(sort $(wildcard tests/support/*.c))
SUPPORT_OBJ := $(SUPPORT_SRC:%.c=$(BUILD)/obj/%.o)

# tests/e2e/test_<name>.c each make one Check runner that starts $(FLOWD) and drives it over HTTP
# with libcurl; tests/e2e/e2e.c (their helpers) is linked into each.
E2E_SRC := $(sort $(wildcard tests/e2e/test_*.c))
E2E_BIN := $(E2E_SRC:tests/e2e/%.c=$(BUILD)/e2e/%)
E2E_SUPPORT_OBJ := $(BUILD)/obj/tests/e2e/e2e.o $(BUILD)/obj/tests/support/mock.o $(BUILD)/obj/tests/support/mock_model.o

# tests/fuzz/fuzz_<name>.c each make a libFuzzer harness (`make fuzz`: clang, into build/fuzz) and a
# replay runner (the same file with tests/fuzz/driver.c, in this build) that `make check` runs over
# tests/fuzz/corpus/<name> and tests/fuzz/regress/<name>; a new harness file needs no edit here.
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/%.c=%)
REPLAY_BIN := $(FUZZ_NAMES:%=$(BUILD)/fuzz-replay/%)
FUZZ_SECONDS ?= 60
FUZZ_HARNESSES ?= $(FUZZ_NAMES)
FUZZ_CC ?= clang
FUZZ_DIR := build/fuzz
FUZZ_CFLAGS = $(BASE_CFLAGS) -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
FUZZ_LIB := $(FUZZ_DIR)/libflow.a
FUZZ_SERVER_LIB := $(FUZZ_DIR)/libflowd.a

BENCH := $(BUILD)/flow-bench
MOCK := $(BUILD)/flowd-mock
HEALTHCHECK := $(BUILD)/flowd-healthcheck
# examples/<name>_flow.c build flows (linked into the example programs and the unit tests, not
# into flowd); the other examples/*.c are programs.
FLOWS_SRC := $(sort $(wildcard examples/*_flow.c))
FLOWS_OBJ := $(FLOWS_SRC:%.c=$(BUILD)/obj/%.o)
EXAMPLES_SRC := $(filter-out $(FLOWS_SRC),$(sort $(wildcard examples/*.c)))
EXAMPLES := $(EXAMPLES_SRC:examples/%.c=$(BUILD)/examples/%)

.SECONDARY:

.PHONY: all lib test check unit e2e ui deps bench valgrind tsan clean help run examples lint mock fuzz fuzz-replay \
	exports contract lint-api

all: $(LIB) $(if $(wildcard server/main.c),$(FLOWD)) $(EXAMPLES) $(MOCK) $(HEALTHCHECK)

help:
	@echo "make            build the library, flowd and the examples into build/"
	@echo "make run        install what is missing, build, start flowd on :8080 (foreground) with the"
	@echo "                example flows and its SQLite store in ./data, and flowd-mock on :8090 as"
	@echo "                their recipe API, search API and model (--allow-outbound 127.0.0.1:8090 lets"
	@echo "                nodes reach it)"
	@echo "make test       install what is missing, run make lint, then every test twice: plain and with"
	@echo "                -fsanitize=address,undefined (build/asan); test_postgres starts a PostgreSQL"
	@echo "                of its own (and apt-get installs it when missing, as root)"
	@echo "make check      run the tests of one build (SAN=asan or SAN=tsan picks the build): what"
	@echo "                libflow.a exports (tests/exports.sh: only the FLOW_EXPORT functions of"
	@echo "                lib/include), the unit tests, the fuzz replays, make contract, then the"
	@echo "                end-to-end tests against its flowd, then make ui"
	@echo "make ui         drive the dashboard (/ui/) in headless Chromium with Selenium"
	@echo "                (tests/ui/test_ui.py), then in headless Firefox over WebDriver BiDi"
	@echo "                (tests/ui/test_ui_firefox.py: firefox-esr and python3-websocket, which make deps"
	@echo "                installs); screenshots of each page into build/ui-shots/"
	@echo "make contract   check that api/flow.schema.json and flowd check agree on every example"
	@echo "                document (pass) and on tests/contract/bad (fail), and that flowd's answers"
	@echo "                are ones api/openapi.yaml declares (python3-jsonschema, python3-yaml), and"
	@echo "                lint /metrics with promtool (Debian's prometheus)"
	@echo "make e2e        only the end-to-end tests (tests/e2e) of one build"
	@echo "make valgrind   run the unit tests under valgrind (0 bytes definitely lost), then the"
	@echo "                end-to-end tests with flowd under valgrind, VALGRIND_JOBS (2) at a time"
	@echo "make tsan       run the tests with ThreadSanitizer (build/tsan)"
	@echo "make bench      build and run the benchmarks: build/flow-bench (the engine, and Lua hooks"
	@echo "                against PocketFlow's Python: POCKETFLOW_DIR), then flowd over HTTP with"
	@echo "                wrk on the memory and SQLite stores at 1 and 2 HTTP threads and on a"
	@echo "                SQLite store of 2 files (--store-shards 2), then"
	@echo "                bench/run-*.sh: checkpoints as patches (SQLite, PostgreSQL), a million"
	@echo "                sleepers over HTTP, PostgreSQL with one and two instances and a takeover"
	@echo "                of jobs of a killed instance, a start again"
	@echo "                on a job of a long history (many minutes)"
	@echo "make mock       build the test HTTP server (build/flowd-mock --port N [--api-key K])"
	@echo "make test-docker  build the image (docker/Dockerfile), run it and docker/compose.yaml, and"
	@echo "                submit a job to each (docker, or ../shared/tools/docker on podman; minutes)"
	@echo "make fuzz       build the libFuzzer harnesses of tests/fuzz with clang (installed when missing,"
	@echo "                as root) and run each for FUZZ_SECONDS (60) from its seed corpus and dictionary;"
	@echo "                FUZZ_HARNESSES=fuzz_doc picks some; new inputs go to build/fuzz/corpus, crashes to"
	@echo "                build/fuzz/crashes (make test replays tests/fuzz/corpus and tests/fuzz/regress)"
	@echo "make deps       install missing -dev packages and tools (xxd, chromium, chromium-driver,"
	@echo "                python3-selenium, firefox-esr, python3-websocket) with apt-get (as root)"
	@echo "make lint       grep for calls we do not use (sprintf, strcpy, atoi, ...), and lint"
	@echo "                api/openapi.yaml with Redocly's CLI (npx, a pinned version; make lint-api)"
	@echo "make clean      remove build/"

# make fuzz needs clang (libFuzzer comes with Debian's), so make deps installs it for that goal only.
DEPS_TOOLS :=
ifneq ($(filter fuzz,$(MAKECMDGOALS)),)
DEPS_TOOLS += $(FUZZ_CC)
endif

# Installs only what pkg-config (or the PATH) cannot find, so it is quick on a ready machine.
deps:
	@missing=""; \
	for p in $(PKGS) $(TEST_PKGS); do \
	  pkg-config --exists $$p 2>/dev/null || missing="$$missing $$(case $$p in \
	    libuv) echo $(DEB_libuv);; jansson) echo $(DEB_jansson);; check) echo $(DEB_check);; \
	    libmicrohttpd) echo $(DEB_libmicrohttpd);; libcurl) echo $(DEB_libcurl);; \
	    sqlite3) echo $(DEB_sqlite3);; libpq) echo $(DEB_libpq);; lua5.4) echo $(DEB_lua5.4);; \
	    libpcre2-8) echo $(DEB_libpcre2-8);; yaml-0.1) echo $(DEB_yaml-0.1);; \
	    libcrypto) echo $(DEB_libcrypto);; icu-i18n|icu-uc) echo $(DEB_icu-i18n);; \
	    libgvc|libcgraph) echo $(DEB_libgvc);; esac)"; \
	done; \
	command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	for t in $(DEPS_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v xxd >/dev/null || missing="$$missing xxd"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	/usr/bin/python3 -c 'import selenium' 2>/dev/null || missing="$$missing python3-selenium"; \
	command -v firefox-esr >/dev/null || command -v firefox >/dev/null || missing="$$missing firefox-esr"; \
	/usr/bin/python3 -c 'import websocket' 2>/dev/null || missing="$$missing python3-websocket"; \
	/usr/bin/python3 -c 'import jsonschema' 2>/dev/null || missing="$$missing python3-jsonschema"; \
	/usr/bin/python3 -c 'import yaml' 2>/dev/null || missing="$$missing python3-yaml"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v npx >/dev/null || echo "deps: no npx; make lint runs Redocly's CLI with it (Node.js 20.19 or later, with npm)"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing packages:$$missing (run make deps as root)"; exit 1; fi; \
	  echo "installing:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

lib: $(LIB)

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(LD) -r -o $(BUILD)/libflow.o $^
	objcopy --localize-hidden $(BUILD)/libflow.o
	rm -f $@ && ar rcs $@ $(BUILD)/libflow.o

$(LIB_INTERNAL): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(UI_GEN): server/embed_ui.sh $(UI_FILES)
	@mkdir -p $(dir $@)
	server/embed_ui.sh $@ $(UI_FILES)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(INC) $(PKG_CFLAGS) $(CHECK_CFLAGS) -c -o $@ $<

$(FLOWD): $(BUILD)/obj/server/main.o $(SERVER_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(SUPPORT_OBJ) $(SERVER_OBJ) $(FLOWS_OBJ) $(LIB_INTERNAL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/e2e/%: $(BUILD)/obj/tests/e2e/%.o $(E2E_SUPPORT_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

$(BENCH): $(BUILD)/obj/bench/flow-bench.o $(LIB_INTERNAL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/examples/%: $(BUILD)/obj/examples/%.o $(FLOWS_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

examples: $(EXAMPLES)

$(BUILD)/fuzz-replay/%: $(BUILD)/obj/tests/fuzz/%.o $(BUILD)/obj/tests/fuzz/driver.o $(SERVER_OBJ) $(LIB_INTERNAL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(INC) $(PKG_CFLAGS) -c -o $@ $<

$(FUZZ_LIB): $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_SERVER_LIB): $(SERVER_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_DIR)/bin/%: $(FUZZ_DIR)/obj/tests/fuzz/%.o $(FUZZ_SERVER_LIB) $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

# Each harness runs FUZZ_SECONDS and stops; new inputs are kept in build/fuzz/corpus/<name> (the
# committed seeds are read, never written), crashes in build/fuzz/crashes/<name>/.
fuzz: deps $(FUZZ_HARNESSES:%=$(FUZZ_DIR)/bin/%)
	@for h in $(FUZZ_HARNESSES); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$h $(FUZZ_DIR)/crashes/$$h; \
	  echo "== $$h, $(FUZZ_SECONDS) s"; \
	  $(FUZZ_DIR)/bin/$$h -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
	    -dict=tests/fuzz/$$h.dict -artifact_prefix=$(FUZZ_DIR)/crashes/$$h/ -print_final_stats=1 \
	    $(FUZZ_DIR)/corpus/$$h tests/fuzz/corpus/$$h || exit 1; \
	done

$(MOCK): $(BUILD)/obj/tests/mock/main.o $(BUILD)/obj/tests/support/mock.o \
         $(BUILD)/obj/tests/support/mock_model.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

mock: $(MOCK)

# The image's HEALTHCHECK probe (docker/healthcheck.c): plain libc, no library of ours.
$(HEALTHCHECK): $(BUILD)/obj/docker/healthcheck.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^

unit: $(TEST_BIN)
	@fail=0; for t in $(TEST_BIN); do \
	  echo "== $$t"; CK_DEFAULT_TIMEOUT=$${CK_DEFAULT_TIMEOUT:-60} $$t || fail=1; \
	done; exit $$fail

e2e: $(FLOWD) $(E2E_BIN)
	@fail=0; for t in $(E2E_BIN); do \
	  echo "== $$t"; FLOWD_BIN=$(FLOWD) CK_DEFAULT_TIMEOUT=$${CK_DEFAULT_TIMEOUT:-120} $$t || fail=1; \
	done; exit $$fail

fuzz-replay: $(REPLAY_BIN)
	@fail=0; for h in $(FUZZ_NAMES); do \
	  $(BUILD)/fuzz-replay/$$h tests/fuzz/corpus/$$h tests/fuzz/regress/$$h || fail=1; \
	done; exit $$fail

check: all exports unit fuzz-replay contract e2e ui

# The dashboard (server/ui/) in headless Chromium with Selenium (tests/ui/test_ui.py): it starts
# flowd-mock and this build's flowd on 127.0.0.1 and drives the page; screenshots of each page go
# to build/ui-shots/.
ui: $(FLOWD) $(MOCK)
	FLOWD_BIN=$(FLOWD) MOCK_BIN=$(MOCK) UI_SHOTS=build/ui-shots /usr/bin/python3 tests/ui/test_ui.py
	FLOWD_BIN=$(FLOWD) MOCK_BIN=$(MOCK) UI_SHOTS=build/ui-shots /usr/bin/python3 tests/ui/test_ui_firefox.py

# The flow documents against api/flow.schema.json and this build's flowd check, which must agree
# (tests/contract/documents.sh: good ones pass both, tests/contract/bad ones fail both); then every
# status this flowd answers to requests that take no effect is one api/openapi.yaml declares
# (tests/contract/answers.py).
contract: $(FLOWD)
	tests/contract/documents.sh $(FLOWD)
	tests/contract/answers.py $(FLOWD)
	tests/contract/metrics.sh $(FLOWD)

# api/openapi.yaml under Redocly's recommended rules, with the version tests/contract/openapi.sh pins
# (npx fetches it into npm's cache once).
lint-api:
	tests/contract/openapi.sh

# The symbols libflow.a exports are exactly the FLOW_EXPORT functions of lib/include.
exports: $(LIB)
	tests/exports.sh $(LIB)

test: deps lint
	$(MAKE) check
	$(MAKE) SAN=asan check

# The unit tests under valgrind, then the end-to-end tests with flowd itself under valgrind (all but
# test_load, ten thousand jobs, which would take minutes there, and test_durable's kills again on a
# store of three files, whose every path its other cases take): a leak or an error makes flowd exit
# 99 instead of 0, which fails the test that stops it. --fair-sched: valgrind runs one thread at a
# time, and without it flowd's loop thread, busy with a looping job, keeps the store thread waiting.
# Valgrind runs a program on one core at a time, so the suites run VALGRIND_JOBS (2) at once, each
# printed whole when it ends.
VALGRIND_JOBS ?= 2
VALGRIND := valgrind -q --fair-sched=yes --leak-check=full --errors-for-leak-kinds=definite,indirect \
            --error-exitcode=99
valgrind: deps
	@command -v valgrind >/dev/null || { [ "$$(id -u)" = 0 ] && export DEBIAN_FRONTEND=noninteractive && apt-get update -qq && \
	  apt-get install -y -qq --no-install-recommends valgrind >/dev/null; }
	$(MAKE) $(TEST_BIN) $(FLOWD) $(E2E_BIN)
	@fail=0; printf '%s\n' $(TEST_BIN) | xargs -P $(VALGRIND_JOBS) -I{} sh -c \
	  'CK_FORK=no CK_DEFAULT_TIMEOUT=600 FLOW_TEST_SMALL=1 valgrind -q --leak-check=full \
	    --errors-for-leak-kinds=definite --error-exitcode=99 {} >{}.vg.log 2>&1; rc=$$?; \
	   echo "== valgrind {}"; cat {}.vg.log; rm -f {}.vg.log; exit $$rc' || fail=1; \
	printf '%s\n' $(filter-out %/test_load,$(E2E_BIN)) | xargs -P $(VALGRIND_JOBS) -I{} sh -c \
	  'FLOWD_WRAPPER="$(VALGRIND)" FLOWD_BIN=$(FLOWD) CK_DEFAULT_TIMEOUT=600 \
	    CK_EXCLUDE_CASE="three files, kills" {} >{}.vg.log 2>&1; rc=$$?; \
	   echo "== {}, flowd under valgrind"; cat {}.vg.log; rm -f {}.vg.log; exit $$rc' || fail=1; \
	exit $$fail

tsan: deps
	$(MAKE) SAN=tsan check

bench: deps $(BENCH) $(FLOWD)
	./bench/run.sh $(BUILD)

# flowd on :8080 with the example flows. Beside it, flowd-mock on 127.0.0.1:8090 stands in for the
# recipe and search APIs and for a model (tests/support/mock_model.h: the mock picks from the list it
# is given, and plays the agent and resume prompts), so that the examples run offline; FLOWD_LLM_BASE_URL/FLOWD_LLM_MODEL/FLOWD_LLM_API_KEY in the environment take a real one.
# Loopback is closed to nodes by default: --allow-outbound opens the mock's address and port.
run: deps all
	@$(MOCK) --port 8090 >$(BUILD)/flowd-mock.log 2>&1 & mock=$$!; \
	trap 'kill $$mock 2>/dev/null' EXIT INT TERM; \
	echo "flowd-mock on http://127.0.0.1:8090 (the recipe and search APIs and the stand-in model; log: $(BUILD)/flowd-mock.log)"; \
	FLOWD_LLM_BASE_URL=$${FLOWD_LLM_BASE_URL:-http://127.0.0.1:8090/v1} FLOWD_LLM_MODEL=$${FLOWD_LLM_MODEL:-mock} \
	$(FLOWD) --port 8080 --flows examples/flows --allow-outbound 127.0.0.1:8090

# Not part of `make test`: building the image takes minutes. CI runs it after the tests.
.PHONY: test-docker
test-docker:
	tests/docker/run.sh

lint: lint-api
	@! grep -nE '\b(sprintf|vsprintf|strcpy|strcat|atoi|atol|gets)\s*\(' \
	    lib/*.[ch] lib/include/*.h lib/include/flow/*.h server/*.[ch] docker/*.c 2>/dev/null \
	  || (echo "lint: use snprintf/strtol/memcpy instead"; exit 1)

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
