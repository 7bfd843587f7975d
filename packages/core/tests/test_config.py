"""repro.config: schema defaults, coercion of Snakemake's strings, validation errors that name the key,
paper checks (installed entry points and papers added with ``add_paper``)."""

from __future__ import annotations

import pytest
import yaml

from repro import config as cfg
from repro.errors import ReproError


def write_params(project, data: dict) -> None:
    (project / "params.yaml").write_text(yaml.safe_dump(data))


def test_load_real_params(project):
    config = cfg.load()
    assert config["scale"] == "smoke"
    assert config["papers"] == ["fake"]
    assert config["seeds"] == {"smoke": 3, "paper": 5}
    assert cfg.seeds(config) == [0, 1, 2]
    assert config["datasets"]["sine"]["n_train"] == 200


def test_defaults_filled_from_schema(project):
    write_params(project, {"papers": ["fake"]})
    config = cfg.load()
    assert config["scale"] == "smoke"
    assert config["seeds"] == {"smoke": 3, "paper": 5}
    assert config["datasets"] == {}
    assert config["mlflow"] == {"tracking_uri": None, "artifact_root": None}
    assert config["container"] == "docker://repro:cpu"


def test_default_papers_come_from_the_schema(project):
    assert cfg.schema()["properties"]["papers"]["default"] == ["enkf"]
    write_params(project, {})
    with pytest.raises(ReproError, match=r"unknown paper \(config key 'papers'\) 'enkf'; valid choices: fake"):
        cfg.load()  # the default is filled in, then checked like any other value


def test_nested_defaults_filled(project):
    write_params(project, {"papers": ["fake"], "seeds": {"paper": 7}, "datasets": {"sine": {"noise": 0.2}}})
    config = cfg.load()
    assert config["seeds"] == {"smoke": 3, "paper": 7}
    sine = config["datasets"]["sine"]
    assert sine["noise"] == 0.2
    assert sine["n_train"] == 200 and sine["n_test"] == 200 and sine["seed"] == 1234
    assert "mexican_hat" not in config["datasets"]  # only configured datasets are filled


def test_load_does_not_mutate_overrides_or_share_defaults(project):
    write_params(project, {"papers": ["fake"]})
    a = cfg.load()
    a["seeds"]["smoke"] = 99
    b = cfg.load()
    assert b["seeds"]["smoke"] == 3


def test_overrides_are_validated(project):
    assert cfg.load(overrides={"scale": "paper"})["scale"] == "paper"
    with pytest.raises(ReproError, match="'scale'"):
        cfg.load(overrides={"scale": "huge"})


@pytest.mark.parametrize(
    ("params", "key", "extra"),
    [
        ({"seeds": {"smoke": 2}}, "seeds.smoke", "less than the minimum"),
        ({"seeds": {"smoke": 101}}, "seeds.smoke", "greater than the maximum"),
        ({"seeds": {"smoke": "three"}}, "seeds.smoke", "not of type 'integer'"),
        ({"seeds": {"smoke": 3.5}}, "seeds.smoke", "not of type 'integer'"),
        ({"seeds": 2}, "seeds", "not of type 'object'"),
        ({"datasets": {"sine": {"noise": -1}}}, "datasets.sine.noise", "less than the minimum"),
        ({"datasets": {"sine": {"n_train": 1}}}, "datasets.sine.n_train", "less than the minimum"),
        ({"datasets": {"mexican_hat": {"extent": 0}}}, "datasets.mexican_hat.extent", "minimum"),
        ({"datasets": {"digits": {"test_fraction": 1.0}}}, "datasets.digits.test_fraction", "maximum"),
        ({"datasets": {"sine": {"bogus": 1}}}, "datasets.sine", "'bogus' was unexpected"),
        ({"datasets": {"cifar10": {}}}, "datasets", "'cifar10' was unexpected"),
        ({"scale": "huge"}, "scale", "'huge' is not one of ['smoke', 'paper']"),
        ({"papers": []}, "papers", "should be non-empty"),
        ({"papers": ["fake", "fake"]}, "papers", "non-unique"),
        ({"threads_per_trial": 0}, "threads_per_trial", "less than the minimum"),
        ({"mlflow": {"tracking_uri": 5}}, "mlflow.tracking_uri", "not of type"),
    ],
)
def test_invalid_values_name_the_key(project, params, key, extra):
    write_params(project, {"papers": ["fake"], **params})
    with pytest.raises(ReproError) as info:
        cfg.load()
    msg = str(info.value)
    assert f"config key {key!r}" in msg
    assert extra in msg


def test_unknown_top_level_key(project):
    write_params(project, {"scale": "smoke", "papers": ["fake"], "sede": 3})
    with pytest.raises(ReproError) as info:
        cfg.load()
    assert "'sede' was unexpected" in str(info.value)
    assert "(top level)" in str(info.value)


def test_several_errors_reported_together(project):
    write_params(project, {"scale": "huge", "papers": ["fake"], "seeds": {"smoke": 2}})
    with pytest.raises(ReproError) as info:
        cfg.load()
    assert "'scale'" in str(info.value) and "'seeds.smoke'" in str(info.value)


