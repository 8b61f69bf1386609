"""
The config reference in benchmarks/README.md is checked against the schema: every key a config may give (each
section's dataclass, each attack of the registry, each defence type) is documented there, and every documented
default is the schema's.
"""

import dataclasses
import re

import pytest

from art_asr_ext.benchmark.config import schema
from art_asr_ext.benchmark.config.fields import config_key, default_of, has_default, section_keys
from art_asr_ext.benchmark.registry import ATTACKS, DEFENCES, ImperceptibleSettings
from tests.benchmarks.helpers import REPO

README = (REPO / "benchmarks" / "README.md").read_text(encoding="utf-8")
#: The config reference: the sections of benchmarks/README.md that describe the format.
REFERENCE = README[README.index("### Scale-out and memory") : README.index("## Embedded models")]

SECTIONS = {
    "top level": schema.RunSettings,
    "data": schema.DataConfig,
    "targets": schema.TargetConfig,
    "report": schema.ReportConfig,
    "resources": schema.Resources,
    **{f"defences ({key})": spec.settings for key, spec in DEFENCES.items()},
    "estimator.random_init": schema.RandomInitModel,
    **{
        f"attacks.{key}": spec.settings
        for key, spec in ATTACKS.items()
        if not issubclass(spec.settings, ImperceptibleSettings)
    },
}


def _documented(key: str) -> bool:
    return re.search(rf"\b{re.escape(key)}\b", REFERENCE) is not None


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_key_of_the_schema_is_documented(section):
    keys = [key for key in section_keys(SECTIONS[section]) if key != "sample_rate"]
    assert [key for key in keys if not _documented(key)] == [], f"undocumented keys of {section}"


def test_every_attack_and_its_budget_is_documented():
    for key, spec in ATTACKS.items():
        assert _documented(f"{key}:") or _documented(key), key
        assert spec.budget is None or _documented(spec.budget), (key, spec.budget)
    assert "any ImperceptibleASRPyTorch setting" in REFERENCE  # ART's own settings, at ART's defaults


#: Keys whose value in the reference's example is an example (`device: gpu`), not the default.
_EXAMPLE_VALUES = ("name", "device", "batch_size")


def test_documented_defaults_are_the_schemas():
    """A `key: value` of the reference's YAML example that is a scalar default in the schema must match it."""
    block = REFERENCE[REFERENCE.index("```yaml") : REFERENCE.index("```", REFERENCE.index("```yaml") + 7)]
    checked = 0
    for section in (schema.RunSettings, schema.TargetConfig, schema.ReportConfig):
        for field in dataclasses.fields(section):
            if not has_default(field) or default_of(field) is None:
                continue
            found = re.search(rf"\b{config_key(field)}: ([^\s,#}}]+)", block)
            if found is None or field.name in _EXAMPLE_VALUES:
                continue
            checked += 1
            assert str(found.group(1)).lower() == str(default_of(field)).lower(), field.name
    assert checked >= 2
