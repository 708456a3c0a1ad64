# vhpc: `make run` boots the default cluster and runs a job; `make test` runs everything CI runs.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
VHPC := $(VENV)/bin/vhpc
# Debian packages the tool needs at run time (the real components) and to build mpi4py.
RUN_PKGS := slurmctld slurmd slurm-client munge openmpi-bin libopenmpi-dev etcd-server \
	etcd-client dnsmasq-base python3-venv python3-dev gcc iproute2 util-linux procps \
	slurmrestd slurm-wlm-jwt-plugin mariadb-server slurmdbd libnss-wrapper nftables \
	mmdebstrap
# Extra packages only the test suite uses (real carbon-cache, rsyslog, headless browser).
TEST_PKGS := graphite-carbon rsyslog chromium
WORKLOAD_VENV := /opt/vhpc/venv
# Exact versions of every package in .venv (pyproject.toml declares ranges); `make lock`
# regenerates it. The venv is (re)installed only when one of the two files changes.
CONSTRAINTS := constraints.txt
INSTALLED := $(VENV)/.installed

.PHONY: install install-test debs lock check-lowest run test lint unit integration bench dashboard-png

install: debs $(INSTALLED)
	@bash scripts/install-workload-venv.sh $(WORKLOAD_VENV) $(CONSTRAINTS)
	@# vhpc's own bytecode, as a wheel install has it (read even under PYTHONDONTWRITEBYTECODE;
	@# a stale file is ignored): every vhpc command and manager start skips ~0.1 s of compiling
	@$(PY) -m compileall -q src
	@echo "vhpc installed: $(abspath $(VHPC))"
	@echo "put it on PATH with:  export PATH=$(abspath $(VENV))/bin:\$$PATH"

debs:
	@bash scripts/install-debs.sh $(RUN_PKGS)

$(INSTALLED): pyproject.toml $(CONSTRAINTS) | debs
	@test -x $(PY) || /usr/bin/python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -c $(CONSTRAINTS) -e '.[dev]'
	@touch $@

lock:
	@bash scripts/lock.sh $(CONSTRAINTS)

# The unit tests against the lowest version each runtime range of pyproject.toml allows.
check-lowest:
	@bash scripts/check-lowest.sh

install-test: install
	@bash scripts/install-debs.sh $(TEST_PKGS)

run: install
	$(VHPC) up -n 4
	$(VHPC) exec slurm --user cluser -- srun -N4 hostname
	@echo "cluster 'vhpc' is up: try '$(VHPC) status', '$(VHPC) shell', and '$(VHPC) down' to remove it"

lint:
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

unit:
	$(VENV)/bin/pytest -q tests/unit

integration:
	$(VENV)/bin/pytest -q -x tests/integration

test: install-test lint
	$(VENV)/bin/pytest -q tests

bench: install
	$(PY) bench/boot.py

# Regenerate docs/dashboard.png on purpose: the browser test boots a real cluster and takes
# the picture (otherwise it writes its screenshots under pytest's tmp_path).
dashboard-png: install-test
	VHPC_DASHBOARD_PNG=$(abspath docs/dashboard.png) $(VENV)/bin/pytest -q \
		tests/integration/test_observe_dashboard.py -k shows_the_real_cluster
