# wasmrpc: `make run` starts the server with the example procedures deployed,
# `make test` runs every test. Both install what they need first.

SHELL := /bin/bash
# Build outside the clone so CI and fresh clones reuse one cache. Point
# WASMRPC_CACHE elsewhere (and leave CARGO_TARGET_DIR unset) to measure a
# first start from an empty cache.
WASMRPC_CACHE ?= $(HOME)/.cache/wasmrpc
export CARGO_TARGET_DIR ?= $(WASMRPC_CACHE)/target
PROC_TARGET := $(CARGO_TARGET_DIR)/procedures
WASM_DIR := $(PROC_TARGET)/wasm32-wasip2/release
RUN_DIR := $(CURDIR)/target/run/procedures
# Example procedures `make run` deploys, each under its own name.
EXAMPLES := math text json calc notes subtract sum get_data update notify_hello notify_sum
LISTEN ?= 127.0.0.1:8080
# Python packages the client tests use (mypy checks the generated Python
# stubs), in a virtualenv outside the clone. The stamp names the list, so a
# changed list installs again.
VENV := $(WASMRPC_CACHE)/venv
PY_CLIENT_PACKAGES := jsonrpcclient==4.0.3 requests==2.32.3 componentize-py==0.25.1 mypy==2.4.1 websockets==17.4
VENV_STAMP := $(VENV)/.installed-$(shell echo '$(PY_CLIENT_PACKAGES)' | sha256sum | cut -c1-12)

.PHONY: all setup fmt lint-procedures procedures examples procedures-python procedures-js build run test lint clean bench bench-callgrind valgrind wasmtime-serve fuzz clients chromium cluster cluster-deps

all: build procedures

## setup: the wasm32-wasip2 and wasm32-unknown-unknown targets, fmt and
## clippy (idempotent)
setup:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

