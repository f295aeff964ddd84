# mirage_ros — two commands for a fresh machine:  `make demo`  and  `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Every process that may start rclpy keeps DDS on loopback, on a domain of its own.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
ROS_DOMAIN_ID ?= $(shell echo $$(( ($$RANDOM % 90) + 5 )))
export ROS_DOMAIN_ID
ENV := source scripts/env.sh
PYTEST_ARGS ?=

.PHONY: help setup demo test lint typecheck pytest bench clean

help:
	@echo "make demo   set up, then run the end-to-end demo on the built-in scene (writes demo_output/)"
	@echo "make test   set up, then run every test, ruff and mypy"
	@echo "make setup  only the set-up (venv with ROS 2 wheels + torch, colcon build)"
	@echo "make bench  the CPU memory benchmark (writes bench_output/bench.json)"

setup:
	@bash scripts/setup.sh

demo: setup
	@$(ENV); python -m mirage_ros demo --out demo_output

pytest: setup
	@$(ENV); python -m pytest $(PYTEST_ARGS)

lint: setup
	@$(ENV); ruff check . && ruff format --check .

typecheck: setup
	@$(ENV); mypy mirage_ros/mirage_ros/core mirage_ros/mirage_ros/conversions.py mirage_ros/mirage_ros/transforms.py

test: setup
	@$(ENV); python -m pytest $(PYTEST_ARGS)
	@$(ENV); ruff check . && ruff format --check .
	@$(ENV); mypy mirage_ros/mirage_ros/core mirage_ros/mirage_ros/conversions.py mirage_ros/mirage_ros/transforms.py
	@echo "make test: all tests, ruff and mypy passed"

bench: setup
	@$(ENV); python -m mirage_ros bench --device cpu --out bench_output/bench.json

clean:
	rm -rf build install log demo_output bench_output eval_output
