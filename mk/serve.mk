# imagegate serve, the browser playground and the load test.
#
#   make playground          build the playground site into $(PLAYGROUND_SITE)
#   make playground-test     the site in headless chromium (WebDriver), at 1366x768,
#                            screenshot in $(PLAYGROUND_SCREENSHOT)
#   make playground-gallery  rewrite the gallery's converted examples from `imagegate convert`
#   make load                imagegate serve under N concurrent clients

PLAYGROUND_SITE := $(TARGET_DIR)/playground-site
PLAYGROUND_SCREENSHOT := $(TARGET_DIR)/playground-screenshot.png
PLAYGROUND_WASM := $(TARGET_DIR)/wasm32-unknown-unknown/playground/imagegate_playground.wasm

.PHONY: playground playground-deps playground-test playground-test-deps playground-gallery load

# The target and wasm-bindgen-cli; the test also needs chromium + chromedriver.
playground-deps:
	@scripts/deps.sh playground
playground-test-deps:
	@scripts/deps.sh playground-test

playground: playground-deps
	$(CARGO) build --locked -p imagegate-playground --target wasm32-unknown-unknown --profile playground
	rm -rf $(PLAYGROUND_SITE)
	mkdir -p $(PLAYGROUND_SITE)
	wasm-bindgen --target web --no-typescript --out-dir $(PLAYGROUND_SITE)/pkg $(PLAYGROUND_WASM)
	cp playground/www/* $(PLAYGROUND_SITE)/
	@ls -l $(PLAYGROUND_SITE)/pkg/imagegate_playground_bg.wasm | awk '{print "playground engine: " $$5 " bytes"}'
	@echo "open it over HTTP, e.g.: python3 -m http.server -b 127.0.0.1 -d $(PLAYGROUND_SITE)"

playground-test: playground-test-deps playground
	IMAGEGATE_PLAYGROUND_SITE=$(PLAYGROUND_SITE) IMAGEGATE_PLAYGROUND_SCREENSHOT=$(PLAYGROUND_SCREENSHOT) \
	  $(CARGO) test --locked -p imagegate-playground --test browser -- --ignored

# After a converter change: `git diff playground/gallery` shows what the examples now say.
playground-gallery:
	IMAGEGATE_BLESS=1 $(CARGO) test --locked -p imagegate --test playground_gallery

# LOAD_SECONDS per client count (default 10), LOAD_CLIENTS (default "8 32"),
# LOAD_VERIFY_SECONDS per verification case (default 5), LOAD_LINK_DELAY_MS
# (default 5: each direction's delay of the link to the registry in the
# linked phase). The verification benchmark runs the release server as its
# own process (IMAGEGATE_BIN).
load: policy.wasm
	$(CARGO) build --locked --release -p imagegate
	IMAGEGATE_BIN=$(TARGET_DIR)/release/imagegate IMAGEGATE_POLICY=$(CURDIR)/policy.wasm $(CARGO) test --locked -p imagegate --test serve_load -- --ignored --nocapture --test-threads 1
