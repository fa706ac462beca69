# The two commands a new user needs: `make demo` and `make test`. Both are idempotent; the venv and
# the HTCondor image are reused on later runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo demo-openstack test lint system-deps devpool-down clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Debian packages the pool and the tests use: debootstrap builds the HTCondor image once;
# prometheus/promtool are used by the metrics tests; buildah builds the worker image, which
# podman runs with runc. mariadb-server and rabbitmq-server back devcloud's OpenStack services.
# chromium and chromium-driver drive the Airflow UI page in the browser tests.
system-deps:
	@missing=""; \
	command -v debootstrap >/dev/null || missing="$$missing debootstrap"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v buildah >/dev/null || missing="$$missing buildah"; \
	command -v podman >/dev/null || missing="$$missing podman"; \
	command -v runc >/dev/null || missing="$$missing runc"; \
	command -v mariadbd >/dev/null || missing="$$missing mariadb-server"; \
	test -x /usr/lib/rabbitmq/bin/rabbitmq-server || missing="$$missing rabbitmq-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: $(INSTALLED) system-deps
	$(BIN)/bursting demo

# The same campaigns on real OpenStack: devcloud's private and public projects on 127.0.0.1.
demo-openstack: $(INSTALLED) system-deps
	$(BIN)/bursting demo --openstack

# Style, types (the fakes are held to the seams' Protocols) and the layering in .importlinter.
lint: $(INSTALLED)
	$(BIN)/ruff check bursting tests dags plugins bench
	$(BIN)/ruff format --check bursting tests dags plugins bench
	$(BIN)/mypy bursting tests/fakes.py
	$(BIN)/lint-imports

test: $(INSTALLED) system-deps lint
	$(BIN)/python -m pytest

devpool-down: $(INSTALLED)
	$(BIN)/bursting devpool down

clean: devpool-down
	rm -rf $(VENV)
