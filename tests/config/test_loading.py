"""Run configs: loading, overrides, errors that name the key, relative paths, saving."""

import pytest
import yaml

from tunesmith.config import (
    MonitorConfig,
    apply_overrides,
    load_config,
    override_section,
    save_config,
    validate_config,
)
from tunesmith.errors import ConfigError


def write(tmp_path, data) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_defaults_and_relative_paths(tmp_path):
    config = load_config(write(tmp_path, {"data": {"train": "train.jsonl"}}))
    assert config.method == "lora"
    assert config.train.scheduler == "cosine"
    assert config.data.train == str(tmp_path / "train.jsonl")


def test_unknown_key_names_key_and_nearest(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, {"data": {"train": "a.jsonl"}, "train": {"lerning_rate": 1e-4}}))
    message = str(info.value)
    assert message.startswith("config: train.lerning_rate: unknown key")
    assert "did you mean 'train.learning_rate'?" in message
    assert "\n" not in message


def test_unknown_section(tmp_path):
    with pytest.raises(ConfigError, match=r"config: trian: unknown key.*did you mean 'train'"):
        load_config(write(tmp_path, {"data": {"train": "a.jsonl"}, "trian": {}}))


def test_bad_literal_lists_allowed_values(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, {"data": {"train": "a.jsonl"}}), ["train.scheduler=cosin"])
    assert str(info.value) == (
        "config: train.scheduler: 'cosin' is not allowed; allowed values: 'cosine', 'linear' or 'constant'"
    )


def test_bad_number_names_key(tmp_path):
    with pytest.raises(ConfigError, match=r"^config: train.learning_rate: .*greater than 0"):
        load_config(write(tmp_path, {"data": {"train": "a.jsonl"}}), ["train.learning_rate=-1"])


def test_a_number_or_auto_names_the_key_and_both_choices(tmp_path):
    path = write(tmp_path, {"data": {"train": "a.jsonl"}})
    assert load_config(path).train.epochs == "auto"
    assert load_config(path, ["train.epochs=2", "train.eval_every=5"]).train.epochs == 2.0
    with pytest.raises(ConfigError) as info:
        load_config(path, ["train.epochs=lots"])
    assert str(info.value) == ("config: train.epochs: input should be a valid number, unable to parse string as a "
                               "number, or 'auto' (got 'lots')")
    with pytest.raises(ConfigError, match=r"^config: train.save_every: input should be greater than or equal to 1, "
                                          r"or 'auto' \(got 0\)$"):
        load_config(path, ["train.save_every=0"])


def test_overrides_parse_yaml_values(tmp_path):
    config = load_config(
        write(tmp_path, {"data": {"train": "a.jsonl"}}),
        ["train.learning_rate=1e-4", "lora.target_modules=[q_proj, v_proj]", "train.max_steps=3", "method=full"],
    )
    assert config.train.learning_rate == 1e-4
    assert config.lora.target_modules == ["q_proj", "v_proj"]
    assert config.train.max_steps == 3
    assert config.method == "full"


def test_override_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_overrides({}, ["train.learning_rate"])


def test_data_source_required():
    with pytest.raises(ConfigError, match="set `train`"):
        validate_config({"data": {}})


def test_saved_config_round_trips(tmp_path):
    config = validate_config({"data": {"path": "x.jsonl"}, "train": {"max_steps": 5}})
    save_config(config, tmp_path / "saved.yaml")
    assert validate_config(yaml.safe_load((tmp_path / "saved.yaml").read_text())) == config


