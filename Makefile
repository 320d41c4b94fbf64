# Entry points. Every target depends on `setup`, which is a no-op (a file
# timestamp check) once .venv matches requirements.txt.
SHELL := /bin/bash
PY := .venv/bin/python
STAMP := .venv/.setup-done
TOOLS_STAMP := .venv/.tools-done

CONFIG ?= configs/mmdet/faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py
CHECKPOINT ?= checkpoints/faster_rcnn_r50_fpn_1x_coco_20200130-047c8118.pth
DATA ?= data/synthetic
DEMO_CONFIG ?= configs/mmdet/faster_rcnn/faster-rcnn_r18_fpn_synthetic.py
DEMO_CHECKPOINT ?= checkpoints/demo_r18_fpn_synthetic.pth
# the val images make demo writes and sends (the mAP gates' set is 300)
DEMO_IMAGES ?= 12
EVAL_CONFIG ?= $(DEMO_CONFIG)
EVAL_CHECKPOINT ?= $(DEMO_CHECKPOINT)
EVAL_ANN ?= $(DATA)/annotations/val.json
EVAL_IMAGES ?= $(DATA)/val
EVAL_LIMIT ?= 0
EVAL_FORMATS ?= onnxruntime onnxruntime-int8 openvino
CALIBRATION ?= $(DATA)/train
REPOSITORY ?= model_repository
MODEL ?= faster_rcnn
FORMAT ?= onnxruntime
CANVAS ?=
IMAGES ?= assets/samples
RESULTS ?= results
URL ?= localhost:8001
HOST ?= 127.0.0.1
HTTP_PORT ?= 8000
GRPC_PORT ?= 8001
METRICS_PORT ?= 8002
PYTEST_ARGS ?=
# native Triton backends (NAME/libtriton_NAME.so, e.g. a copy of NGC's
# /opt/tritonserver/backends) for every server a target starts; empty: the
# Python-based stand-in
BACKEND_DIR ?=
ifneq ($(BACKEND_DIR),)
export TRITON_BACKEND_DIR := $(abspath $(BACKEND_DIR))
endif
REPLICAS ?= 2
PART_MB ?= 35  # make gpu-pack's parts (0: the tar whole)

.PHONY: setup tools checkpoint export serve detect demo test test-fast test-native eval data train-demo soak bench load cluster scaling gpu-pack clean

setup: $(STAMP)
$(STAMP): requirements.txt scripts/setup.sh pyproject.toml client/pyproject.toml \
  serve/backends/ngc-runtimes.txt deploy/openvino-plugins.xml
	bash scripts/setup.sh
	touch $@

tools: $(TOOLS_STAMP)  ## setup, and what only the tests and benchmarks need: the lock's dev packages (pytest, moto, kubernetes-validate...), perf_analyzer, nginx, Python 3.10
$(TOOLS_STAMP): $(STAMP) deploy/server-requirements.txt
	bash scripts/setup.sh tools
	touch $@

checkpoint: setup  ## download the COCO Faster R-CNN weights and verify their hash
	$(PY) -m export.checkpoint -o checkpoints

# reduced precisions and a canvas are judged by the mAP gate on EVAL_ANN
GATED = $(or $(filter %int8 %fp16 %tf32,$(FORMAT)),$(CANVAS))

export: setup  ## checkpoint + config -> verified model in the Triton repository
	$(if $(GATED),$(if $(filter $(DATA)/%,$(EVAL_ANN) $(CALIBRATION)),\
	  $(PY) -m synthetic -o $(DATA) --train 64))
	$(PY) -m export -c $(CONFIG) -w $(CHECKPOINT) -f $(FORMAT) -m $(MODEL) -r $(REPOSITORY) \
	  $(if $(filter %int8,$(FORMAT)),--calibration $(CALIBRATION)) \
	  $(if $(CANVAS),--canvas $(CANVAS)) $(if $(GATED),\
	  --accuracy-ann $(EVAL_ANN) --accuracy-images $(EVAL_IMAGES)) $(EXPORT_ARGS)

