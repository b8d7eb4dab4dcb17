# End-to-end cases through the wasm module, and the recorded fixtures.
# Included by the Makefile (`-include mk/*.mk`); uses its CARGO and
# `policy.wasm` targets. Needs docker-registry and notary (Debian packages).
#
#   make e2e-module        host-runner/tests/module_e2e.rs against a live lab
#   make record-fixtures   re-record fixtures/recorded-* from live runs
#                          (ports and keys change; the replays stay offline)

.PHONY: e2e-module record-fixtures

e2e-module: policy.wasm
	IMAGEGATE_POLICY=$(CURDIR)/policy.wasm $(CARGO) test --locked -p imagegate --test module_e2e

record-fixtures: policy.wasm
	IMAGEGATE_POLICY=$(CURDIR)/policy.wasm $(CARGO) test --locked -p imagegate --test module_e2e \
		-- --ignored --exact record_fixtures_into_the_suite
