# The two commands of the quick start are `make up` and `make test`; both install what they need.
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
SYNCED := $(VENV)/.synced
# The local Kafka broker's jars (deploy/kafka/pom.xml), fetched by Maven, cached in ~/.m2.
KAFKA_LIBS := .kafka/libs
KAFKA_FETCHED := $(KAFKA_LIBS)/.fetched
# S3Proxy's jars (deploy/s3proxy/pom.xml), the S3-compatible server of the object storage tests.
S3PROXY_LIBS := .s3proxy/libs
S3PROXY_FETCHED := $(S3PROXY_LIBS)/.fetched

.PHONY: install up test test-fast test-chaos image-check k6-tools bench lint clean kafka kafka-libs kafka-tools redis-tools s3proxy-libs browser-tools test-deps ops-tools deploy-sync chaos chaos-tools load

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(SYNCED): $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen
	touch $@

install: $(SYNCED)

# Java, Maven and kcat, from the system's packages when missing.
kafka-tools:
	@deploy/tools/apt-tools.sh kcat=kcat java=openjdk-17-jre-headless mvn=maven

$(KAFKA_FETCHED): deploy/kafka/pom.xml | kafka-tools
	deploy/tools/fetch-jars.sh deploy/kafka/pom.xml $(KAFKA_LIBS) "the Kafka broker's jars"

kafka-libs: $(KAFKA_FETCHED)

# Redis's server, which the cache tests start on a loopback port.
redis-tools:
	@deploy/redis/install-tools.sh

$(S3PROXY_FETCHED): deploy/s3proxy/pom.xml | kafka-tools
	deploy/tools/fetch-jars.sh deploy/s3proxy/pom.xml $(S3PROXY_LIBS) "S3Proxy's jars"

s3proxy-libs: $(S3PROXY_FETCHED)

# The checkers of deploy/: helm and actionlint built from their Go modules, checkov in a tool
# environment of its own (each built once per version, under .tools), promtool and amtool.
ops-tools: install
	@deploy/tools/go-tools.sh $(TOOLS)/go/bin
	@deploy/tools/checkov.sh $(TOOLS)
	@deploy/monitoring/install-tools.sh

# Chromium and chromedriver, the real browser the dashboard's browser tests drive through Selenium.
browser-tools:
	@deploy/chromium/install-tools.sh

# What the tests need beside Python: a Kafka broker's jars, Java and kcat; redis-server; S3Proxy's
# jars; Chromium and its WebDriver; the deployment checkers.
test-deps: install kafka-tools kafka-libs redis-tools s3proxy-libs browser-tools ops-tools

## Start the whole platform on embedded defaults (DEMO=1 adds a demo game with simulated traffic;
## KAFKA=1 runs the bus on a local Kafka broker instead of the embedded log).
up: install $(if $(KAFKA),kafka-libs,)
	$(VENV)/bin/gamemetrics up $(if $(DEMO),--demo,) $(if $(KAFKA),--kafka,)

## A local single-node Kafka broker in the foreground (Ctrl-C stops it), to try the scaled bus.
kafka: install kafka-libs
	$(VENV)/bin/gamemetrics kafka local

## After a change to the service registry: rewrite what the Helm chart, Compose and Prometheus derive from it.
deploy-sync: install
	$(VENV)/bin/python deploy/helm/sync_registry.py

## Run the whole test suite with the issue's experiments 1, 3, 5 and 7 in short form; `make test-chaos` runs the others.
test: test-deps
	$(VENV)/bin/pytest -m "not chaos"

test-fast: test-deps
	$(VENV)/bin/pytest -m "not slow and not chaos"

## Build the image with buildah and run it (root; STANDIN=1 where no container registry is reachable).
image-check:
	STANDIN=$(STANDIN) deploy/tools/image-check.sh

## Every chaos experiment in short form, as tests (each on a platform of its own).
test-chaos: test-deps chaos-tools
	$(VENV)/bin/pytest -m chaos tests/e2e/test_chaos_experiments.py

# stress-ng for the CPU-stress and memory-pressure experiments, from the system's packages when missing.
chaos-tools:
	@deploy/tools/apt-tools.sh stress-ng=stress-ng

## Every chaos experiment at full length, each on a platform of its own (SEED=N replays a run).
chaos: test-deps chaos-tools
	$(VENV)/bin/gamemetrics chaos run all $(if $(SEED),--seed $(SEED),)

## k6, for bench/k6/scenarios.js: built from its Go module into .tools/go/bin (not needed by the tests).
K6_VERSION := v1.8.1
k6-tools:
	@test -x $(TOOLS)/go/bin/k6 && $(TOOLS)/go/bin/k6 version | grep -q $(K6_VERSION) || \
		GOBIN=$(abspath $(TOOLS))/go/bin CGO_ENABLED=0 go install go.k6.io/k6@$(K6_VERSION)

## The Locust scenarios against a local up, 20 s each (LOAD_SECONDS=N, LOAD_USERS=N).
load: install
	$(VENV)/bin/python bench/load.py --seconds $(or $(LOAD_SECONDS),20) --users $(or $(LOAD_USERS),8)

## Long benchmarks that print figures beside the machine's raw limits.
bench: install kafka-libs browser-tools
	$(VENV)/bin/python bench/ingest.py
	$(VENV)/bin/python bench/ingest.py --kafka
	$(VENV)/bin/python bench/analytics.py --sizes 1000000,10000000
	$(VENV)/bin/python bench/dashboard.py --events 10000000
	$(VENV)/bin/python bench/notifier.py

## ruff, then mypy --strict over src/ (configured in pyproject.toml).
lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache
