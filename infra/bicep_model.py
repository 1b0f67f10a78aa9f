"""A small typed model of Bicep.

Only what this project needs, but each piece is a real Bicep concept:
parameters (with description, allowed values, bounds and ``@secure()``),
variables, resources (with their API version, ``existing`` references,
``parent``/``scope``/``dependsOn`` and conditions), modules and outputs,
gathered in a :class:`Template`. :mod:`infra.bicep_render` turns a template
into Bicep text.

Values are plain Python data (``str``, ``int``, ``bool``, ``None``, lists and
dicts, rendered as Bicep literals) or :class:`Expr` (rendered verbatim), so a
template reads like the Bicep it produces and a typo in a symbol name is caught
by :meth:`Template.validate` before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Union

ParamType = Literal["string", "int", "bool", "object", "array"]
TargetScope = Literal["resourceGroup", "subscription"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Expr:
    """A Bicep expression, rendered exactly as written (``storage.id``, ``guid(...)``)."""

    text: str

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("empty Bicep expression")

    def __str__(self) -> str:
        return self.text

    def dot(self, path: str) -> Expr:
        """Property access: ``Expr('kv').dot('properties.vaultUri')`` is ``kv.properties.vaultUri``."""
        return Expr(f"{self.text}.{path}")


Value = Union[str, int, bool, None, Expr, Sequence["Value"], Mapping[str, "Value"]]
"""A Bicep value: a literal (string, int, bool, null, array, object) or an expression."""


def escape(text: str) -> str:
    """Escape a Python string for a single-quoted Bicep string literal."""
    return (
        text.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("${", "\\${")
    )


def interp(*parts: str | Expr) -> Expr:
    """An interpolated string: literal parts are escaped, expressions become ``${...}``.

    >>> interp("st", Expr("suffix")).text
    "'st${suffix}'"
    """
    out = []
    for part in parts:
        out.append(f"${{{part.text}}}" if isinstance(part, Expr) else escape(part))
    return Expr("'" + "".join(out) + "'")


def call(function: str, *args: Value) -> Expr:
    """A function call with rendered arguments, e.g. ``call('guid', storage.id, 'x')``."""
    from .bicep_render import render_inline  # the renderer depends on this module, not the reverse

    return Expr(f"{function}({', '.join(render_inline(a) for a in args)})")


@dataclass(frozen=True)
class Param:
    """A template parameter.

    Attributes:
        name: Parameter name (a Bicep identifier).
        type: Bicep type.
        description: What the parameter means; rendered as ``@description``.
        default: Default value (literal or expression); ``None`` makes it required.
        allowed: Allowed values (``@allowed``).
        secure: Render ``@secure()``; the value never appears in outputs or logs.
        min_length / max_length / min_value / max_value: Bicep bounds decorators.
    """

    name: str
    type: ParamType
    description: str
    default: Value = None
    allowed: tuple[str | int, ...] = ()
    secure: bool = False
    min_length: int | None = None
    max_length: int | None = None
    min_value: int | None = None
    max_value: int | None = None

    @property
    def ref(self) -> Expr:
        """The parameter as an expression."""
        return Expr(self.name)

    @property
    def required(self) -> bool:
        """True when the deployment must supply a value."""
        return self.default is None


@dataclass(frozen=True)
class Variable:
    """A template variable."""

    name: str
    value: Value
    description: str = ""

    @property
    def ref(self) -> Expr:
        """The variable as an expression."""
        return Expr(self.name)


@dataclass(frozen=True)
class Resource:
    """A resource declaration (new or ``existing``).

    Attributes:
        symbol: Symbolic name used by other declarations.
        type: Resource type, e.g. ``Microsoft.Storage/storageAccounts``.
        api_version: API version, e.g. ``2023-05-01``.
        body: The resource body (``name``, ``location``, ``properties``...), in order.
        existing: Reference a resource deployed elsewhere (``existing``).
        description: Rendered as ``@description`` (why the resource exists).
        condition: Deploy only when this expression is true (``= if (...)``).
        skips: Scanner findings accepted for this resource, as ``(check id, reason)``;
            rendered as ``// checkov:skip=ID: reason`` inside the resource so the reason
            travels with the file and shows in every scan report.
    """

    symbol: str
    type: str
    api_version: str
    body: Mapping[str, Value]
    existing: bool = False
    description: str = ""
    condition: Expr | None = None
    skips: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", self.api_version):
            raise ValueError(f"{self.symbol}: malformed API version {self.api_version!r}")
        if "name" not in self.body:
            raise ValueError(f"{self.symbol}: a resource needs a name")
        for check_id, reason in self.skips:
            if not re.fullmatch(r"CKV2?_[A-Z0-9]+_\d+", check_id) or len(reason.strip()) < 20:
                raise ValueError(f"{self.symbol}: skip {check_id!r} needs a check id and a real reason")

    @property
    def ref(self) -> Expr:
        """The resource symbol as an expression."""
        return Expr(self.symbol)

    @property
    def id(self) -> Expr:
        """``<symbol>.id``."""
        return Expr(f"{self.symbol}.id")

    @property
    def name(self) -> Expr:
        """``<symbol>.name``."""
        return Expr(f"{self.symbol}.name")

    def prop(self, path: str) -> Expr:
        """``<symbol>.<path>``, e.g. ``prop('properties.vaultUri')``."""
        return Expr(f"{self.symbol}.{path}")

    def with_skips(self, *skips: tuple[str, str]) -> Resource:
        """A copy of this resource with accepted scanner findings added."""
        return replace(self, skips=self.skips + tuple(skips))


@dataclass(frozen=True)
class Module:
    """A module: another Bicep file deployed as a nested deployment.

    Attributes:
        symbol: Symbolic name.
        path: Relative path of the module file (``modules/x.bicep``).
        name: Deployment name.
        params: Parameter values passed to the module.
        template: The module's own template, written to ``path`` by the build.
        description: Rendered as ``@description``.
    """

    symbol: str
    path: str
    name: Value
    params: Mapping[str, Value]
    template: Template
    description: str = ""

    def output(self, name: str) -> Expr:
        """``<symbol>.outputs.<name>``; the output must exist in the module's template."""
        if name not in {o.name for o in self.template.outputs}:
            raise KeyError(f"module {self.symbol} has no output {name!r}")
        return Expr(f"{self.symbol}.outputs.{name}")


