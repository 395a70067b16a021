"""The one contract: the registry's Params are the only range check and the UI's bounds; exports are the
result's own serialiser; the registry imports only the family asked for."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from engine.cache import ResultCache
from engine.registry import FAMILIES, InputError, Param, Settings, all_methods, by_family, get
from engine.results import ComparisonResult, Provenance, from_dict


def test_param_check_coerces_and_names_the_bad_value():
    p = Param("keep", 0.5, low=0.01, high=1.0)
    assert p.check("0.25") == 0.25
    for bad, msg in ((1.5, "<= 1.0"), (0.0, ">= 0.01"), ("x", "must be float"), (float("nan"), "NaN")):
        with pytest.raises(InputError, match=msg):
            p.check(bad)
    n = Param("n", 4, low=0, high=8)
    assert n.check(3.0) == 3
    with pytest.raises(InputError, match="must be int"):
        n.check(2.5)
    c = Param("kind", "attn", choices=("attn", "mlp"))
    with pytest.raises(InputError, match="one of"):
        c.check("block")


def test_settings_validate_fills_defaults_and_rejects_unknown():
    s = Settings("toy sweep", (Param("a", 1, low=0, high=3), Param("b", True)))
    assert s.validate({"a": "2"}) == {"a": 2, "b": True}
    assert s.validate({"a": 0}, only=["a"]) == {"a": 0}
    with pytest.raises(InputError, match="toy sweep has no parameter"):
        s.validate({"c": 1})
    with pytest.raises(InputError, match="<= 3"):
        s.validate({"a": 4})


def test_every_method_is_complete_and_its_defaults_validate():
    methods = all_methods()
    assert {m.family for m in methods} == set(FAMILIES)
    for m in methods:
        assert m.summary and m.role, m.name
        assert m.validate() == m.defaults(), m.name  # the paper's defaults pass the one range check
        if m.control is not None:
            ctrl = get(m.control)
            assert ctrl.family == m.family and ctrl.paper is None, (m.name, m.control)
        json.dumps(m.spec())  # `redex methods --json` can print it


def test_by_family_imports_only_that_family():
    code = (
        "import sys; from engine.registry import by_family; by_family('graphs');"
        "print(sorted(k for k in sys.modules if k.startswith('engine.') and k.count('.') == 1))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(eval(out))  # noqa: S307 - our own subprocess prints a list literal
    assert "engine.graphs" in loaded
    assert not loaded & {f"engine.{f}" for f in FAMILIES if f != "graphs"}
    with pytest.raises(InputError, match="unknown family"):
        by_family("nope")


def test_controls_take_their_bounds_from_the_param():
    gr = pytest.importorskip("gradio")
    from app.controls import control, method_dropdown, values

    with gr.Blocks():
        s = control(Param("samples", 8, low=1, high=256, label="Samples"))
        c = control(Param("iterative", False))
        d = control(Param("kind", "mlp", choices=("attn", "mlp")))
        u = control(Param("seed", 0, low=0))
        dd = method_dropdown("splats")
    assert isinstance(s, gr.Slider) and (s.minimum, s.maximum, s.value, s.step) == (1, 256, 8, 1)
    assert s.label == "Samples"
    assert isinstance(c, gr.Checkbox) and isinstance(d, gr.Dropdown) and d.value == "mlp"
    assert isinstance(u, gr.Number) and u.precision == 0
    assert [ch[0] for ch in dd.choices] == [m.name for m in by_family("splats")]
    settings = Settings("x", (Param("samples", 8, low=1, high=256),))
    assert values(settings, ["samples"], [300 - 299]) == {"samples": 1}
    with pytest.raises(InputError, match="<= 256"):
        values(settings, ["samples"], [257])


@dataclass
class _Toy(ComparisonResult):
    curve: list[float] = field(default_factory=list)


def _toy() -> _Toy:
    prov = Provenance(method="toy", params={"k": 1}, input_fingerprint="abc")
    rows = [{"method": "a", "kept": 0.5, "psnr": 21.5}, {"method": "b", "kept": 0.5, "psnr": 17.25}]
    return _Toy(
        provenance=prov, family="splats", methods=["a", "b"], settings={"k": 1}, rows=rows, curve=[1.0]
    )


def test_export_writes_the_results_own_serialisation(tmp_path):
    pytest.importorskip("gradio")
    from app.export import export

    res = _toy()
    files = export(res, "toy")
    by_name = {p.rsplit("/", 1)[-1]: p for p in files}
    assert set(by_name) == {"toy.json", "toy_comparison.csv"}
    assert json.loads(open(by_name["toy.json"]).read()) == res.to_dict()
    assert open(by_name["toy_comparison.csv"], newline="").read() == res.table_csv("comparison")
    assert from_dict(_Toy, res.to_dict()).rows == res.rows
    with pytest.raises(KeyError, match="no table"):
        export(res, "toy", csv={"missing": "x.csv"})


def test_result_cache_computes_once_and_survives_a_restart(tmp_path, monkeypatch):
    monkeypatch.setenv("REDEX_CACHE_DIR", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return _toy()

    load = lambda d: from_dict(_Toy, d)  # noqa: E731
    a = ResultCache("test-toy", version=1, load=load)
    r1 = a.get_or_compute(("input", 1), compute)
    r2 = a.get_or_compute(("input", 1), compute)
    assert r1 is r2 and len(calls) == 1
    b = ResultCache("test-toy", version=1, load=load)  # a restarted server: memory empty, disk kept
    assert b.get_or_compute(("input", 1), compute).rows == r1.rows and len(calls) == 1
    c = ResultCache("test-toy", version=2, load=load)  # a new version never reads old entries
    c.get_or_compute(("input", 1), compute)
    assert len(calls) == 2