serve: setup  ## run Triton on the repository until Ctrl-C
	$(PY) -m serve -r $(REPOSITORY) --host $(HOST) --http-port $(HTTP_PORT) \
	  --grpc-port $(GRPC_PORT) --metrics-port $(METRICS_PORT)

detect: setup  ## send IMAGES to a running server, annotated copies into RESULTS
	$(PY) -m client -u $(URL) -m $(MODEL) --out $(RESULTS) $(IMAGES)

demo: setup  ## no weights to download: export the demo detector, serve, detect on val images, stop
	$(PY) -m synthetic -o $(DATA) --train 0 --val $(DEMO_IMAGES)
	$(PY) -m tools.demo -c $(DEMO_CONFIG) -w $(DEMO_CHECKPOINT) -m $(MODEL) \
	  -r $(REPOSITORY) --images $(DATA)/val --limit $(DEMO_IMAGES) --out $(RESULTS)

data: setup  ## the synthetic shapes dataset (train + val, COCO format)
	$(PY) -m synthetic -o $(DATA)

train-demo: data  ## train the demo detector (about 60 min on 2 cores)
	$(PY) -m synthetic.train -c $(DEMO_CONFIG) -o $(DEMO_CHECKPOINT)

eval: setup  ## mAP of one checkpoint: PyTorch vs ONNX Runtime/OpenVINO vs Triton, fp32 and int8
	$(if $(filter $(DATA)/%,$(EVAL_ANN) $(CALIBRATION)),$(PY) -m synthetic -o $(DATA) --train 64)
	$(PY) -m evaluation -c $(EVAL_CONFIG) -w $(EVAL_CHECKPOINT) -m $(MODEL) \
	  -r $(REPOSITORY) --ann $(EVAL_ANN) --images $(EVAL_IMAGES) \
	  -f $(EVAL_FORMATS) --calibration $(CALIBRATION) \
	  --limit $(EVAL_LIMIT) --out $(RESULTS)/eval.json

soak: demo  ## 2,000 checked requests at concurrency 16 on the demo detector `make demo` exported
	$(PY) -m synthetic -o $(DATA) --train 0
	$(PY) -m tools.soak --start $(REPOSITORY) -m $(MODEL) --requests 2000 \
	  --concurrency 16 --out $(RESULTS)/soak.json $(DATA)/val/val_0000[0-7].jpg

bench: tools  ## PyTorch vs ONNX Runtime vs Triton, fp32 and int8, perf_analyzer, one run; with BACKEND_DIR, the engines side by side too
	$(PY) -m bench --out $(RESULTS)/bench
	$(if $(BACKEND_DIR),$(PY) -m bench.engines --out $(RESULTS)/bench/engines.json)

load: tools  ## clients 1..64 on the demo detector and the R50-FPN: throughput, p50/p95/p99, busy
	$(PY) -m bench.sweep --out $(RESULTS)/load $(LOAD_ARGS)

cluster: tools  ## a deployment's layout on this machine: S3 store, REPLICAS replicas (a core each), nginx; Ctrl-C stops
	$(PY) -m tools.cluster --replicas $(REPLICAS) -m $(MODEL)

scaling: tools  ## throughput of 2 replicas vs 1 (a core each) through nginx, one run
	$(PY) -m bench.scaling --out $(RESULTS)/scaling

gpu-pack: setup  ## what a GPU host with no network needs for the GPU sitting: .gpu/sitting.tar, cut into PART_MB parts (docs/gpu-sitting.md)
	$(PY) -m bench.gpu.pack --out .gpu --part-mb $(PART_MB)

test: tools  ## the whole test suite, as CI runs it (starts its own server on free ports)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: tools  ## the suite without its slow tier (under 5 minutes on 2 cores)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-native: tools  ## the native tier on NVIDIA's backends in BACKEND_DIR (NGC's own, or built from their source)
	$(if $(BACKEND_DIR),,$(error test-native: give BACKEND_DIR=DIR, a backend directory such as a copy of NGC's /opt/tritonserver/backends))
	$(PY) -m pytest -m native $(PYTEST_ARGS)

clean:
	rm -rf $(RESULTS) .triton .pytest_cache
