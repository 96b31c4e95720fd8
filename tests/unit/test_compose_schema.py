"""docker-compose.yml against the Compose specification's JSON schema.

No Docker runs here, so ``docker compose config`` cannot check the file; the schema is the one the
Compose implementations validate with, as check-jsonschema ships it (``vendor.compose-spec``).
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(resources.files("check_jsonschema.builtin_schemas.vendor")
                        .joinpath("compose-spec.json").read_text())
    assert "draft-07" in schema["$schema"]  # written without the trailing "#" jsonschema looks up by
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_docker_compose_file_follows_the_compose_specification(
        validator: jsonschema.protocols.Validator, compose: dict[str, Any]) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("break_it", [
    lambda c: c["services"]["stream"].update(restart_policy="always"),  # not a service field
    lambda c: c["services"]["redis"].update(ports="6379:6379"),  # must be a list
    lambda c: c["services"]["kafka"]["healthcheck"].update(command="true"),  # healthcheck has `test`
])
def test_the_schema_check_catches_a_broken_file(
        validator: jsonschema.protocols.Validator, compose: dict[str, Any], break_it: Any) -> None:
    broken = copy.deepcopy(compose)
    break_it(broken)
    assert list(validator.iter_errors(broken)), "a mistake the schema should reject passed"
