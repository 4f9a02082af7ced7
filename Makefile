# Lifecycle of the SDP platform: build, test, lint, container images, and the umbrella chart on a cluster
# (install, wait, watch, test, uninstall, template). `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# helm and kubectl from PATH, else from the tool cache scripts/setup fills.
TOOLS_BIN ?= $(or $(SDP_TOOLS_DIR),$(HOME)/.cache/sdp/tools)/bin
export PATH := $(PATH):$(TOOLS_BIN)
HELM ?= helm
KUBECTL ?= kubectl

KUBE_NAMESPACE ?= ska-sdp
HELM_RELEASE ?= ska-sdp
UMBRELLA ?= charts/ska-sdp
# Extra helm flags of install and template, e.g. K8S_CHART_PARAMS="--set staging.enabled=false -f my.yaml";
# K8S_EXTRA_PARAMS is added after them (the name the SKA makefiles use).
K8S_CHART_PARAMS ?=
K8S_EXTRA_PARAMS ?=
# true: Tango through the Tango operator (--set global.operator=true), and k8s-watch shows its resources too.
SKA_TANGO_OPERATOR ?= false
ifeq ($(filter true false,$(SKA_TANGO_OPERATOR)),)
$(error SKA_TANGO_OPERATOR is true or false, not '$(SKA_TANGO_OPERATOR)')
endif
TANGO_OPERATOR = $(filter true,$(SKA_TANGO_OPERATOR))
CHART_FLAGS = $(strip $(K8S_CHART_PARAMS) $(if $(TANGO_OPERATOR),--set global.operator=true) $(K8S_EXTRA_PARAMS))
TANGO_OPERATOR_RESOURCES := ,deviceservers.tango.tango-controls.org,databaseds.tango.tango-controls.org
WATCHED = pods,services,persistentvolumeclaims$(if $(TANGO_OPERATOR),$(TANGO_OPERATOR_RESOURCES))
# How long k8s-install-chart, k8s-wait and k8s-uninstall-chart wait (kubectl/helm duration).
K8S_TIMEOUT ?= 300s
MANIFESTS ?= manifests.yaml
# Where helm-operator writes the operator's chart package.
CHART_PACKAGES ?= target/charts