def test_unknown_paper_lists_valid_choices(project):
    write_params(project, {"papers": ["nope"]})
    with pytest.raises(ReproError) as info:
        cfg.load()
    msg = str(info.value)
    assert "'nope'" in msg and "papers" in msg
    assert msg.endswith("valid choices: fake")  # the added paper; the installed ones are hidden here


def test_paper_added_without_entry_point_is_valid_until_removed(project, fake_paper):
    import dataclasses

    from repro import papers

    other = dataclasses.replace(fake_paper, slug="fake2")
    write_params(project, {"papers": ["fake", "fake2"]})
    with pytest.raises(ReproError, match="'fake2'"):
        cfg.load()
    papers.add_paper(other)
    try:
        assert papers.paper_slugs() == ["fake", "fake2"]
        assert cfg.load()["papers"] == ["fake", "fake2"]
        assert papers.get_paper("fake2") is other
        assert "fake2" not in papers.papers()  # entry points only
    finally:
        papers.remove_paper("fake2")
    with pytest.raises(ReproError, match=r"unknown paper 'fake2'; valid choices: fake"):
        papers.get_paper("fake2")


def test_check_scale_lists_valid_choices():
    from repro.scales import SCALES, check_scale

    assert SCALES == ("smoke", "paper") and cfg.SCALES is SCALES
    assert check_scale("paper") == "paper"
    with pytest.raises(ReproError, match=r"unknown scale 'huge'; valid choices: paper, smoke"):
        check_scale("huge")


# --------------------------------------------------------------------------- coerce (Snakemake's strings)


def test_coerce_turns_snakemake_strings_into_the_schema_types(project):
    # `snakemake --config seeds='{smoke: 10}'` arrives with the nested value as a string.
    coerced = cfg.coerce({"seeds": {"smoke": "10"}}, cfg.schema())
    assert coerced == {"seeds": {"smoke": 10}} and isinstance(coerced["seeds"]["smoke"], int)
    config = cfg.validate({"papers": ["fake"], "seeds": {"smoke": "10"}})
    assert config["seeds"] == {"smoke": 10, "paper": 5}
    assert cfg.seeds(config) == list(range(10))


@pytest.mark.parametrize(("given", "expected"), [
    ({"seeds": "{smoke: 4, paper: 6}"}, {"seeds": {"smoke": 4, "paper": 6}}),  # a whole mapping as a string
    ({"papers": "[fake]"}, {"papers": ["fake"]}),
    ({"threads_per_trial": "2"}, {"threads_per_trial": 2}),
    ({"datasets": {"sine": {"noise": "0.1", "n_train": "30"}}}, {"datasets": {"sine": {"noise": 0.1, "n_train": 30}}}),
    ({"data_mirror": "null"}, {"data_mirror": None}),
    ({"scale": "paper"}, {"scale": "paper"}),  # strings the schema wants stay strings
    ({"container": "10"}, {"container": "10"}),
    ({"unknown_key": "5"}, {"unknown_key": "5"}),  # left for validation to report
])
def test_coerce_cases(project, given, expected):
    assert cfg.coerce(given, cfg.schema()) == expected


def test_coerce_leaves_what_does_not_parse_for_validation(project):
    assert cfg.coerce({"seeds": {"smoke": "ten"}}, cfg.schema()) == {"seeds": {"smoke": "ten"}}
    assert cfg.coerce({"seeds": {"smoke": "3.5"}}, cfg.schema()) == {"seeds": {"smoke": "3.5"}}
    assert cfg.coerce({"seeds": {"smoke": "[unclosed"}}, cfg.schema()) == {"seeds": {"smoke": "[unclosed"}}
    with pytest.raises(ReproError, match=r"config key 'seeds.smoke': 'ten' is not of type 'integer'"):
        cfg.validate({"papers": ["fake"], "seeds": {"smoke": "ten"}})


@pytest.mark.parametrize(("text", "match"), [("scale: [unclosed", "not valid YAML"),
                                            ("- a\n- b\n", "expected a mapping")])
def test_malformed_file(project, text, match):
    (project / "params.yaml").write_text(text)
    with pytest.raises(ReproError, match=match):
        cfg.load()


def test_missing_file(project):
    with pytest.raises(ReproError, match="not found"):
        cfg.load(project / "nope.yaml")


def test_empty_file_is_all_defaults(project):
    (project / "params.yaml").write_text("# nothing\n")
    config = cfg.load(overrides={"papers": ["fake"]})  # the default paper (enkf) is hidden here
    assert config["seeds"] == {"smoke": 3, "paper": 5} and config["scale"] == "smoke"


def test_dataset_params(project):
    config = cfg.load()
    assert cfg.dataset_params(config, "digits") == {"test_fraction": 0.25, "seed": 0}
    assert cfg.dataset_params(config, "mnist") == {}


def test_project_root_from_env_and_cwd(project, monkeypatch, tmp_path):
    from repro import paths

    assert paths.project_root() == project.resolve()
    sub = project / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.delenv("REPRO_ROOT")
    monkeypatch.chdir(sub)
    assert paths.project_root() == project.resolve()  # nearest parent holding params.yaml
    monkeypatch.setenv("REPRO_ROOT", str(tmp_path / "empty"))
    with pytest.raises(ReproError, match="has no params.yaml"):
        paths.project_root()


def test_no_project_root_outside_checkout():
    from repro import paths

    with pytest.raises(ReproError, match="REPRO_ROOT"):
        paths.project_root()
