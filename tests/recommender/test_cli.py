"""The ``leadrank`` command as a user runs it: real processes, real files."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recommender.data.simulate import simulate


def leadrank(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``leadrank ARGS`` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "team"
    simulate(out, n_leads=1500, n_reps=8, seed=3)
    return out


@pytest.fixture(scope="module")
def model(team: Path) -> Path:
    out = team.parent / "model"
    res = leadrank("train", team, "--out", out)
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def new_leads(team: Path) -> Path:
    lines = (team / "leads.csv").read_text().splitlines()
    path = team.parent / "new_leads.csv"
    path.write_text("\n".join(lines[:41]) + "\n")
    return path


def test_model_folder_is_versioned(model: Path) -> None:
    manifest = json.loads((model / "manifest.json").read_text())
    for key in (
        "format_version",
        "created_at",
        "data_fingerprint",
        "packages",
        "training_window",
        "metrics",
    ):
        assert key in manifest
    assert not any(p.name.startswith(".") for p in model.parent.iterdir() if p.is_dir())


def test_score_writes_contract_csv(model: Path, new_leads: Path) -> None:
    res = leadrank("score", model, new_leads)
    assert res.returncode == 0, res.stderr
    header = res.stdout.splitlines()[0].split(",")
    assert header[:5] == ["lead_id", "probability", "score", "grade", "reasons"]
    out = rows(res.stdout)
    assert len(out) == 40
    for row in out:
        assert 0.0 < float(row["probability"]) < 1.0
        assert 0 <= int(row["score"]) <= 100
        assert row["grade"] in {"A", "B", "C", "D"}
        assert row["reasons"].count(";") <= 2


def test_route_respects_capacity_and_activity(model: Path, new_leads: Path, tmp_path: Path) -> None:
    reps = tmp_path / "reps.csv"
    reps.write_text("rep_id,capacity,active\nR001,3,true\nR002,2,true\nR003,5,false\n")
    res = leadrank("route", model, new_leads, "--reps", reps, "--seed", "1")
    assert res.returncode == 0, res.stderr
    out = rows(res.stdout)
    assert [r["lead_id"] for r in out] == [r["lead_id"] for r in rows(new_leads.read_text())]
    leads = {r["lead_id"]: r["created_at"][:10] for r in rows(new_leads.read_text())}
    per_day: dict[tuple[str, str], int] = {}
    for r in out:
        assert r["rep_id"] in ("", "R001", "R002")
        if r["rep_id"]:
            key = (r["rep_id"], leads[r["lead_id"]])
            per_day[key] = per_day.get(key, 0) + 1
    caps = {"R001": 3, "R002": 2}
    assert all(n <= caps[rep] for (rep, _), n in per_day.items())
    unassigned = [r for r in out if not r["rep_id"]]
    assert all(r["lead_id"] in res.stderr for r in unassigned)
    assert "warning" not in res.stderr


def test_route_warns_when_the_model_knows_none_of_the_reps(
    model: Path, new_leads: Path, tmp_path: Path
) -> None:
    # A new-user trial routed X Education's model (no reps) over Maven's agents silently.
    reps = tmp_path / "reps.csv"
    reps.write_text("rep_id,capacity,active\nOTHER-1,50,true\nOTHER-2,50,true\n")
    res = leadrank("route", model, new_leads, "--reps", reps, "--seed", "1")
    assert res.returncode == 0, res.stderr
    assert "knows none of the 2 reps" in res.stderr
    assert {r["rep_id"] for r in rows(res.stdout)} <= {"OTHER-1", "OTHER-2"}


def test_recommend_and_lookalike(model: Path, new_leads: Path, team: Path) -> None:
    res = leadrank("recommend", model, "--rep", "R002", new_leads, "--k", "5")
    assert res.returncode == 0, res.stderr
    out = rows(res.stdout)
    assert len(out) == 5
    probs = [float(r["probability"]) for r in out]
    assert probs == sorted(probs, reverse=True)
    bad = leadrank("recommend", model, "--rep", "NOBODY", new_leads)
    assert bad.returncode == 2 and "NOBODY" in bad.stderr
    seed = rows((team / "accounts.csv").read_text())[0]["account_id"]
    res = leadrank("lookalike", model, "--seeds", seed, "--k", "7")
    assert res.returncode == 0, res.stderr
    out = rows(res.stdout)
    assert res.stdout.startswith("account_id,similarity")
    assert len(out) == 7 and seed not in {r["account_id"] for r in out}
    bad = leadrank("lookalike", model, "--seeds", "NO-SUCH-ACCOUNT")
    assert bad.returncode == 2 and "NO-SUCH-ACCOUNT" in bad.stderr
    assert "warning" not in res.stderr


def test_lookalike_warns_when_the_icp_space_is_one_point(model: Path, tmp_path: Path) -> None:
    # A new-user trial on Maven CRM: the lead score found no signal, every account got
    # similarity 0.0 in alphabetical order, and nothing said so.
    import numpy as np

    from recommender.lookalike import LookalikeIndex
    from recommender.pipeline import ModelBundle, save_bundle

    bundle = ModelBundle.load(model)
    ids = list(bundle.lookalike_index.ids_)  # type: ignore[union-attr]
    flat = np.zeros((len(ids), 8), dtype=np.float32)
    bundle.lookalike_index = LookalikeIndex(n_threads=1).fit(ids, flat)
    assert bundle.lookalike_warning() is not None
    save_bundle(bundle, tmp_path / "flat")
    res = leadrank("lookalike", tmp_path / "flat", "--seeds", ids[0], "--k", "3")
    assert res.returncode == 0, res.stderr
    assert "warning" in res.stderr and "same point" in res.stderr


def test_duplicate_lead_fails_with_exit_2_and_writes_nothing(team: Path, tmp_path: Path) -> None:
    data = tmp_path / "dup"
    shutil.copytree(team, data)
    lines = (data / "leads.csv").read_text().splitlines()
    lines[6] = lines[2].split(",", 1)[0] + "," + lines[6].split(",", 1)[1]  # row 7 repeats row 3
    (data / "leads.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "model"
    res = leadrank("train", data, "--out", out)
    assert res.returncode == 2
    assert "leads.csv" in res.stderr and "row 7" in res.stderr and "lead_id" in res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["dup"]


def test_bad_model_folder_is_exit_2(tmp_path: Path, new_leads: Path) -> None:
    res = leadrank("score", tmp_path / "no-model", new_leads)
    assert res.returncode == 2 and "not found" in res.stderr


def test_every_command_has_help_with_an_example() -> None:
    for cmd in (
        "train",
        "evaluate",
        "score",
        "route",
        "recommend",
        "lookalike",
        "serve",
        "simulate",
        "demo",
    ):
        res = leadrank(cmd, "--help")
        assert res.returncode == 0, cmd
        assert "Example" in res.stdout, cmd


def test_train_takes_engine_and_crosses_and_names_a_bad_value(team: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    done = leadrank("train", team, "--out", out, "--engine", "pair", "--crosses", "firmographic")
    assert done.returncode == 0, done.stderr
    config = json.loads((out / "manifest.json").read_text())["config"]
    assert (config["affinity_engine"], config["affinity_crosses"]) == ("pair", "firmographic")
    bad = leadrank("train", team, "--out", tmp_path / "x", "--crosses", "some")
    assert bad.returncode == 2
    assert "--crosses must be one of none, firmographic, all" in bad.stderr
    assert not (tmp_path / "x").exists()


def test_affinity_features_reads_only_the_account_columns(team: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    done = leadrank("train", team, "--out", out, "--engine", "lowrank",
                    "--affinity-features", "firmographic")  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = json.loads((out / "manifest.json").read_text())["config"]
    assert config["affinity_features"] == "firmographic"
    from recommender.pipeline import ModelBundle

    bundle = ModelBundle.load(out)
    read = {column["name"] for column in bundle.encoder.to_dict()["columns"]}
    accounts = {f.name for f in bundle.features if f.origin == "account"}
    assert read == accounts and "source" not in read
    every = tmp_path / "all"  # the non-default value, so a dropped option shows
    done = leadrank("train", team, "--out", every, "--affinity-features", "all")
    assert done.returncode == 0, done.stderr
    read_all = {c["name"] for c in ModelBundle.load(every).encoder.to_dict()["columns"]}
    assert "source" in read_all and accounts < read_all
    bad = leadrank("train", team, "--out", tmp_path / "x", "--affinity-features", "some")
    assert bad.returncode == 2
    assert "--affinity-features must be one of all, firmographic" in bad.stderr


def test_affinity_bins_cut_company_size_at_powers_of_ten(team: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    done = leadrank("train", team, "--out", out, "--affinity-bins", "magnitude")
    assert done.returncode == 0, done.stderr
    config = json.loads((out / "manifest.json").read_text())["config"]
    assert config["affinity_bins"] == "magnitude"
    from recommender.pipeline import ModelBundle

    columns = {c["name"]: c for c in ModelBundle.load(out).encoder.to_dict()["columns"]}
    edges = columns["employees"]["edges"]
    assert edges and all(e == 10 ** round(np.log10(e)) for e in edges)
    quant = tmp_path / "q"  # the non-default value, so a dropped option shows
    done = leadrank("train", team, "--out", quant, "--affinity-bins", "quantile")
    assert done.returncode == 0, done.stderr
    assert (
        json.loads((quant / "manifest.json").read_text())["config"]["affinity_bins"] == "quantile"
    )
    q_columns = {c["name"]: c for c in ModelBundle.load(quant).encoder.to_dict()["columns"]}
    assert q_columns["employees"]["edges"] != edges
    bad = leadrank("train", team, "--out", tmp_path / "x", "--affinity-bins", "log")
    assert bad.returncode == 2
    assert "--affinity-bins must be one of quantile, magnitude" in bad.stderr
    assert not (tmp_path / "x").exists()


def test_affinity_option_defaults_are_the_config_defaults() -> None:
    from recommender.cli import BINS_DEFAULT, CROSSES_DEFAULT, ENGINE_DEFAULT, FEATURES_DEFAULT
    from recommender.config import TrainConfig

    cfg = TrainConfig()
    assert cfg.affinity_crosses == CROSSES_DEFAULT
    assert cfg.affinity_engine == ENGINE_DEFAULT
    assert cfg.affinity_features == FEATURES_DEFAULT
    assert cfg.affinity_bins == BINS_DEFAULT


def test_demo_lead_is_a_lead_like_one_that_was_won(tmp_path: Path) -> None:
    from service.cli_support import demo_lead

    (tmp_path / "leads.csv").write_text(
        "lead_id,created_at,source\nL1,2026-01-01,cold_list\nL2,2026-01-02,referral\n"
    )
    assert demo_lead(tmp_path) == {
        "lead_id": "DEMO-0001",
        "created_at": "2026-01-01",
        "source": "cold_list",
    }  # no outcomes: the first lead
    (tmp_path / "outcomes.csv").write_text("lead_id,rep_id,outcome\nL1,R1,lost\nL2,R1,won\n")
    assert demo_lead(tmp_path)["source"] == "referral"


def test_train_never_writes_its_model_over_something_else(team: Path, tmp_path: Path) -> None:
    # Writing a model replaces its folder whole: over the dataset itself, a file or a
    # folder of one's own it refuses (exit 2) before training, and deletes nothing.
    data = tmp_path / "data"
    shutil.copytree(team, data)
    before = sorted(p.name for p in data.iterdir())
    res = leadrank("train", data, "--out", data)
    assert res.returncode == 2 and "no model" in res.stderr, res.stderr
    assert sorted(p.name for p in data.iterdir()) == before
    note = tmp_path / "notes.txt"
    note.write_text("mine")
    res = leadrank("train", data, "--out", note)
    assert res.returncode == 2 and "is a file" in res.stderr, res.stderr
    assert note.read_text() == "mine"
    (tmp_path / "empty").mkdir()
    assert leadrank("train", data, "--out", tmp_path / "empty").returncode == 0
    again = leadrank("train", data, "--out", tmp_path / "empty")  # an older model: replaced
    assert again.returncode == 0, again.stderr


def test_serve_a_folder_that_is_no_model_is_a_clear_error(team: Path, tmp_path: Path) -> None:
    # exit 2 and one line, before any server starts (it was exit 3 and a traceback)
    for folder in (tmp_path / "missing", team):
        res = leadrank("serve", folder, "--db", f"sqlite:///{tmp_path / 's.db'}", "--port", "1")
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr


def test_train_without_outcomes_is_bad_input(team: Path, tmp_path: Path) -> None:
    # the contract makes outcomes.csv required for training: without it every lead read
    # as not converted and training wrote a model that scored every lead alike
    data = tmp_path / "data"
    shutil.copytree(team, data)
    (data / "outcomes.csv").unlink()
    res = leadrank("train", data, "--out", tmp_path / "model")
    assert res.returncode == 2 and "outcomes.csv" in res.stderr, res.stderr
    assert not (tmp_path / "model").exists()


def test_evaluate_json_into_a_missing_folder_is_bad_input(team: Path, tmp_path: Path) -> None:
    # exit 2 before the evaluation runs (it was exit 1 after the report was printed)
    res = leadrank(
        "evaluate", team, "--split-time", "2026-09-01", "--json", tmp_path / "no" / "r.json"
    )
    assert res.returncode == 2 and "--json" in res.stderr, res.stderr
    assert res.stdout == ""


def test_bad_accounts_option_names_that_file(model: Path, new_leads: Path, tmp_path: Path) -> None:
    # as --reps and --events do: the file the user named, not the dataset's accounts.csv
    newer = tmp_path / "accounts-2026-12.csv"
    newer.write_text("account_id,industry\nA1,retail\nA1,software\n")
    res = leadrank("score", model, new_leads, "--accounts", newer)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("leadrank: accounts-2026-12.csv, row 3"), res.stderr
