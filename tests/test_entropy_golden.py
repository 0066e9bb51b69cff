"""Checked-in streams pin the byte format: a change that alters bytes fails here.

If the change is intended, bump the format version in entropy/FORMAT.md and
entropy/format.py and regenerate with ``python tests/golden/make_golden.py``.  The
``*_v1.rans`` streams are version 1's (never regenerated): they must still decode.
"""
import pathlib

import numpy as np
import pytest
import torch

from codec import entropy as E
from codec.entropy import rans

GOLDEN = pathlib.Path(__file__).parent / "golden"
CASES = {
    "gaussian": "gaussian",
    "laplace_3_segments": "laplace",
    "categorical": "categorical",
    "empty": "gaussian",
}


def _load(name, version=2):
    tables = E.CDFTables.load(GOLDEN / f"tables_{CASES[name]}.safetensors")
    arrs = np.load(GOLDEN / f"{name}.npz")
    stream = GOLDEN / (f"{name}.rans" if version == 2 else f"{name}_v{version}.rans")
    return tables, arrs["symbols"], arrs["table_index"], stream.read_bytes()


@pytest.mark.parametrize("version", [2, 1])
@pytest.mark.parametrize("name", sorted(CASES))
def test_decode_golden(name, version):
    tables, sym, idx, data = _load(name, version)
    assert E.parse_header(data)["version"] == version
    for backend in ("numpy", "native") if rans.native_available() else ("numpy",):
        out = E.decode(data, torch.from_numpy(idx), tables, backend=backend)
        assert out.shape == sym.shape
        np.testing.assert_array_equal(out.numpy(), sym)


@pytest.mark.parametrize("version", [2, 1])
@pytest.mark.parametrize("name", sorted(CASES))
def test_encode_reproduces_golden_bytes(name, version, monkeypatch):
    from codec.entropy import format as fmt
    tables, sym, idx, data = _load(name, version)
    if version == 1:  # the version 1 writer, with the layout rule it had
        monkeypatch.setattr(fmt, "WRITE_VERSION", 1)
        monkeypatch.setattr(fmt, "LAYOUT_RULE", 2)
    h = E.parse_header(data)
    layout = rans.Layout(h["lanes"], h["steps"], h["segments"])
    if name != "laplace_3_segments":  # that one pins a forced 3-segment layout
        assert E.encode(sym, idx, tables) == data  # the encoder's own layout rule
    assert rans.encode_many([(sym, idx)], tables, [layout])[0] == data


def test_version_2_is_smaller():
    for name in CASES:
        v1, v2 = _load(name, 1)[3], _load(name, 2)[3]
        assert len(v2) < len(v1), name


def test_golden_cases_exercise_escapes_and_segments():
    tables, sym, idx, data = _load("gaussian")
    assert E.parse_header(data)["escapes"] > 5
    assert E.parse_header(_load("laplace_3_segments")[3])["segments"] == 3


def test_table_builders_are_deterministic():
    # The builders' identifiers are pinned.  Tables are built from arithmetic whose results
    # IEEE 754 fixes (entropy/numerics.py, correctly rounded sums, exact integer fix-up), so
    # these ids are the same on every platform and with every numpy version, with or
    # without scipy; a change in how tables are built (and so in every stream of every
    # model that rebuilds them) shows up here.
    assert E.gaussian_tables().id.hex() == "c70dbe9e1aee02b5"
    assert E.laplace_tables().id.hex() == "cb754f0e89358713"
    assert E.gaussian_tables(E.default_scale_table(max_scale=24.0, levels=12)).id.hex() == "05155fb5cc60c74f"
    assert E.laplace_tables(E.default_scale_table(max_scale=8.0, levels=6)).id.hex() == "97b15339e4371775"
    assert E.gaussian_tables(tail_mass=1e-5).id.hex() == "45bce5c44d9d806a"
    k = np.arange(1, 41, dtype=np.float64)
    probs = np.stack([1 / k, 1 / (k * k), np.ones(40)])  # exact-ish, no random draws
    assert E.categorical_tables(probs).id.hex() == "a8146339cd000b78"


def test_golden_tables_are_the_stored_ones():
    # The golden streams use the stored tables (built by the format's first, scipy-based
    # builders); they are loaded, never rebuilt, so the streams pin the coder alone.
    ids = {fam: E.CDFTables.load(GOLDEN / f"tables_{fam}.safetensors").id.hex()
           for fam in ("gaussian", "laplace", "categorical")}
    assert ids == {"gaussian": "7c763b9aaf4673c0", "laplace": "1d367ad88c45e883", "categorical": "ddffdb9a6d4e8c7b"}
    for name in CASES:
        assert E.parse_header(_load(name)[3])["table_id"].hex() == ids[CASES[name]]
