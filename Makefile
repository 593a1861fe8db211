# dlhist — run the history of deep learning.  `make` lists the targets.
CARGO ?= cargo
BIN := target/release/dlhist

.PHONY: help build test data bench lint fmt cuda-check clean-runs mutants

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: ## build the release binary (target/release/dlhist)
	$(CARGO) build --release

test: ## run every test (unit, CLI black-box, resume exactness, gradient flow, smoke replays)
	$(CARGO) test --release

data: ## fetch MNIST, Fashion-MNIST, Shakespeare, SOTU, verses, emoji, analogies into data/fetched (about 90 MB)
	bash scripts/fetch-data.sh

bench: build ## time the training steps of the mlp, lenet, lstm and gpt workloads, and the fused ops vs their references
	$(BIN) bench --ops

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings

cuda-check: ## compile the cuda feature, every kernel to PTX and the GPU tests, without a GPU (CUDA 13 nvcc from PyPI in .cuda-venv/)
	CARGO=$(CARGO) bash scripts/cuda-check.sh

clean-runs: ## delete every run directory under checkpoints/
	find checkpoints -mindepth 1 -maxdepth 1 ! -name .gitkeep -exec rm -rf {} +

# Each mutant rebuilds the library's unit tests at opt-level 0 (a --config override of the release
# profile), against target/release's optimised dependencies, and runs only the tests of the
# mutated files: ~20 s a mutant on 2 cores. One job (-j 1): the builds fill the cores.
MUTANTS = CARGO_TARGET_DIR=$(CURDIR)/target $(CARGO) mutants -j 1 --cargo-arg=--release \
	--cargo-arg=--config=profile.release.package.dlhist.opt-level=0 --cargo-arg=--lib

mutants: ## mutation testing (cargo-mutants) of the claims, the training step and the optimizers: ~20 s a mutant, hours in all; reports in target/mutants-*/mutants.out
	@command -v cargo-mutants >/dev/null || $(CARGO) install --locked cargo-mutants
	$(MUTANTS) -f src/engine/step.rs -f src/engine/optim.rs -f src/ops/optim.rs -E 'benches|[Cc]uda|_ref' \
		-o target/mutants-engine -- -- engine:: ops::optim
	$(MUTANTS) -f 'src/claims/*.rs' -o target/mutants-claims -- -- claim
