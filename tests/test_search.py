"""DEM* search: runs, resumes an interrupted study, stores (tau*, alpha*) for `compare --objectives dem*`."""
import optuna
import pytest
from typer.testing import CliRunner

from entmin.bench.config import RunConfig
from entmin.bench.runner import domain_subset
from entmin.bench.store import ResultStore
from entmin.cli import app
from entmin.search import best_dem_params, search_dem


def test_split_is_a_fixed_disjoint_20_80_partition():
    s, h = domain_subset(1000, "search"), domain_subset(1000, "holdout")
    assert len(s) == 200 and len(h) == 800 and not set(s.tolist()) & set(h.tolist())
    assert domain_subset(1000, "search").tolist() == s.tolist()


@pytest.fixture(scope="module")
def base():
    return RunConfig(method="tent", corruptions=("contrast",), n_per_domain=96, batch_size=32)


def test_search_resumes_and_feeds_compare(tmp_path, base, fmnist_test):
    store = ResultStore(tmp_path / "r.sqlite")
    kw = {"cache_dir": str(tmp_path / "cache")}
    res = search_dem(base, store, trials=3, study_path=tmp_path / "study.sqlite", run_kwargs=kw)
    assert 0.1 <= res["tau"] <= 2.0 and 0.0 <= res["alpha"] <= 2.0
    assert res["tau"] <= 2.0 / res["alpha"] + 1e-9 if res["alpha"] > 0 else True
    assert set(res["holdout_accuracy"]) == {"DEM*", "EM", "AdaDEM"}
    # "interrupted" after 3 trials: asking for 5 runs only 2 more, on the same study
    res2 = search_dem(base, store, trials=5, study_path=tmp_path / "study.sqlite", run_kwargs=kw)
    study = optuna.load_study(study_name=res2["study"], storage=f"sqlite:///{tmp_path / 'study.sqlite'}")
    assert len(study.trials) == 5 and res2["trials"] == 5
    assert best_dem_params(store, base)["tau"] == res2["tau"]
    out = CliRunner().invoke(app, ["compare", "--methods", "tent", "--objectives", "dem*", "--protocols", "single",
                                   "--seeds", "1", "--corruptions", "contrast", "--n-per-domain", "96",
                                   "--batch-size", "32", "--store", str(tmp_path / "r.sqlite"),
                                   "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "cache"),
                                   "--device", "cpu"])
    assert out.exit_code == 0, out.output
    assert f"tau={res2['tau']}" in out.output
    # `report` adds the DEM* table from the stored record, with the held-out accuracies of the search
    assert best_dem_params(store, base)["holdout_accuracy"] == res2["holdout_accuracy"]
    rep = CliRunner().invoke(app, ["report", "--store", str(tmp_path / "r.sqlite"), "--out", str(tmp_path / "rep")])
    assert rep.exit_code == 0, rep.output
    row = next(line for line in (tmp_path / "rep" / "dem_star.md").read_text().splitlines()
               if line.startswith("| cnn | single | tent |"))
    assert f"| {res2['tau']:.1f} | {res2['alpha']:.1f} | 5 | 96 | 0.001 |" in row
    assert f"{100 * res2['holdout_accuracy']['AdaDEM']:.1f}" in row


def test_compare_dem_star_without_search_is_a_clear_error(tmp_path):
    out = CliRunner().invoke(app, ["compare", "--methods", "tent", "--objectives", "dem*", "--store",
                                   str(tmp_path / "x.sqlite")])
    assert out.exit_code == 2 and "entmin search" in out.output


def test_search_rejects_invalid_budgets_before_running(tmp_path, base):
    store = ResultStore(tmp_path / "r.sqlite")
    with pytest.raises(ValueError, match="startup_trials must be >= 1"):
        search_dem(base, store, trials=3, startup_trials=0, study_path=tmp_path / "s.sqlite")
    with pytest.raises(ValueError, match="trials must be >= 1"):
        search_dem(base, store, trials=0, study_path=tmp_path / "s.sqlite")
    assert store.get_records("dem*") == {}


def test_dem_star_table_counts_completed_trials_and_shows_the_others_apart():
    """entmin 0.1 counted RUNNING and FAILED trials as trials."""
    from entmin.bench.tables import dem_star_table_markdown

    rec = {"tau": 1.2, "alpha": 0.8, "search_accuracy": 0.5, "trials": 8, "completed_trials": 8,
           "failed_trials": 2, "unfinished_trials": 1, "n_per_domain": 96, "lr": 0.001}
    row = dem_star_table_markdown({"tent:cnn:single:fmnist:abc": rec}).splitlines()[-1]
    assert "| 8 (+2 failed, 1 unfinished) |" in row


def test_a_trial_that_fails_is_not_counted(tmp_path, base, fmnist_test, monkeypatch):
    import entmin.executors as ex

    real = ex.run_experiment
    calls = {"n": 0}

    def flaky(cfg, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2 and cfg.split == "search":
            raise RuntimeError("worker lost")
        return real(cfg, *a, **k)

    monkeypatch.setattr(ex, "run_experiment", flaky)
    res = search_dem(base, ResultStore(tmp_path / "r.sqlite"), trials=3, study_path=tmp_path / "st.sqlite",
                     run_kwargs={"cache_dir": str(tmp_path / "cache")})
    assert res["completed_trials"] == 3 and res["failed_trials"] == 1 and res["trials"] == 3
