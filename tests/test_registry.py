"""One registry, one wording: every kind of named thing normalises names the same way and
refuses an unknown name or option in the same words."""

from __future__ import annotations

import re

import pytest

from polytask import PolytaskError, balancers, datasets
from polytask.models import ARCHITECTURES, build_network
from polytask.registry import Registry, accepted_options, check_options, normal_name
from polytask_lab.experiments.registry import EXPERIMENTS

UNKNOWN = re.compile(r"^unknown (architecture|data set|experiment|balancer) 'no-such' \(choose from [\w\-, ]+\)$")


def test_names_are_normalised_and_order_is_kept() -> None:
    reg = Registry("widget", {"Big-One": 1, "small": 2})
    assert reg["big_one"] == reg["BIG ONE"] == reg["Big-One"] == 1
    assert "SMALL" in reg and "tiny" not in reg and 3 not in reg
    assert list(reg) == ["Big-One", "small"] and reg.names() == ["Big-One", "small"] and len(reg) == 2
    reg.register("big one", 5)  # the same normal name replaces the entry
    assert reg["Big-One"] == 5 and len(reg) == 2
    assert normal_name(" Cross-Stitch ") == "cross_stitch"


@pytest.mark.parametrize("lookup", [
    lambda: ARCHITECTURES["no-such"],
    lambda: datasets.load("no-such"),
    lambda: EXPERIMENTS["no-such"],
    lambda: balancers.get("no-such"),
])
def test_an_unknown_name_has_one_wording_for_every_kind(lookup) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PolytaskError) as err:
        lookup()
    assert UNKNOWN.match(str(err.value)), str(err.value)


def test_options_are_checked_against_the_signature_with_one_wording() -> None:
    def loader(rows: int = 10, seed: int = 0) -> None: ...

    assert accepted_options(loader) == ["rows", "seed"]
    assert check_options("data set", "x", ["n_rows"], {"N-Rows": 3}) == {"n_rows": 3}
    with pytest.raises(PolytaskError, match=r"^data set 'x' takes no option 'speed' \(options: rows, seed\)$"):
        check_options("data set", "x", accepted_options(loader), {"speed": 1})
    with pytest.raises(PolytaskError, match=r"^data set 'qm9' takes no option 'speed' \(options: "):
        datasets.load("QM9", speed=1)
    with pytest.raises(PolytaskError, match=r"^architecture 'mmoe' takes no option 'speed' \(options: "):
        build_network("MMoE", 4, {"a": 1}, speed=1)
    with pytest.raises(PolytaskError, match=r"^balancer 'upgrad' takes no option 'speed' \(options: .*mode\)$"):
        balancers.get("UPGrad", speed=1)
    assert balancers.get("Nash-MTL").name == "nash_mtl" and balancers.modes("PCGrad") == ("exact", "representation")