CHARTS := $(sort $(patsubst %/Chart.yaml,%,$(wildcard charts/*/Chart.yaml)))

# Images: stage:name of the images images/Dockerfile builds, from the one image table (scripts/images).
IMAGE_TOOL ?= $(shell command -v docker 2>/dev/null || command -v podman 2>/dev/null)
IMAGE_REGISTRY ?=
IMAGE_TAG ?= 0.1.0
IMAGES := $(shell scripts/images stages)

.PHONY: help build images push test unit_test lint lint-charts k8s-dep-build k8s-template-chart k8s-install-chart \
	k8s-wait k8s-watch k8s-test k8s-uninstall-chart helm-crd helm-operator deploy_all install-chart wait watch

help: ## this list
	@awk 'BEGIN { FS = ":.*## " } /^[a-z0-9_-]+:.*## / { printf "  %-22s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
	@echo "  variables: KUBE_NAMESPACE=$(KUBE_NAMESPACE) HELM_RELEASE=$(HELM_RELEASE) K8S_TIMEOUT=$(K8S_TIMEOUT)"
	@echo "             K8S_CHART_PARAMS='$(K8S_CHART_PARAMS)' K8S_EXTRA_PARAMS='$(K8S_EXTRA_PARAMS)'"
	@echo "             SKA_TANGO_OPERATOR=$(SKA_TANGO_OPERATOR) IMAGE_REGISTRY=$(IMAGE_REGISTRY) IMAGE_TAG=$(IMAGE_TAG)"

build: ## build the release binaries (cargo build --release)
	scripts/patch-crates
	cargo build --release --locked

images: ## build the container images: with docker or podman when one reaches its engine, else without (scripts/images)
	@if [ -n "$(IMAGE_TOOL)" ] && $(IMAGE_TOOL) info >/dev/null 2>&1; then \
	  export DOCKER_BUILDKIT=1; for pair in $(IMAGES); do \
	    target=$${pair%%:*}; name=$${pair#*:}; \
	    echo "building $(IMAGE_REGISTRY)$$name:$(IMAGE_TAG) (target $$target)"; \
	    $(IMAGE_TOOL) build -f images/Dockerfile --target $$target -t $(IMAGE_REGISTRY)$$name:$(IMAGE_TAG) . || exit 1; \
	  done; \
	else \
	  echo "make images: no container engine reachable: building without one (scripts/images, OCI layouts and docker archives in target/images)"; \
	  IMAGE_TAG=$(IMAGE_TAG) scripts/images; \
	fi

push: ## copy the images built by scripts/images to IMAGE_REGISTRY with skopeo (make push IMAGE_REGISTRY=host:5000/ska)
	@[ -n "$(IMAGE_REGISTRY)" ] || { echo "make push: set IMAGE_REGISTRY (e.g. make push IMAGE_REGISTRY=registry.example:5000/ska)" >&2; exit 1; }
	IMAGE_TAG=$(IMAGE_TAG) scripts/images push $(patsubst %/,%,$(IMAGE_REGISTRY))

test: ## the whole test suite (scripts/test: clippy, chart tests, cargo test)
	scripts/test

unit_test: ## the unit tests: the tests inside the crates' sources (cargo test --lib --bins), no cluster
	scripts/patch-crates
	cargo test --workspace --locked --lib --bins

lint: lint-charts ## helm lint --strict of every chart, and clippy
	scripts/patch-crates
	cargo clippy --workspace --all-targets --locked -- -D warnings

lint-charts: k8s-dep-build ## helm lint --strict of every chart (and with its ci/ values, tests/charts/<chart>-values.yaml)
	@for chart in $(CHARTS); do \
	  values=tests/charts/$${chart#charts/}-values.yaml; \
	  $(HELM) lint --strict --quiet $$chart $$( [ ! -f $$values ] || echo "-f $$values" ); \
	done
	@for values in charts/*/ci/*.yaml; do $(HELM) lint --strict --quiet $${values%/ci/*} -f $$values; done

k8s-dep-build: ## vendor every chart's dependencies (charts/*/charts/, not committed), the umbrella's last
	@for chart in $$(grep -l '^dependencies:' charts/*/Chart.yaml | xargs -n1 dirname | sort -r); do \
	  $(HELM) dependency update $$chart >/dev/null || exit 1; \
	done

k8s-template-chart: k8s-dep-build ## render the umbrella chart into manifests.yaml (MANIFESTS=)
	$(HELM) template $(HELM_RELEASE) $(UMBRELLA) --namespace $(KUBE_NAMESPACE) $(CHART_FLAGS) > $(MANIFESTS)
	@echo "wrote $(MANIFESTS): $$(grep -c '^kind:' $(MANIFESTS)) objects"

k8s-install-chart: k8s-dep-build ## helm upgrade --install the umbrella chart into $(KUBE_NAMESPACE)
	$(HELM) upgrade --install $(HELM_RELEASE) $(UMBRELLA) --namespace $(KUBE_NAMESPACE) --create-namespace \
	  --timeout $(K8S_TIMEOUT) $(CHART_FLAGS)

k8s-wait: ## wait until the release's workloads are rolled out, its pods Ready and its jobs complete
	@sel=app.kubernetes.io/instance=$(HELM_RELEASE); ns=$(KUBE_NAMESPACE); start=$$(date +%s); \
	for w in $$($(KUBECTL) get deployments,statefulsets -n $$ns -l $$sel -o name); do \
	  $(KUBECTL) rollout status -n $$ns $$w --timeout=$(K8S_TIMEOUT); \
	done; \
	if [ -n "$$($(KUBECTL) get jobs -n $$ns -l $$sel -o name)" ]; then \
	  $(KUBECTL) wait -n $$ns --for=condition=complete jobs -l $$sel --timeout=$(K8S_TIMEOUT); \
	fi; \
	if [ -n "$$($(KUBECTL) get pods -n $$ns -l $$sel --field-selector=status.phase!=Succeeded -o name)" ]; then \
	  $(KUBECTL) wait -n $$ns --for=condition=Ready pods -l $$sel --field-selector=status.phase!=Succeeded \
	    --timeout=$(K8S_TIMEOUT); \
	fi; \
	echo "k8s-wait: $(HELM_RELEASE) ready in $$(( $$(date +%s) - start ))s"; \
	$(KUBECTL) get pods -n $$ns -l $$sel -o wide

# kubectl get --watch follows one resource type only: watch(1) repeats the listing of all of them.
k8s-watch: ## watch the pods, services and claims of the namespace (and DeviceServers, DatabaseDSs with SKA_TANGO_OPERATOR=true)
	watch $(KUBECTL) get $(WATCHED) -n $(KUBE_NAMESPACE) -o wide

k8s-test: ## check the installed release in the cluster (tests/charts/k8s-test)
	KUBECTL=$(KUBECTL) HELM=$(HELM) tests/charts/k8s-test $(KUBE_NAMESPACE) $(HELM_RELEASE)

k8s-uninstall-chart: ## helm uninstall the release and check that nothing of it is left
	$(HELM) uninstall $(HELM_RELEASE) --namespace $(KUBE_NAMESPACE) --wait --timeout $(K8S_TIMEOUT)
	KUBECTL=$(KUBECTL) K8S_TIMEOUT=$(K8S_TIMEOUT) tests/charts/k8s-leftovers $(KUBE_NAMESPACE) $(HELM_RELEASE)

helm-crd: ## write the Tango operator's CRDs into charts/ska-tango-operator/crds/ from its Rust types (crdgen)
	scripts/patch-crates
	cargo run --locked -q -p tango-operator --bin ska-tango-operator -- crdgen --out-dir charts/ska-tango-operator/crds

helm-operator: helm-crd ## package the Tango operator's chart, with fresh CRDs, into $(CHART_PACKAGES)/
	$(HELM) lint --strict charts/ska-tango-operator
	$(HELM) package charts/ska-tango-operator --destination $(CHART_PACKAGES)

# The names the SKA projects' documentation uses (sdp-prototype, ska-tango-examples): each runs the target it
# names, with the same variables.
deploy_all: k8s-install-chart ## alias of k8s-install-chart (sdp-prototype's name)
install-chart: k8s-install-chart ## alias of k8s-install-chart (ska-tango-examples' name)
wait: k8s-wait ## alias of k8s-wait
watch: k8s-watch ## alias of k8s-watch
