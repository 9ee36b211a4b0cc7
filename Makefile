# Two commands on a fresh machine: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
MOTO_PORT ?= 4566
# The demo app (tools/demo_app.py), a relying party `make run` starts next to the IdP.
DEMO_PORT ?= 8100
# The browser tests drive this Chromium with Playwright (which never downloads a browser here).
CHROMIUM ?= /usr/bin/chromium
export PORT MOTO_PORT DEMO_PORT CHROMIUM

.PHONY: run test venv browser upstream-op reset-local bench bench-load clean package deploy deploy-preflight messages

# Reinstall only when a requirements file changes.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.installed

# The federation tests' upstream OpenID Provider (tests/upstream_op: panva's oidc-provider, run by node):
# `npm ci` from the committed lock file, again only when package.json or the lock file changes.
UPSTREAM_OP := tests/upstream_op
$(UPSTREAM_OP)/node_modules/.installed: $(UPSTREAM_OP)/package.json $(UPSTREAM_OP)/package-lock.json
	@if ! command -v npm >/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "error: npm is missing; the federation tests run an OpenID Provider on node. As root: apt-get install nodejs npm" >&2; \
	    exit 1; \
	  fi; \
	  echo "npm is missing: installing Debian's nodejs and npm with apt-get"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm \
	    || { echo "error: apt-get could not install nodejs and npm" >&2; exit 1; }; \
	fi
	cd $(UPSTREAM_OP) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

upstream-op: $(UPSTREAM_OP)/node_modules/.installed

## make browser: Debian's chromium for the browser tests; apt-get runs only when it is missing
browser:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "error: $(CHROMIUM) is missing and the browser tests need it. Install Debian's chromium as root:" >&2; \
	    echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium" >&2; \
	    echo "(or point CHROMIUM=/path/to/chromium at another build)" >&2; \
	    exit 1; \
	  fi; \
	  echo "$(CHROMIUM) is missing: installing Debian's chromium with apt-get"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium \
	    || { echo "error: apt-get could not install chromium" >&2; exit 1; }; \
	  [ -x "$(CHROMIUM)" ] || { echo "error: still no $(CHROMIUM) after installing chromium" >&2; exit 1; }; \
	fi

## make run: local AWS stack (moto) + tables + signing key + `chalice local` on 127.0.0.1:$(PORT) (issuer http://localhost:$(PORT)), and the demo
## app on 127.0.0.1:$(DEMO_PORT) (emails: .local/outbox, `./idp-admin outbox list`)
run: venv
	$(BIN)/python -m tools.devstack

## make test: the whole suite (unit, routes, moto-server integration, browser, federation against a node OpenID Provider)
test: venv browser upstream-op
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make bench: one table (bench/request_cpu.py): per request path of issue 10, DynamoDB calls and median handler
## CPU next to the issue's targets and to the floor (a bare Chalice route: Basic auth, SHA-256 compare, ES256 sign),
## and the cold-first ratio (bench/cold_start.py: fresh interpreter -> first token, app / floor, target <= 1.25);
## then issue 12's self-service paths (bench/self_service.py: sign-up, verification, reset, account page; 50 runs
## each, no targets): DynamoDB calls, SES sends (their CPU counted in the handler's), CPU without argon2id;
## then issue 13's second-factor paths (bench/second_factor.py: TOTP, recovery codes, passkeys), the same with KMS calls;
## then issue 15's federation and logout paths (bench/federation.py: sign-in through a loopback upstream IdP, home-realm
## discovery, RP-initiated logout, the back-channel delivery function), the same with SQS/Secrets Manager calls and
## outbound HTTP requests
## then issue 14's delegation paths (bench/delegation.py: private_key_jwt, token exchange, the ID-JAG issued and
## redeemed from a loopback trusted issuer, the device flow), the same columns
## then issue 16's sender-constrained paths (bench/sender_constrained.py: DPoP at /token and /userinfo next to each
## Bearer twin, /par, /authorize with a request_uri), the same columns and each twin's difference
bench: venv
	$(BIN)/python bench/request_cpu.py

