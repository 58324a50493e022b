"""``polytask group``: which tasks to train together, and (with --train) how that compares
with one network for all tasks and with single-task networks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from polytask.cli.common import console, emit_json, output_options
from polytask.cli.options import data_options, network_options, training_options
from polytask.cli.relate import prepare_from_options


@click.command("group")
@click.argument("data", type=click.Path(dir_okay=False))
@data_options
@network_options
@training_options
@click.option("--max-groups", type=int, default=None, help="At most this many groups (default: as many as tasks).")
@click.option("--affinity", type=click.Choice(["combined", "tag", "cosine", "sharing", "standley"]), default="combined",
              show_default=True,
              help="Matrix the groups are chosen from: combined (gradient cosine and hidden-unit sharing, each "
                   "scaled to unit size, averaged), tag, cosine, sharing, or standley (trains every pair of tasks).")
@click.option("--every", type=int, default=10, show_default=True, help="Record the affinity every this many steps.")
@click.option("--exact-limit", type=int, default=12, show_default=True,
              help="Exhaustive branch-and-bound search up to this many tasks; a heuristic beyond.")
@click.option("--train", is_flag=True, help="Train the groups and compare them with all-in-one MTL and STL.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output directory.")
@output_options
def command(data: str, max_groups: int | None, affinity: str, every: int, exact_limit: int, train: bool, out: str,
            as_json: bool, quiet: bool, **o: Any) -> None:
    """Choose a partition of the tasks of DATA into at most --max-groups groups, and say what
    to do (with --train: the set-up best on the validation rows, with the test rows as evidence).

    The objective is TAG's: the mean over tasks of the affinity onto each task from the rest of
    its group (0 for a task alone). Writes groups.json (a list of groups, each a list of task
    names), grouping.json, the affinity matrix (CSV, JSON, PNG) and summary.txt to --out; with
    --train also comparison.json and comparison.csv (test metrics per task, delta-m against STL
    and total parameters of the groups, all-in-one MTL and STL, all on the same split).
    """
    from polytask.errors import PolytaskError
    from polytask.relate.choose import group_tasks
    from polytask.relate.report import GROUP_MARKER, check_output, grouping_summary, write_grouping

    if max_groups is not None and max_groups < 1:
        raise PolytaskError(f"--max-groups must be >= 1, got {max_groups}")
    out_dir = Path(out)
    check_output(out_dir, GROUP_MARKER)
    prepared, spec, config = prepare_from_options(data, o)
    report = group_tasks(prepared, affinity, max_groups, every, spec, config, train=train, exact_limit=exact_limit)
    write_grouping(report, out_dir)
    con = console(quiet or as_json)
    text = grouping_summary(report)
    con.print(text, markup=False, highlight=False, soft_wrap=True)
    advice = recommendation_text(report)
    if advice not in text:
        con.print(f"recommendation: {advice}", markup=False, highlight=False, soft_wrap=True)
    con.print(f"written to {out_dir}")
    if as_json:
        emit_json({"out": str(out_dir), **report.to_dict()})


def _plan(groups: list[list[str]]) -> str:
    if len(groups) == 1:
        return "train all tasks in one network"
    if all(len(g) == 1 for g in groups):
        return "train each task alone (STL)"
    return "train these groups: " + " | ".join(", ".join(g) for g in groups)


def recommendation_text(report: Any) -> str:
    """What to do, always, STL included: the report's own recommendation where it has one
    (``GroupReport.recommendation()``, issue 16), else read off what it holds: with --train the
    set-up with the best test delta-m against STL on this one split (STL, at 0, wins ties and
    losses), without --train the grouping, marked as not checked by training."""
    own = getattr(report, "recommendation", None)
    if callable(own):
        return str(own()["text"])
    groups = [list(g) for g in report.grouping.groups]
    c = report.comparison
    if c is None:
        return f"{_plan(groups)} (from the '{report.grouping.source}' affinity; not checked by training: add --train)"
    scores = {"stl": 0.0, **{k: v for k, v in c.delta_m.items() if v == v}}
    best = max(scores, key=lambda k: (scores[k], k == "stl"))
    action = {"groups": _plan(groups), "mtl": "train all tasks in one network", "stl": "train each task alone (STL)"}[best]
    if best == "stl":
        return (f"{action}: neither the groups ({c.delta_m.get('groups', float('nan')) * 100:+.2f}% delta-m) nor one "
                f"network for all ({c.delta_m.get('mtl', float('nan')) * 100:+.2f}%) beats STL on this split")
    return f"{action}: {scores[best] * 100:+.2f}% delta-m against STL on this split (one split, no significance test)"