## procedures: every procedure in procedures/ as a .wasm component. Those
## whose Cargo.toml says `wasi = false` (under [package.metadata.wasmrpc])
## build for wasm32-unknown-unknown, and `wasmrpc component` wraps them
## (its small twin `wasmrpc-componentize`, which needs no server build).
NO_WASI := $(shell grep -l '^wasi = false' procedures/*/Cargo.toml procedures/*/*/Cargo.toml | xargs sed -n 's/^name = "\(.*\)"/\1/p')
# Every crate of procedures/ (`make procedures`), or only the examples that
# `make run` serves (`make examples`): a newcomer's first start builds no
# test guests.
ALL_WASI := --workspace $(NO_WASI:%=--exclude %)
EXAMPLE_WASI := $(filter-out $(NO_WASI),$(EXAMPLES))
# The `wasmrpc-componentize` that wraps the no-WASI procedures: a release
# build of its own, or (`make test`) the one its test build already made.
COMPONENTIZE_BIN ?=
define build_procedures
	cargo build --release --target wasm32-wasip2 --manifest-path procedures/Cargo.toml --target-dir $(PROC_TARGET) $(1)
	cargo build --release --target wasm32-unknown-unknown --manifest-path procedures/Cargo.toml --target-dir $(PROC_TARGET) $(NO_WASI:%=-p %)
	$(if $(COMPONENTIZE_BIN),,cargo build --release -p wasmrpc-componentize)
	@for p in $(NO_WASI); do $(or $(COMPONENTIZE_BIN),$(CARGO_TARGET_DIR)/release/wasmrpc-componentize) $(PROC_TARGET)/wasm32-unknown-unknown/release/$$p.wasm -o $(WASM_DIR)/$$p.wasm || exit 1; done
	@ls -l $(WASM_DIR)/*.wasm | awk '{print "  " $$5 "\t" $$9}'
endef
procedures: setup
	$(call build_procedures,$(ALL_WASI))
examples: setup
	$(call build_procedures,$(EXAMPLE_WASI:%=-p %))

## build: the server and `wasmrpc-componentize` in one release build (one
## feature resolution: built apart, its dependencies compiled twice)
build: setup
	cargo build --release -p wasmrpc-host -p wasmrpc-componentize

## run: the server on $(LISTEN) with the examples deployed (and redeployed
## when `make procedures` rebuilds them); the dashboard is at http://$(LISTEN)/
run: build
	$(MAKE) examples COMPONENTIZE_BIN=$(CARGO_TARGET_DIR)/release/wasmrpc-componentize
	@mkdir -p $(RUN_DIR)
	@for p in $(EXAMPLES); do cp $(WASM_DIR)/$$p.wasm $(RUN_DIR)/$$p.wasm.tmp && mv $(RUN_DIR)/$$p.wasm.tmp $(RUN_DIR)/$$p.wasm; done
	$(CARGO_TARGET_DIR)/release/wasmrpc serve --listen $(LISTEN) --watch $(RUN_DIR)

## procedures-python: the Python example procedures, built into components
## with componentize-py (into the same directory as the Rust ones)
procedures-python: $(WASM_DIR)/pystats.wasm $(WASM_DIR)/pycounter.wasm
$(WASM_DIR)/pystats.wasm: procedures/python/stats/app.py wit/procedure.wit $(VENV_STAMP)
	@mkdir -p $(WASM_DIR)
	$(VENV)/bin/componentize-py -d wit -w procedure componentize -p procedures/python/stats app -o $@.tmp
	mv $@.tmp $@
# Its world includes procedure.wit's and imports wasi:keyvalue (draft2).
PYCOUNTER_WIT := procedures/python/counter/wit
$(WASM_DIR)/pycounter.wasm: procedures/python/counter/app.py $(PYCOUNTER_WIT)/world.wit wit/procedure.wit $(wildcard wit/keyvalue/draft2/*.wit) $(VENV_STAMP)
	@mkdir -p $(WASM_DIR)
	$(VENV)/bin/componentize-py -d wit -d wit/keyvalue/draft2 -d $(PYCOUNTER_WIT) -w wasmrpc:pycounter/pycounter componentize -p procedures/python/counter app -o $@.tmp
	mv $@.tmp $@

## procedures-js: the JavaScript example procedure, built into a component
## with ComponentizeJS (installed from npm outside the clone, with the
## OpenRPC test-coverage tool the tests run, TypeScript, which checks
## the generated TypeScript stubs, and playwright-core, which drives the
## system's Chromium in the dashboard's browser test)
NPM_DIR := $(WASMRPC_CACHE)/npm
NPM_PACKAGES := @bytecodealliance/componentize-js@0.23.0 @open-rpc/test-coverage@2.2.4 typescript@7.0.2 playwright-core@1.65.1
NPM_STAMP := $(NPM_DIR)/.installed-$(shell echo '$(NPM_PACKAGES)' | sha256sum | cut -c1-12)
procedures-js: $(WASM_DIR)/jsstrings.wasm
# A changed list installs afresh: npm adding packages to an existing tree
# can leave one of componentize-js's dependencies out of it.
$(NPM_STAMP):
	rm -rf $(NPM_DIR)
	mkdir -p $(NPM_DIR)
	cd $(NPM_DIR) && npm install --no-audit --no-fund --silent $(NPM_PACKAGES)
	touch $@
$(WASM_DIR)/jsstrings.wasm: procedures/js/strings/strings.js wit/procedure.wit $(NPM_STAMP)
	@mkdir -p $(WASM_DIR)
	# No wasi:http: the server refuses components that import it.
	$(NPM_DIR)/node_modules/.bin/componentize-js procedures/js/strings/strings.js --wit wit --world-name procedure -d http fetch-event -o $@.tmp
	mv $@.tmp $@

## clients: the Python client library the end-to-end tests use (Node's
## built-in fetch needs nothing), and the type checkers the client stub
## tests run (mypy, tsc)
clients: $(VENV_STAMP) $(NPM_STAMP)
$(VENV_STAMP):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet $(PY_CLIENT_PACKAGES)
	touch $@

## chromium: Debian's Chromium, for the dashboard's browser test
## (playwright-core drives it; no browser download of its own)
chromium:
	@command -v chromium > /dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

## cluster-deps: PostgreSQL and nginx, Debian's packages: the cluster tests
## and `make cluster` run private instances of both on loopback
cluster-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1 || ! command -v nginx > /dev/null; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql nginx; fi

## cluster: PostgreSQL, three replicas sharing it and nginx in front, on
## loopback, with the examples deployed (deploy/cluster.sh); Ctrl-C stops
cluster: build cluster-deps
	$(MAKE) procedures COMPONENTIZE_BIN=$(CARGO_TARGET_DIR)/release/wasmrpc-componentize
	deploy/cluster.sh $(CARGO_TARGET_DIR)/release/wasmrpc $(WASM_DIR) $(EXAMPLES)

## test: lints, unit tests, SDK tests and the end-to-end suite (with the
## dashboard in a headless browser, and a PostgreSQL-backed cluster behind nginx)
##
## One build of the dependencies serves the lints and the tests: clippy runs
## as the workspace's compiler wrapper in a test build (what `cargo clippy`
## does, plus code generation), with warnings as errors, so every target of
## every crate (the fuzz targets too) is linted; the tests then build the
## workspace's own crates again without it (a wrapper would reach the cargo
## that tests run themselves) and reuse every dependency. A `cargo clippy`
## and a `cargo doc` would check wasmtime and every other dependency once
## more: `make lint` runs both.
CLIPPY_BUILD := RUSTC_WORKSPACE_WRAPPER=clippy-driver CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
TEST_ENV := WASMRPC_WASM_DIR=$(WASM_DIR) WASMRPC_PYTHON=$(VENV)/bin/python NODE_PATH=$(NPM_DIR)/node_modules WASMRPC_TSC=$(NPM_DIR)/node_modules/.bin/tsc
test: setup fmt procedures-python procedures-js clients chromium cluster-deps
	$(CLIPPY_BUILD) cargo test --workspace --all-targets --no-run
	$(MAKE) procedures lint-procedures COMPONENTIZE_BIN=$(CARGO_TARGET_DIR)/debug/wasmrpc-componentize
	$(TEST_ENV) cargo test --workspace --all-targets
	@# `--all-targets` leaves doctests out: the examples in the docs compile too.
	cargo test --workspace --doc

## lint: formatting, clippy and rustdoc (warnings are errors) on the
## workspace, and clippy on the procedures for their Wasm targets
lint: fmt lint-procedures
	cargo clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

fmt: setup
	cargo fmt --all -- --check
	cargo fmt --all --manifest-path procedures/Cargo.toml -- --check

lint-procedures: setup
	cargo clippy --release --target wasm32-wasip2 --manifest-path procedures/Cargo.toml --target-dir $(PROC_TARGET) -- -D warnings
	@# Those built without WASI also for their own target: the SDK has code for it alone.
	cargo clippy --release --target wasm32-unknown-unknown --manifest-path procedures/Cargo.toml --target-dir $(PROC_TARGET) $(NO_WASI:%=-p %) -- -D warnings

clean:
	cargo clean
	rm -rf target wasmrpc-data

## bench: release build, then wasmrpc side by side with a native baseline
## in one run (bench/: math.add and a 10 KB JSON call at 1 and 64
## connections, other languages, key-value reads and durable writes against
## math.add on the data dir's store and on a private PostgreSQL (hence
## cluster-deps), in-process instantiate + call, start-up with 100
## procedures, instructions per call under callgrind), then the micro
## benchmarks (bench/benches/micro.rs). The table is also written as JSON
## under target/bench/. BENCH_ARGS, e.g. `--seconds 5 --rounds 5`,
## `--quick` for a smoke run (no callgrind), or `--kv-only`.
##
## One `cargo build` of both packages, and the micro benchmarks live in
## wasmrpc-bench with no dev-dependencies of their own: `cargo bench` then
## resolves the same features and reuses that build (host's dev-dependencies
## used to change hashbrown's features, so it rebuilt all of wasmtime).
BENCH_ARGS ?=
bench: setup procedures procedures-python procedures-js valgrind cluster-deps wasmtime-serve
	cargo build --profile profiling -p wasmrpc-host -p wasmrpc-bench
	@mkdir -p target/bench
	set -o pipefail; WASMRPC_WASMTIME=$(WASMTIME) WASMRPC_SERVE_MATH=$(SERVE_MATH) $(CARGO_TARGET_DIR)/profiling/wasmrpc-bench --wasm-dir $(WASM_DIR) --out target/bench $(BENCH_ARGS) | tee target/bench/table.txt
	set -o pipefail; WASMRPC_WASM_DIR=$(WASM_DIR) cargo bench --profile profiling -p wasmrpc-bench --bench micro | tee target/bench/micro.txt

## bench-callgrind: instructions per instantiate + call + drop of math.add
## and per nested call (calc.hypot), counted by callgrind; the output files
## stay in target/bench/callgrind/ for callgrind_annotate
bench-callgrind: setup procedures valgrind
	cargo build --profile profiling -p wasmrpc-host -p wasmrpc-bench
	@mkdir -p target/bench
	$(CARGO_TARGET_DIR)/profiling/wasmrpc-bench callgrind --wasm-dir $(WASM_DIR) --out target/bench

valgrind:
	@command -v valgrind > /dev/null || (apt-get update && apt-get install -y valgrind)

## wasmtime-serve: the peer row of `make bench`. The wasmtime CLI, pinned,
## installed as a user would (cargo install, into the cache: about 9 minutes
## of compiling on 2 cores, once): 48.0.8, the engine wasmrpc embeds (49 needs Rust
## 1.96). And math.add as a plain wasi:http component for it to serve.
WASMTIME_VERSION := 48.0.8
WASMTIME := $(WASMRPC_CACHE)/wasmtime-$(WASMTIME_VERSION)/bin/wasmtime
SERVE_MATH := $(CARGO_TARGET_DIR)/bench-wasi-http/wasm32-wasip2/release/wasi-http-math.wasm
wasmtime-serve: setup $(WASMTIME)
	cargo build --release --target wasm32-wasip2 --manifest-path bench/wasi-http-math/Cargo.toml --target-dir $(CARGO_TARGET_DIR)/bench-wasi-http
$(WASMTIME):
	cargo install wasmtime-cli --version $(WASMTIME_VERSION) --locked --root $(WASMRPC_CACHE)/wasmtime-$(WASMTIME_VERSION)

## fuzz: each fuzz target for FUZZ_SECONDS (nightly and cargo-fuzz are
## installed if missing); not part of `make test`
FUZZ_SECONDS ?= 120
FUZZ_EXAMPLE_SEEDS ?= 0
fuzz: procedures
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@cargo +nightly fuzz --version > /dev/null 2>&1 || cargo +nightly install cargo-fuzz --locked
	cd fuzz && FUZZ_WASM=$(WASM_DIR)/math.wasm cargo +nightly fuzz run --features libfuzzer --target-dir $(CARGO_TARGET_DIR)/fuzz rpc_envelope -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096
	@# Seeds, so module_upload gets past the header check: the target writes
	@# its small hand-made components (a valid procedure among them) into
	@# FUZZ_SEED_DIR. FUZZ_EXAMPLE_SEEDS=1 also copies in the built Rust
	@# procedures (the Python and JavaScript ones are megabytes): real
	@# components, but each takes 2-20 s to compile in the instrumented build,
	@# so a run of a few minutes would do little but execute them once.
	@mkdir -p fuzz/corpus/module_upload
	@if [ "$(FUZZ_EXAMPLE_SEEDS)" = 1 ]; then \
	  find $(WASM_DIR) -maxdepth 1 -name '*.wasm' -size -1024k -exec cp {} fuzz/corpus/module_upload/ \; ; fi
	cd fuzz && FUZZ_SEED_DIR=$(CURDIR)/fuzz/corpus/module_upload cargo +nightly fuzz run --features libfuzzer --target-dir $(CARGO_TARGET_DIR)/fuzz module_upload -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096