@dataclass(frozen=True)
class Output:
    """A template output."""

    name: str
    type: ParamType
    value: Value
    description: str = ""


@dataclass(frozen=True)
class Template:
    """One Bicep file.

    Attributes:
        description: Rendered as the file's ``metadata description``.
        target_scope: Deployment scope.
        params / variables / resources / modules / outputs: Declarations, rendered in this order.
    """

    description: str
    target_scope: TargetScope = "resourceGroup"
    params: tuple[Param, ...] = ()
    variables: tuple[Variable, ...] = ()
    resources: tuple[Resource, ...] = ()
    modules: tuple[Module, ...] = ()
    outputs: tuple[Output, ...] = ()
    header: str = field(default="")

    def param(self, name: str) -> Param:
        """Look a parameter up by name."""
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def resource(self, symbol: str) -> Resource:
        """Look a resource up by symbol."""
        for r in self.resources:
            if r.symbol == symbol:
                return r
        raise KeyError(symbol)

    def symbols(self) -> list[str]:
        """Every declared symbol, in declaration order."""
        return [
            *(p.name for p in self.params),
            *(v.name for v in self.variables),
            *(r.symbol for r in self.resources),
            *(m.symbol for m in self.modules),
        ]

    def validate(self) -> None:
        """Check what Bicep itself would reject, before anything is written.

        Raises:
            ValueError: A duplicate or malformed name, a default outside the
                allowed values, a module called with unknown or missing
                parameters, or an output reading a secure parameter.
        """
        declared = self.symbols()
        for name in (*declared, *(o.name for o in self.outputs)):
            if not _IDENTIFIER.match(name):
                raise ValueError(f"not a Bicep identifier: {name!r}")
        dupes = {n for n in declared if declared.count(n) > 1}
        if dupes:
            raise ValueError(f"duplicate symbols: {sorted(dupes)}")
        outputs = [o.name for o in self.outputs]
        if len(set(outputs)) != len(outputs):
            raise ValueError("duplicate output names")
        for p in self.params:
            if p.allowed and p.default is not None and not isinstance(p.default, Expr):
                if p.default not in p.allowed:
                    raise ValueError(f"param {p.name}: default {p.default!r} not in allowed values")
            if p.secure and p.type not in ("string", "object"):
                raise ValueError(f"param {p.name}: only string and object parameters can be secure")
        secure = {p.name for p in self.params if p.secure}
        for o in self.outputs:
            used = set(referenced_symbols(o.value))
            if used & secure:
                raise ValueError(f"output {o.name} exposes secure parameter(s) {sorted(used & secure)}")
        for m in self.modules:
            m.template.validate()
            accepted = {p.name for p in m.template.params}
            unknown = set(m.params) - accepted
            missing = {p.name for p in m.template.params if p.required} - set(m.params)
            if unknown or missing:
                raise ValueError(f"module {m.symbol}: unknown params {sorted(unknown)}, missing {sorted(missing)}")
        known = set(declared) | _BUILTINS
        for owner, value in self._all_values():
            for sym in referenced_symbols(value):
                if sym not in known:
                    raise ValueError(f"{owner}: reference to undeclared symbol {sym!r}")

    def _all_values(self) -> Iterable[tuple[str, Value]]:
        for p in self.params:
            if isinstance(p.default, Expr):
                yield f"param {p.name}", p.default
        for v in self.variables:
            yield f"var {v.name}", v.value
        for r in self.resources:
            yield f"resource {r.symbol}", r.body
            if r.condition is not None:
                yield f"resource {r.symbol}", r.condition
        for m in self.modules:
            yield f"module {m.symbol}", m.params
            yield f"module {m.symbol}", m.name
        for o in self.outputs:
            yield f"output {o.name}", o.value


