# Shipping the policy: annotate, Artifact Hub files, release, push.
# Included by the Makefile (`-include mk/*.mk`); uses its CARGO, IMAGEGATE,
# `policy.wasm` and `host-runner` targets.
#
#   make annotate                 annotated-policy.wasm (metadata.yml + README.md as usage)
#   make artifacthub              regenerate artifacthub-pkg.yml and questions-ui.yml
#   make artifacthub-check        fail if the checked-in files are stale
#   make release VERSION=x.y.z    build, annotate, check versions, regenerate artifacthub-pkg.yml
#   make push [OCI_REF=registry://host/repo:tag] [PUSH_FLAGS=--insecure-registry host:port]

ANNOTATED ?= annotated-policy.wasm
METADATA  ?= metadata.yml
OCI_URL   ?= ghcr.io/imagegate/policies/imagegate
# `imagegate --version` is the Cargo workspace version (version.workspace = true).
CARGO_VERSION = $(word 2,$(shell $(IMAGEGATE) --version))
OCI_REF   ?= registry://$(OCI_URL):v$(CARGO_VERSION)
PUSH_FLAGS ?=

.PHONY: annotate artifacthub artifacthub-check release push

annotate: policy.wasm host-runner
	$(IMAGEGATE) annotate -m $(METADATA) -u README.md -o $(ANNOTATED) policy.wasm

artifacthub: host-runner
	$(IMAGEGATE) artifacthub -m $(METADATA)

artifacthub-check: host-runner
	$(IMAGEGATE) artifacthub -m $(METADATA) --check

release: annotate
	@test -n "$(VERSION)" || { echo "usage: make release VERSION=x.y.z" >&2; exit 2; }
	@test "$(CARGO_VERSION)" = "$(VERSION)" || { echo "release $(VERSION): the Cargo workspace version is $(CARGO_VERSION); set [workspace.package] version in Cargo.toml" >&2; exit 1; }
	@v=$$($(IMAGEGATE) inspect --annotation io.kubewarden.policy.version $(ANNOTATED)) && test "$$v" = "$(CARGO_VERSION)" || { echo "release $(VERSION): io.kubewarden.policy.version in $(ANNOTATED) is '$$v', not the Cargo version $(CARGO_VERSION); edit $(METADATA)" >&2; exit 1; }
	@t=$$($(IMAGEGATE) inspect --annotation com.github.release.tag $(ANNOTATED)) && test "$$t" = "v$(VERSION)" || { echo "release $(VERSION): com.github.release.tag is '$$t', not v$(VERSION); edit $(METADATA)" >&2; exit 1; }
	$(IMAGEGATE) artifacthub -m $(METADATA)
	@echo "release $(VERSION): $(ANNOTATED) annotated and checked, artifacthub-pkg.yml regenerated."
	@echo "Next: commit, tag v$(VERSION), make push"

push: annotate
	$(IMAGEGATE) push $(ANNOTATED) $(OCI_REF) -o json $(PUSH_FLAGS)
