"""Inference: the two models and the compute stages that run them on a chunk.

* :mod:`~facepipe.inference.files`: where the ONNX files are;
* :mod:`~facepipe.inference.runtimes`: which runtime runs a model (ONNX Runtime, OpenVINO;
  CPU, CUDA; fp32, bf16) and its session;
* :mod:`~facepipe.inference.model`: the base class: configured cheaply, loaded once, predicts;
* :mod:`~facepipe.inference.detector`: SCRFD, faces in a frame;
* :mod:`~facepipe.inference.embedder`: ArcFace, an embedding per aligned crop;
* :mod:`~facepipe.inference.align`: the five-landmark alignment to 112x112, crops as PNG;
* :mod:`~facepipe.inference.chunk`: the detect and embed stages as plain functions
  (a chunk in, a :class:`~facepipe.records.ChunkRecord` out).

May import: the base (:mod:`facepipe.errors`, :mod:`facepipe.settings`,
:mod:`facepipe.records`) and :mod:`facepipe.media`.
"""