## make bench-load [DURATION=60] [WORKERS=64]: a sustained concurrency run (bench/concurrency.py): the workers mix
## sign-ins, code redemptions, refreshes, client_credentials, introspection and revocation against a moto server,
## then the tables are checked: every code redeemed at most once, every refresh family linear
DURATION ?= 60
WORKERS ?= 64
bench-load: venv
	$(BIN)/python bench/concurrency.py --duration $(DURATION) --workers $(WORKERS)

## make messages [NEW_LOCALE=fr]: the message catalog (chalicelib/i18n.py). Extracts every marked string of
## chalicelib (babel.cfg: N_/_ in Python, _()/{% trans %} in templates) into a fresh template, merges it into
## each chalicelib/locales/<lang>/LC_MESSAGES/messages.po (NEW_LOCALE starts a new language's catalog), and
## compiles the .mo files the Lambda reads; translate the new or fuzzy entries of the .po, then run it again.
## Commit .po and .mo together: tests/unit/test_i18n_catalogs.py fails on an untranslated string or a stale .mo.
LOCALES_DIR := chalicelib/locales
messages: venv
	@pot=$$(mktemp --suffix=.pot) && trap 'rm -f "$$pot"' EXIT && \
	$(BIN)/pybabel -q extract -F babel.cfg -c TRANSLATORS: --project=idp --sort-by-file --add-location=file -o "$$pot" . && \
	if [ -n "$(NEW_LOCALE)" ]; then $(BIN)/pybabel init -i "$$pot" -d $(LOCALES_DIR) -l $(NEW_LOCALE); fi && \
	$(BIN)/pybabel update -i "$$pot" -d $(LOCALES_DIR) --ignore-pot-creation-date && \
	$(BIN)/pybabel compile -d $(LOCALES_DIR) --statistics

# Deployment (docs/deploy.md). STAGE is a stage of .chalice/config.json other than local.
STAGE ?= prod
DIST := dist/$(STAGE)

## make package STAGE=prod: one deployable template, dist/$(STAGE)/sam.json (+ deployment.zip), checked by
## cfn-lint. No AWS account needed: chalice merges infra/template.py's resources into its own. The zip is
## built for python3.13 on arm64 and checked on a Python 3.13 (PYTHON313=...; infra/package.py). Refuses
## the example ISSUER unless ALLOW_EXAMPLE_ISSUER=1 (a build to check, never to deploy).
package: venv
	@rm -rf $(DIST) && mkdir -p $(DIST)
	$(BIN)/python -m infra.template --stage $(STAGE) > $(DIST)/merge-template.json
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(BIN)/python -m infra.package --stage $(STAGE) --dist $(DIST)
	$(BIN)/cfn-lint $(DIST)/sam.json
	@echo "package: $(DIST)/sam.json and $(DIST)/deployment.zip are ready; cfn-lint found nothing"

## make deploy STAGE=prod CERTIFICATE_ARN=arn:aws:acm:... [HOSTED_ZONE_ID=Z...] [ARTIFACT_BUCKET=...]
##   [ALARM_TOPIC_ARN=arn:aws:sns:...] [RESERVED_CONCURRENCY=...] [API_RATE_LIMIT=...] [API_BURST_LIMIT=...] [DRY_RUN=1]:
## check the AWS CLI (v2) and the stage, package, then upload through the artifact bucket and create or
## update the stack with your credentials (infra/deploy.py). DRY_RUN=1 prints every command, runs none.
deploy: deploy-preflight package
	$(BIN)/python -m infra.deploy --stage $(STAGE) --dist $(DIST)

deploy-preflight: venv
	$(BIN)/python -m infra.deploy --stage $(STAGE) --preflight

## make reset-local: forget everything `make run` stored (clients, users, keys)
reset-local:
	rm -rf .local

clean: reset-local
	rm -rf $(VENV) .pytest_cache
