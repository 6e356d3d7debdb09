"""Weka string ARFF (Reuters Corn / Grain): values, escapes and errors; ``exil data fetch reuters`` on a
generated package tree; the Reuters and SpamAssassin text datasets (``label_map``) on generated files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exil.common.data import sources
from exil.common.data.arff import parse_instance, read_arff
from exil.common.data.text import TextDataModule
from exil.common.errors import ExilError
from tests.text_fixtures import tokenizer_folder

HEADER = "% a comment\n@relation 'Reuters-21578 Corn ModApte Train'\n\n@attribute Text string\n@attribute class-att {0,1}\n\n@data\n\n"


def test_instances_unquote_and_unescape():
    assert parse_instance(r"'it\'s corn\nprices, up',1") == ["it's corn\nprices, up", "1"]
    assert parse_instance(r'"say \"no\"\tnow", 0') == ['say "no"\tnow', "0"]
    assert parse_instance(r"bare value,'a\\b',") == ["bare value", "a\\b", ""]


def test_read_arff_names_rows_and_errors(tmp_path):
    good = tmp_path / "a.arff"
    good.write_text(HEADER + "'WHEAT up\\nsharply&#3;',1\n'OIL, down',0\n")
    names, rows = read_arff(good)
    assert names == ["Text", "class-att"]
    assert rows == [{"Text": "WHEAT up\nsharply&#3;", "class-att": "1"}, {"Text": "OIL, down", "class-att": "0"}]
    for body, message in (["'one value only'\n", "1 values for 2 attributes"], ["{0 'x', 1 1}\n", "sparse"]):
        bad = tmp_path / "bad.arff"
        bad.write_text(HEADER + body)
        with pytest.raises(ExilError, match=message):
            read_arff(bad)
    (tmp_path / "no.arff").write_text("@attribute Text string\n")
    with pytest.raises(ExilError, match="no @data"):
        read_arff(tmp_path / "no.arff")


def fake_weka(root: Path) -> Path:
    examples = root / "usr" / "share" / "doc" / "weka" / "examples"
    examples.mkdir(parents=True)
    for topic in ("Corn", "Grain"):
        for split, n in (("train", 12), ("test", 6)):
            lines = [f"'{topic.upper()} story {i}, it\\'s {'about ' + topic.lower() if i % 3 == 0 else 'other news'}"
                     f"\\n Reuter\\n&#3;',{int(i % 3 == 0)}" for i in range(n)]
            (examples / f"Reuters{topic}-{split}.arff").write_text(HEADER + "\n".join(lines) + "\n")
    return root


def test_fetch_reuters_writes_labelled_jsonl_and_the_datasets_read_it(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "apt_download", lambda name, work: fake_weka(work / name))
    target = tmp_path / "data" / "reuters"
    target.parent.mkdir()
    sources.fetch_reuters(target)
    assert sorted(p.name for p in target.iterdir()) == sorted(sources.REUTERS_FILES)
    rows = [json.loads(line) for line in (target / "grain_train.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and rows[0] == {"id": "train-0", "text": "GRAIN story 0, it's about grain\n Reuter",
                                           "label": "grain"}
    assert [r["label"] for r in rows].count("grain") == 4 and {r["label"] for r in rows} == {"grain", "other"}
    from exil.common.engine import compose

    cfg = compose(["dataset=reuters_corn", f"paths.data_dir={tmp_path / 'data'}"], tmp_path / "run")
    tok = f"file:{tokenizer_folder(tmp_path)}"
    dm = TextDataModule(**{k: v for k, v in cfg.dataset.items() if k != "_target_"} | {"tokenizer": tok, "seed": 0})
    dm.setup()
    assert dm.class_names == ["other", "corn"] and len(dm.pool) == 12 and len(dm.test) == 6
    assert dm.text_of(0) == ("CORN story 0, it's about corn\n Reuter",) and dm.true_label(0) == 1
    assert dm.item_id(1) == "train-1" and dm.true_label(1) == 0


def test_label_map_groups_raw_labels_into_classes(tmp_path):
    folder = tmp_path / "spam_assassin"
    folder.mkdir()
    groups = ["easy-ham-1", "spam-2", "hard-ham-1", "spam-1", "easy-ham-2"] * 4
    with open(folder / "spam_assassin.jsonl", "w") as f:
        for i, g in enumerate(groups):
            f.write(json.dumps({"id": f"m{i}", "group": g, "text": f"mail {i}"}) + "\n")
    from exil.common.engine import compose

    cfg = compose(["dataset=spam_text", f"paths.data_dir={tmp_path}"], tmp_path / "run")
    dm = TextDataModule(**{k: v for k, v in cfg.dataset.items() if k != "_target_"}
                        | {"tokenizer": f"file:{tokenizer_folder(tmp_path)}", "seed": 0, "test_size": 0.25})
    dm.setup()
    assert dm.class_names == ["ham", "spam"]
    truth = {f"mail {i}": int(g.startswith("spam")) for i, g in enumerate(groups)}
    assert all(dm.true_label(i) == truth[dm.text_of(i)[0]] for i in range(len(dm.pool)))
    with pytest.raises(Exception, match="not in dataset.label_names"):
        TextDataModule(**{k: v for k, v in cfg.dataset.items() if k not in ("_target_", "label_map")}
                       | {"tokenizer": f"file:{tokenizer_folder(tmp_path)}", "seed": 0}).setup()
