# Hardening: bypass corpus, property tests at high case counts, limits.
#
#   make bypass   the bypass corpus (native, every rule kind x spelling x place)
#                 and the fixtures/bypass-* scenarios through the wasm module
#   make fuzz     every property test of the policy with PROPTEST_CASES cases
#                 (default 100000; CI runs proptest's default of 256), then the
#                 libFuzzer targets of fuzz/ when nightly + cargo-fuzz are there
#   make limits   10 000 containers, 10 MiB object, 100 000 rules, a 2^25
#                 Tanzu namePattern, host failures, through the real module
#                 (prints time and memory)

FUZZ_CASES ?= 100000

.PHONY: bypass fuzz limits
bypass: policy.wasm host-runner
	$(CARGO) test --locked -p imagegate-policy --test bypass -- --nocapture
	for d in fixtures/bypass-*/; do $(IMAGEGATE) test $$d --policy policy.wasm | tail -1 | grep -q '^1 passed, 0 failed' || { $(IMAGEGATE) test $$d --policy policy.wasm; exit 1; }; done
	@echo "bypass fixtures: $$(ls -d fixtures/bypass-*/ | wc -l) passed"

fuzz:
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --locked --release -p imagegate-policy --lib --tests -- --test-threads=2
	@if command -v cargo-fuzz >/dev/null && rustup run nightly rustc --version >/dev/null 2>&1; then \
	  $(MAKE) fuzz-libfuzzer; \
	else echo "libFuzzer targets skipped: needs a nightly toolchain and cargo-fuzz (see fuzz-libfuzzer)"; fi

limits: policy.wasm
	IMAGEGATE_POLICY=$(CURDIR)/policy.wasm $(CARGO) test --locked -p imagegate --test limits -- --nocapture --test-threads=1

# libFuzzer targets (fuzz/, nightly toolchain + cargo-fuzz): reference,
# pattern, settings, validate, FUZZ_SECONDS each. fuzz/seeds/validate holds
# fixtures as validate payloads (generated from fixtures/, so the fuzzer starts
# from real requests), fuzz/seeds/reference the spellings the runtimes read
# differently (image IDs and prefixes, short names, host case, long paths);
# fuzz/corpus/ is the fuzzer's own, not committed.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := reference pattern settings validate
.PHONY: fuzz-libfuzzer
fuzz-libfuzzer:
	@command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz (needs rustup toolchain install nightly)"; exit 1; }
	for t in $(FUZZ_TARGETS); do \
	  seeds=$$(test -d fuzz/seeds/$$t && echo $(CURDIR)/fuzz/seeds/$$t); mkdir -p fuzz/corpus/$$t; \
	  $(CARGO) +nightly fuzz run $$t $(CURDIR)/fuzz/corpus/$$t $$seeds -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 || exit 1; \
	done