def test_source_paths_and_template_files_are_relative_to_the_config(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    config_file = folder / "run.yaml"
    config_file.write_text(yaml.safe_dump({
        "model": {"chat_template": "templates/mine.jinja"},
        "data": {"sources": [{"path": "data/a.jsonl"}, {"path": "/abs/b.jsonl", "weight": 2}]},
    }), encoding="utf-8")
    config = load_config(config_file)
    assert [s.path for s in config.data.sources] == [str(folder / "data" / "a.jsonl"), "/abs/b.jsonl"]
    assert config.model.chat_template == str(folder / "templates" / "mine.jinja")
    config_file.write_text(yaml.safe_dump({"model": {"chat_template": "chatml"}, "data": {"train": "t.jsonl"}}))
    assert load_config(config_file).model.chat_template == "chatml"


def test_every_setting_marked_as_a_path_is_relative_to_the_config(tmp_path):
    config = load_config(write(tmp_path, {"data": {"path": "d/all.jsonl"}, "rag": {"documents": "docs"},
                                          "model": {"chat_template": "/abs/t.jinja"}}))
    assert config.data.path == str(tmp_path / "d" / "all.jsonl") and config.rag.documents == str(tmp_path / "docs")
    assert config.model.chat_template == "/abs/t.jinja" and config.rag.embedding_model == "default"
    config = load_config(write(tmp_path, {"data": {"train": "t.jsonl", "validation": "v.jsonl", "test": "../x.jsonl"}}))
    assert (config.data.validation, config.data.test) == (str(tmp_path / "v.jsonl"), str(tmp_path.parent / "x.jsonl"))
    with pytest.raises(ConfigError, match=r"data\.sources\.0\.path: is required"):
        load_config(write(tmp_path, {"data": {"sources": [{"weight": 2}]}}))


def test_one_section_with_overrides():
    settings = override_section("monitor", MonitorConfig(max_error_rate=0.2), ["monitor.max_p95_latency_s=1.5"])
    assert (settings.max_error_rate, settings.max_p95_latency_s) == (0.2, 1.5)
    assert override_section("monitor", MonitorConfig(), ["monitor.max_error_rate=null"]).max_error_rate is None
    with pytest.raises(ConfigError, match="config: train.epochs: is not a monitor setting"):
        override_section("monitor", MonitorConfig(), ["train.epochs=2"])
    with pytest.raises(ConfigError, match=r"monitor.max_eror_rate: unknown key.*did you mean 'monitor.max_error_rate'"):
        override_section("monitor", MonitorConfig(), ["monitor.max_eror_rate=0.1"])
    with pytest.raises(ConfigError, match="config: monitor.max_error_rate: input should be less than or equal to 1"):
        override_section("monitor", MonitorConfig(), ["monitor.max_error_rate=5"])


@pytest.mark.parametrize(("baselines", "message"), [
    (["tfidf_lr"], "config: evaluate.baselines: 'tfidf_lr': not a baseline; allowed: auto, [] or a list of baselines "
                   "of the task (classification: majority, tfidf_logreg, tfidf_svm; regression: mean, tfidf_ridge)"),
    ("none", "config: evaluate.baselines: 'none': not a baseline; allowed: auto, [] or a list of baselines of the "
             "task (classification: majority, tfidf_logreg, tfidf_svm; regression: mean, tfidf_ridge)"),
    (["mean"], "config: evaluate.baselines: 'mean' is not a classification baseline; allowed for classification: "
               "auto, [] or a list of majority, tfidf_logreg, tfidf_svm"),
])
def test_baselines_must_be_known_and_fit_the_task(tmp_path, baselines, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, {"data": {"train": "a.jsonl"},
                                     "evaluate": {"task": "classification", "baselines": baselines}}))
    assert str(info.value) == message


def test_baselines_resolve_per_task_once_the_task_is_known():
    config = validate_config({"data": {"train": "a.jsonl"}, "evaluate": {"baselines": ["tfidf_svm", "majority"]}})
    assert config.evaluate.baselines_for("classification") == ["tfidf_svm", "majority"]
    with pytest.raises(ConfigError, match="'tfidf_svm', 'majority' is not a regression baseline"):
        config.evaluate.baselines_for("regression")
    auto = validate_config({"data": {"train": "a.jsonl"}}).evaluate
    assert [auto.baselines_for(task) for task in ("classification", "regression", "generation")] == [
        ["majority", "tfidf_logreg"], ["mean", "tfidf_ridge"], []]
    assert validate_config({"data": {"train": "a.jsonl"}, "evaluate": {"baselines": []}}).evaluate.baselines_for(
        "classification") == []


def test_yaml_anchors_and_merge_keys_still_load():
    from tunesmith.config.loading import read_yaml

    text = "base: &b {lr: 1, steps: 2}\nrun: {<<: *b, steps: 3}\nboth: [*b, *b]\n"
    assert read_yaml(text) == {"base": {"lr": 1, "steps": 2}, "run": {"lr": 1, "steps": 3},
                               "both": [{"lr": 1, "steps": 2}] * 2}


@pytest.mark.parametrize(("text", "problem"), [
    ("a: &x [1, *x]\n", "line 1: the alias *x is inside the node &x that it names (a structure that contains itself)"),
    ("a: &x\n  b: {c: *x}\n", "line 2: the alias *x is inside the node &x that it names (a structure that contains "
     "itself)"),
    ("a: " + "[" * 150 + "]" * 150 + "\n", "line 1: nested deeper than 100 levels"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
     "line 5: this value stands for more than 100000 values once its aliases are expanded (an alias bomb?)"),
])
def test_yaml_that_recurses_or_explodes_is_refused_naming_the_file_and_line(tmp_path, text, problem):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"config: {path}, {problem}")


def test_an_undefined_alias_is_still_invalid_yaml_naming_the_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("a: *nowhere\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (f"config: {path} is not valid YAML: found undefined alias 'nowhere' in "
                                 f"\"{path}\", line 1, column 4: a: *nowhere ^")


def test_a_config_file_name_that_is_not_utf8_is_refused(tmp_path):
    import os

    path = tmp_path / os.fsdecode(b"conf\xff.yaml")
    with pytest.raises(ConfigError) as caught:
        load_config(path)  # refused by its name, before it is looked for
    assert str(caught.value) == (f"config: {tmp_path}/conf\\xff.yaml: the file name is not valid UTF-8 (rename the "
                                 "config file (tunesmith records its name in JSON and YAML, which are UTF-8))")
