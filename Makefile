# Youke: the two commands of the README.
#   make demo   three tiers on this machine with sample lessons
#   make test   every test
# Both install what they need on Debian 12 first (scripts/setup.sh, idempotent).

CARGO ?= cargo
JOBS ?= $(shell nproc)

.PHONY: setup build demo test lint fuzz clean bench-portal bench-object-storage deb image-test

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --workspace --bins

demo: setup
	$(CARGO) run --bin youke -- demo

test: setup
	$(CARGO) clippy --workspace --all-targets --quiet -- -D warnings
	$(CARGO) build --workspace --bins
	$(CARGO) nextest run --workspace --no-fail-fast -j $(JOBS)

# The portal under load against nginx (docs/BENCHMARKS.md); not part of `make test`, which runs
# it at small scale.
bench-portal: setup
	$(CARGO) build --release --bin youke
	./target/release/youke bench portal

# Media from a SeaweedFS cluster (S3) against local disk, side by side (docs/BENCHMARKS.md).
bench-object-storage: setup
	$(CARGO) build --release --bin youke
	bash scripts/bench-object-storage.sh

# The Debian package (docs/OPERATIONS.md), from a release build, into target/debian/.
deb: setup
	$(CARGO) deb -p youke-node

# The appliance image (appliance-image/build.sh) booted in qemu under software emulation: the
# first boot sets it up and the portal answers. Slow (minutes); not part of `make test`; the
# last result is recorded in docs/OPERATIONS.md.
image-test: setup
	bash appliance-image/image-test.sh

# cargo-fuzz targets (federation messages, names and tokens, config), bounded in time:
# FUZZ_SECONDS per target (default 60). Not part of `make test`, which replays their seed corpus.
fuzz: setup
	@bash scripts/fuzz.sh

lint: setup
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
