"""``superpoint benchmark --matrix``: models x backends x precisions x sizes, each available
combination measured in its own process (latency, FPS, peak memory and, with datasets, the
accuracy of ``superpoint evaluate``), the others listed with the reason they were skipped.

* :mod:`.variants`: the variant names (``onnxruntime-int8``) -> backend + precision;
* :mod:`.plan`: which combinations run here, and why the others cannot;
* :mod:`.models`: the files they run (ONNX exports, INT8 models), made once;
* :mod:`.measure` / :mod:`.child`: one combination, in its own process;
* :mod:`.accuracy`: its score on homography sequences, by the evaluation's code;
* :mod:`.runner`: the matrix; :mod:`.machine`: the report header; :mod:`.report`,
  :mod:`.plot`: the report folder.
"""
