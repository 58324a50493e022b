"""Readers never see a mixed or a missing model while a writer replaces it.

Three reader processes load a model directory and predict, again and again, while a writer
process replaces the model there 200 times, alternating two models whose descriptions and
weights both differ (trained on targets of other scales), so a description read with the other
model's weights predicts neither. Every load must give exactly one of the two models' outputs:
0 mixed and 0 failed reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import polytask as pt
from polytask.models import NetworkSpec
from polytask.synthetic import related_tasks

READERS = 3
REPLACEMENTS = 200

WRITER = r'''
import sys, time
from pathlib import Path
import polytask as pt
a, b, target, done, count, ready = sys.argv[1:7]
models = [pt.load(a), pt.load(b)]
started = time.time()
while len(list(Path(ready).glob("ready*"))) < int(sys.argv[7]) and time.time() - started < 120:
    time.sleep(0.05)  # start replacing once every reader is reading
for i in range(int(count)):
    models[i % 2].save(target)
Path(done).write_text(str(count))
'''

READER = r'''
import json, sys, time
from pathlib import Path
import numpy as np, pandas as pd, polytask as pt
target, frame_file, refs, done, out = sys.argv[1:6]
frame = pd.read_csv(frame_file)
refs = [np.load(r) for r in refs.split(",")]
pt.load(target)
Path(out).with_name("ready-" + Path(out).name).write_text("")
counts = {"a": 0, "b": 0, "mixed": 0, "failed": 0, "errors": []}
started = time.time()
while time.time() - started < 240:
    finished = Path(done).exists()
    try:
        got = pt.load(target).raw_outputs(frame)["task0"]
    except Exception as exc:
        counts["failed"] += 1
        counts["errors"].append(f"{type(exc).__name__}: {exc}"[:300])
    else:
        match = [np.array_equal(got, r) for r in refs]
        counts["a" if match[0] else "b" if match[1] else "mixed"] += 1
    if finished:
        break
Path(out).write_text(json.dumps(counts))
'''


def test_readers_never_see_a_mixed_or_missing_model_while_it_is_replaced(tmp_path: Path) -> None:
    frame, _ = related_tasks(n_rows=100, n_features=4, n_tasks=2, noise=0.3, seed=5)
    scaled = frame.assign(task0=frame["task0"] * 10 + 3, task1=frame["task1"] * -4)
    sources, refs = [], []
    for name, data, seed in (("a", frame, 1), ("b", scaled, 2)):
        model = pt.fit(data, ["task0", "task1"], NetworkSpec(trunk=(8,)), pt.TrainConfig(epochs=3, seed=seed)).mtl
        sources.append(model.save(tmp_path / name))
        refs.append(tmp_path / f"{name}.npy")
        np.save(refs[-1], model.raw_outputs(frame)["task0"])
    a, b = (pt.load(s).raw_outputs(frame)["task0"] for s in sources)
    assert not np.array_equal(a, b)
    frame_file = tmp_path / "frame.csv"
    frame.to_csv(frame_file, index=False)
    target, done = tmp_path / "live", tmp_path / "done"
    pt.load(sources[0]).save(target)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    (tmp_path / "reader.py").write_text(READER)
    (tmp_path / "writer.py").write_text(WRITER)
    readers = [subprocess.Popen([sys.executable, str(tmp_path / "reader.py"), str(target), str(frame_file),
                                 ",".join(map(str, refs)), str(done), str(tmp_path / f"reader{i}.json")], env=env)
               for i in range(READERS)]
    writer = subprocess.run([sys.executable, str(tmp_path / "writer.py"), str(sources[0]), str(sources[1]), str(target),
                             str(done), str(REPLACEMENTS), str(tmp_path), str(READERS)], env=env, capture_output=True, text=True, timeout=300)
    for proc in readers:
        proc.wait(timeout=300)
    assert writer.returncode == 0, writer.stderr
    assert done.read_text() == str(REPLACEMENTS)
    counts = [json.loads((tmp_path / f"reader{i}.json").read_text()) for i in range(READERS)]
    total = {k: sum(c[k] for c in counts) for k in ("a", "b", "mixed", "failed")}
    errors = [e for c in counts for e in c["errors"]]
    assert total["mixed"] == 0 and total["failed"] == 0, (total, errors[:5])
    assert total["a"] > 0 and total["b"] > 0 and sum(total.values()) >= 100, total  # the reads overlapped the writes
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in sources[1].iterdir())  # nothing left over