# Functions and namespaces Bicep provides; anything else an expression starts with must be declared.
_BUILTINS = frozenset(
    {
        "az", "sys", "resourceGroup", "subscription", "tenant", "environment", "deployment",
        "guid", "uniqueString", "toLower", "toUpper", "take", "replace", "concat", "format", "string",
        "int", "bool", "empty", "length", "contains", "union", "resourceId", "subscriptionResourceId",
        "tenantResourceId", "extensionResourceId", "reference", "listKeys", "split", "join", "first", "last",
        "true", "false", "null", "if", "for", "in", "substring", "startsWith", "endsWith", "trim",
        "json", "base64", "array", "filter", "map", "items", "range", "min", "max", "coalesce",
    }
)


def referenced_symbols(value: Value) -> list[str]:
    """Symbols an expression (or a structure holding expressions) starts a reference with.

    String literal parts are ignored; property names after a dot are not symbols.
    """
    found: list[str] = []
    if isinstance(value, Expr):
        found.extend(_symbols_in(value.text))
    elif isinstance(value, Mapping):
        for v in value.values():
            found.extend(referenced_symbols(v))
    elif isinstance(value, (list, tuple)):
        for v in value:
            found.extend(referenced_symbols(v))
    return found


def _symbols_in(text: str) -> list[str]:
    # Drop the literal parts of strings but keep what is inside ${...}.
    code = []
    i = 0
    in_string = False
    depth = 0
    while i < len(text):
        c = text[i]
        if in_string:
            if c == "\\":
                i += 2
                continue
            if text.startswith("${", i):
                in_string = False
                depth = 1
                code.append(" ")
                i += 2
                continue
            if c == "'":
                in_string = False
                code.append(" ")
            i += 1
            continue
        if c == "'":
            in_string = True
            code.append(" ")
        elif depth and c == "{":
            depth += 1
            code.append(c)
        elif depth and c == "}":
            depth -= 1
            if depth == 0:
                in_string = True
                code.append(" ")
            else:
                code.append(c)
        else:
            code.append(c)
        i += 1
    cleaned = "".join(code)
    result = []
    for match in re.finditer(r"(?<![A-Za-z0-9_.])([A-Za-z_][A-Za-z0-9_]*)", cleaned):
        # Object keys inside inline objects ("{ a: 1 }") are not symbols.
        rest = cleaned[match.end():].lstrip()
        if rest.startswith(":") and not rest.startswith("::"):
            continue
        result.append(match.group(1))
    return result


__all__ = [
    "Expr",
    "Module",
    "Output",
    "Param",
    "ParamType",
    "Resource",
    "Template",
    "Value",
    "Variable",
    "call",
    "escape",
    "interp",
    "referenced_symbols",
]
