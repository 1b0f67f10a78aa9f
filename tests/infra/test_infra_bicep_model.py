"""The typed Bicep model and its renderer, checked by parsing what they render."""

from __future__ import annotations

import json

import pytest
from pycep import BicepParser

from infra.bicep_model import Expr, Module, Output, Param, Resource, Template, interp, referenced_symbols
from infra.bicep_render import render_parameters, render_template, render_value

pytestmark = pytest.mark.requirement("REQ-REG-003")


def _parse(template: Template) -> dict:
    return BicepParser().parse(text=render_template(template))


def _storage(**body) -> Resource:
    return Resource("sa", "Microsoft.Storage/storageAccounts", "2023-05-01", {"name": "st", **body})


def test_literals_are_escaped_and_round_trip_through_the_parser():
    tricky = "it's a \\ path ${not-interpolated}"
    t = Template("d", params=(Param("p", "string", "desc", default=tricky),))
    parsed = _parse(t)  # a wrong escape is a syntax error here
    # pycep keeps escape sequences as written: quote, backslash and "${" must all be escaped.
    assert parsed["parameters"]["p"]["default"] == "it\\'s a \\\\ path \\${not-interpolated}"


def test_render_value_types():
    assert render_value(True) == "true"
    assert render_value(None) == "null"
    assert render_value(3) == "3"
    assert render_value([]) == "[]"
    assert render_value({}) == "{}"
    assert render_value({"a-b": 1}) == "{\n  'a-b': 1\n}"
    assert interp("st", Expr("suffix")).text == "'st${suffix}'"


def test_param_decorators_and_existing_resource_render_as_bicep():
    t = Template(
        "d",
        params=(
            Param("env", "string", "Environment.", default="prod", allowed=("dev", "prod")),
            Param("secret", "string", "A secret.", secure=True),
            Param("n", "int", "Count.", default=2, min_value=1, max_value=5),
        ),
        resources=(
            Resource("kv", "Microsoft.KeyVault/vaults", "2023-07-01", {"name": "kv"}, existing=True),
            _storage(location=Expr("resourceGroup().location")),
        ),
        outputs=(Output("id", "string", Expr("sa.id")),),
    )
    parsed = _parse(t)
    env = {d["type"]: d.get("argument") for d in parsed["parameters"]["env"]["decorators"]}
    assert env == {"description": "Environment.", "allowed": ["dev", "prod"]}
    assert {"type": "secure"} in parsed["parameters"]["secret"]["decorators"]
    n = {d["type"]: d.get("argument") for d in parsed["parameters"]["n"]["decorators"]}
    assert n["min_value"] == 1 and n["max_value"] == 5
    assert parsed["resources"]["kv"]["existing"] is True
    assert parsed["resources"]["sa"]["api_version"] == "2023-05-01"


def test_module_renders_and_checks_its_parameters():
    inner = Template("inner", params=(Param("x", "string", "X."),), outputs=(Output("y", "string", Expr("x")),))
    m = Module("mod", "modules/inner.bicep", "inner", {"x": "v"}, inner)
    assert m.output("y").text == "mod.outputs.y"
    with pytest.raises(KeyError):
        m.output("nope")
    parsed = _parse(Template("outer", modules=(m,)))
    assert parsed["modules"]["mod"]["detail"]["path"] == "modules/inner.bicep"
    with pytest.raises(ValueError, match="missing"):
        Template("outer", modules=(Module("mod", "m.bicep", "n", {}, inner),)).validate()
    with pytest.raises(ValueError, match="unknown"):
        Template("outer", modules=(Module("mod", "m.bicep", "n", {"x": "v", "z": 1}, inner),)).validate()


@pytest.mark.parametrize(
    "template, message",
    [
        (Template("d", params=(Param("a", "string", "A."), Param("a", "string", "A."))), "duplicate"),
        (Template("d", params=(Param("e", "string", "E.", default="x", allowed=("y",)),)), "not in allowed"),
        (Template("d", params=(Param("s", "string", "S.", secure=True),),
                  outputs=(Output("leak", "string", Expr("s")),)), "secure"),
        (Template("d", resources=(_storage(location=Expr("nowhere")),)), "undeclared symbol 'nowhere'"),
        (Template("d", params=(Param("bad-name", "string", "B."),)), "identifier"),
    ],
)
def test_validation_rejects_what_bicep_would(template, message):
    with pytest.raises(ValueError, match=message):
        template.validate()


def test_resource_rejects_malformed_api_version_and_skips_without_reason():
    with pytest.raises(ValueError, match="API version"):
        Resource("x", "Microsoft.Storage/storageAccounts", "latest", {"name": "x"})
    with pytest.raises(ValueError, match="reason"):
        _storage().with_skips(("CKV_AZURE_1", "because"))


def test_skips_render_inside_the_resource_as_checkov_comments():
    r = _storage().with_skips(("CKV_AZURE_35", "a reason that is long enough to be real"))
    text = render_template(Template("d", resources=(r,)))
    lines = text.splitlines()
    start = lines.index("resource sa 'Microsoft.Storage/storageAccounts@2023-05-01' = {")
    assert lines[start + 1] == "  // checkov:skip=CKV_AZURE_35: a reason that is long enough to be real"
    BicepParser().parse(text=text)  # still valid Bicep


def test_referenced_symbols_ignore_string_literals_and_property_names():
    assert referenced_symbols(Expr("'kv${suffix}'")) == ["suffix"]
    assert referenced_symbols(Expr("storage.properties.primaryEndpoints.blob")) == ["storage"]
    assert referenced_symbols(Expr("union({ a: env }, tags)")) == ["union", "env", "tags"]


def test_parameters_file_refuses_secure_and_unknown_parameters():
    t = Template("d", params=(Param("a", "string", "A."), Param("s", "string", "S.", secure=True)))
    doc = json.loads(render_parameters(t, {"a": "x"}))
    assert doc["parameters"] == {"a": {"value": "x"}}
    with pytest.raises(ValueError, match="secure"):
        render_parameters(t, {"s": "x"})
    with pytest.raises(ValueError, match="unknown"):
        render_parameters(t, {"b": "x"})
