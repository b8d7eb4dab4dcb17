# imagegate serve, the browser playground and the load test.
#
#   make playground        build the playground site into $(PLAYGROUND_SITE)
#   make playground-test   the site in headless chromium (WebDriver)
#   make load              imagegate serve under N concurrent clients

PLAYGROUND_SITE := $(TARGET_DIR)/playground-site
PLAYGROUND_WASM := $(TARGET_DIR)/wasm32-unknown-unknown/playground/imagegate_playground.wasm

.PHONY: playground playground-deps playground-test load

playground-deps:
	@scripts/deps.sh playground

playground: playground-deps
	$(CARGO) build --locked -p imagegate-playground --target wasm32-unknown-unknown --profile playground
	rm -rf $(PLAYGROUND_SITE)
	mkdir -p $(PLAYGROUND_SITE)
	wasm-bindgen --target web --no-typescript --out-dir $(PLAYGROUND_SITE)/pkg $(PLAYGROUND_WASM)
	cp playground/www/index.html playground/www/playground.js $(PLAYGROUND_SITE)/
	@ls -l $(PLAYGROUND_SITE)/pkg/imagegate_playground_bg.wasm | awk '{print "playground engine: " $$5 " bytes"}'
	@echo "open it over HTTP, e.g.: python3 -m http.server -b 127.0.0.1 -d $(PLAYGROUND_SITE)"

playground-test: playground
	IMAGEGATE_PLAYGROUND_SITE=$(PLAYGROUND_SITE) $(CARGO) test --locked -p imagegate-playground --test browser -- --ignored

# LOAD_SECONDS per client count (default 10), LOAD_CLIENTS (default "8 32"),
# LOAD_VERIFY_SECONDS per verification case (default 5). The verification
# benchmark runs the release server as its own process (IMAGEGATE_BIN).
load: policy.wasm
	$(CARGO) build --locked --release -p imagegate
	IMAGEGATE_BIN=$(TARGET_DIR)/release/imagegate IMAGEGATE_POLICY=$(CURDIR)/policy.wasm $(CARGO) test --locked -p imagegate --test serve_load -- --ignored --nocapture --test-threads 1
