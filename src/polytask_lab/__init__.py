"""The polytask lab: what the project uses to measure and document itself, apart from the library.

- :mod:`polytask_lab.bench`: the speed benchmark (``polytask bench``, docs/PERFORMANCE.md);
- :mod:`polytask_lab.experiments`: Caruana's synthetic experiments (``polytask experiment``,
  docs/EXPERIMENTS.md), the Peaks data generator included;
- :mod:`polytask_lab.suite`: the benchmark suite (``benchmarks/suite.py``, docs/BENCHMARKS.md);
- :mod:`polytask_lab.render`: the jinja2 templates of those documents;
- :mod:`polytask_lab.cli`: the ``bench`` and ``experiment`` commands, registered with the
  ``polytask`` CLI under the ``polytask.commands`` entry-point group.

The lab imports the library; the library never imports the lab. Its extra dependencies are the
``lab`` extra: ``pip install "polytask[lab]"``.
"""
