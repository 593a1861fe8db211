# dlhist — run the history of deep learning.  `make` lists the targets.
CARGO ?= cargo
BIN := target/release/dlhist

.PHONY: help build test data bench lint fmt cuda-check clean-runs

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
