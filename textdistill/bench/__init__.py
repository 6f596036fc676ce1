"""The benchmarks behind ``make bench`` and ``make bench-studies`` (``scripts/bench*.py``).

Not part of the library's runtime path: nothing in ``textdistill`` imports this package.
One idea per module:

* :mod:`.recipes`: every recipe the benchmarks train (the only module that writes or
  reads recipe keys);
* :mod:`.sweep`: rows run through :func:`textdistill.runner.run_recipe`, each reused
  while its resolved recipe and its teacher are unchanged;
* :mod:`.plan`: the SST-2 benchmark's rows A-E;
* :mod:`.fidelity`: each row's agreement with the teacher;
* :mod:`.latency`: CPU latency of the architectures; :mod:`.machine`: device and versions;
* :mod:`.collect`: the results JSON (``docs/benchmarks/results.json``) from saved rows;
* :mod:`.report`, :mod:`.findings`, :mod:`.plots`: the page, from that JSON alone;
* :mod:`.studies`, :mod:`.studies_report`: the two studies and their page;
* :mod:`.engine`, :mod:`.engine_report`: engine against hand loop, and its page;
* :mod:`.transfer_data`, :mod:`.transfer_plan`, :mod:`.transfer_collect`,
  :mod:`.transfer_report`: the transfer section (few labels, a teacher of another
  tokenizer, unlabeled text): its L/D/U split, rows, JSON and page section.
* :mod:`.compression`, :mod:`.compression_report`: the compression section (the best
  student in ONNX Runtime fp32 and int8, pruned and recovered): its JSON, page section
  and figure.
"""
