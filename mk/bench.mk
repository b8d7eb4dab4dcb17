# Benchmarks: the native criterion benches, then the table of imagegate's own
# cost above the host's floor (a no-op waPC module, `noop-policy/`), fresh
# instance (policy-server) and reused (kwctl bench), for a 5-container pod.
#
#   make bench                       criterion (engine, bundle) + the table
#   make bench-table                 the table only
#   make bench-table BENCH_POLICY=x  the table for another module (e.g. main's)

NOOP_WASM       := $(TARGET_DIR)/$(WASM_TARGET)/wasm/imagegate_noop.wasm
IMAGEGATE_BENCH := $(TARGET_DIR)/release/imagegate
BENCH_POLICY    ?= policy.wasm
BENCH_SIZES     ?= 10 100 1000 10000
# Seconds measured per row (each scenario of policy and floor in turn).
BENCH_SECONDS   ?= 3
BENCH_DIR       := $(TARGET_DIR)/bench

.PHONY: bench bench-table bench-floor

bench-floor:
	$(CARGO) build --locked -p imagegate-noop --target $(WASM_TARGET) --profile wasm

bench: policy.wasm
	$(CARGO) bench --locked -p imagegate-policy --bench engine
	$(CARGO) bench --locked -p imagegate --bench bundle
	@$(MAKE) --no-print-directory bench-table

bench-table: policy.wasm bench-floor
	$(CARGO) build --locked --release -p imagegate
	@mkdir -p $(BENCH_DIR)
	@echo "$(BENCH_POLICY): $$(wc -c < $(BENCH_POLICY)) bytes; p50 in µs, own = imagegate - floor; instructions: wasm, own"
	@echo "| settings | floor fresh | imagegate fresh | own fresh | floor reused | imagegate reused | own reused | own instr. fresh | own instr. reused |"
	@echo "|---|---|---|---|---|---|---|---|---|"
	@for n in $(BENCH_SIZES); do for shape in rules patterns; do \
	  label="$$n $$shape"; [ $$shape = patterns ] && label="1 rule, $$n patterns"; [ $$shape = rules ] && label="$$n rules"; \
	  examples/bench/gen-settings.sh $$n $$shape > $(BENCH_DIR)/settings-$$n-$$shape.yaml || exit 1; \
	  $(IMAGEGATE_BENCH) bench --policy $(BENCH_POLICY) --floor $(NOOP_WASM) --instructions \
	    --duration $(BENCH_SECONDS) --warmup 20 --row "$$label" \
	    --settings-path $(BENCH_DIR)/settings-$$n-$$shape.yaml \
	    --request-path examples/bench/pod-5.json || exit 1; \
	done; done
