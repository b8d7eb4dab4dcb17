# The container image of `imagegate serve`, built and pushed without a
# container daemon (`imagegate image`; layout in host-runner/src/deploy/image.rs).
# Included by the Makefile (`-include mk/*.mk`); uses its CARGO, TARGET_DIR,
# IMAGEGATE and ship.mk's `annotate` / ANNOTATED.
#
#   make image IMAGE=host[:port]/repository:tag [IMAGE_FLAGS="--insecure-registry host:port"]
#   make image-test   build the image, push it to a local docker-registry, pull
#                     it back and run it (not part of `make test`: the static
#                     binary is a second cold build of the dependency graph)

MUSL_TARGET      := x86_64-unknown-linux-musl
STATIC_IMAGEGATE := $(TARGET_DIR)/$(MUSL_TARGET)/release/imagegate
IMAGE            ?=
IMAGE_FLAGS      ?=
# The commit and its time: the same commit gives the same image digest.
REVISION         := $(shell git rev-parse HEAD 2>/dev/null)
CREATED          := $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

.PHONY: image-deps static-binary image image-test

image-deps:
	@scripts/deps.sh image

# The release profile of `make bench` (its build scripts are reused); only
# the binary's symbols are stripped.
static-binary: image-deps
	$(CARGO) rustc --locked --release -p imagegate --bin imagegate --target $(MUSL_TARGET) -- -C strip=symbols

image: static-binary annotate
	@test -n "$(IMAGE)" || { echo "usage: make image IMAGE=host[:port]/repository:tag [IMAGE_FLAGS=\"--insecure-registry host:port\"]" >&2; exit 2; }
	$(IMAGEGATE) image --binary $(STATIC_IMAGEGATE) --policy $(ANNOTATED) \
		$(if $(REVISION),--revision $(REVISION)) --created $(CREATED) $(IMAGE_FLAGS) registry://$(IMAGE)

image-test: deps static-binary annotate
	IMAGEGATE_E2E_REQUIRED=1 IMAGEGATE_STATIC_BINARY=$(STATIC_IMAGEGATE) IMAGEGATE_ANNOTATED_POLICY=$(CURDIR)/$(ANNOTATED) \
		$(CARGO) test --locked -p imagegate --test image_e2e -- --ignored
