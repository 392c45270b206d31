"""Runbooks: the YAML model, the loader (file:line errors), typed parameters and the library.

A runbook file::

    name: restart-service
    description: Restart a systemd service and check it came back
    owner: platform
    params:
      service: {type: string, required: true, pattern: '^[a-z0-9@._-]+$'}
      count: {type: int, default: 3, min: 1, max: 10}
      mode: {type: choice, choices: [soft, hard], default: soft}
      hosts: {type: hosts, default: web}
      token: {type: string, secret: true}
    targets: "{{ params.hosts }}"
    strategy: {rolling: {batch: 1, max_fail_percentage: 0}}   # or: parallel
    steps: [...]
    verify: [...]
    on_failure: [...]

Step kinds (exactly one per step): ``run``, ``script``, ``copy``, ``http``, ``wait``,
``check``, ``approval``, ``runbook``; per step ``when``, ``retries``/``delay``,
``timeout``, ``register``, ``ignore_errors``, ``changed_when``, ``failed_when``.

Errors: :func:`load_runbook` raises :class:`~watchkeeper.errors.ConfigError` whose
issues read ``restart.yaml:12: steps[1].retries: 'x': Input should be a valid
integer``; :func:`validate_params` raises :class:`ParamError` naming the
parameter and what it allows; :meth:`RunbookLibrary.get` raises
:class:`~watchkeeper.errors.NotFoundError` with a did-you-mean.
"""

from __future__ import annotations

import builtins
import difflib
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from watchkeeper.automation import templates
from watchkeeper.config.types import Duration, StrictModel
from watchkeeper.config.yamlsource import Located, Path_, format_path, read_yaml
from watchkeeper.errors import ConfigError, ConfigIssue, InputError, NotFoundError

__all__ = ["ApprovalSpec", "CopySpec", "HttpSpec", "ParamError", "ParamSpec", "Runbook",
           "RunbookCall", "RunbookLibrary", "ScriptSpec", "Step", "Strategy", "WaitSpec",
           "STEP_KINDS", "load_runbook", "masked_params", "validate_params"]

STEP_KINDS = ("run", "script", "copy", "http", "wait", "check", "approval", "runbook")
PARAM_TYPES = ("string", "int", "bool", "choice", "hosts")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ParamError(InputError):
    """A runbook parameter is unknown, missing, or of the wrong type."""


# ---------------------------------------------------------------- parameters

class ParamSpec(StrictModel):
    """One typed parameter. ``hosts`` is a host pattern (``web:!web3``, ``label:role=db``)."""

    type: Literal["string", "int", "bool", "choice", "hosts"] = "string"
    description: str = ""
    required: bool = False
    default: Any = None
    choices: list[str] | None = None
    pattern: str | None = None
    min: int | None = None
    max: int | None = None
    secret: bool = False

    @field_validator("type", mode="before")
    @classmethod
    def _alias(cls, v: Any) -> Any:
        return {"host_pattern": "hosts", "host": "hosts", "str": "string", "integer": "int",
                "boolean": "bool"}.get(v, v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        if self.type == "choice" and not self.choices:
            raise ValueError("choices: a choice parameter needs a list of choices")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern: not a regular expression: {exc}") from None
        if self.default is not None:
            try:
                coerce_param("default", self, self.default)
            except ParamError as exc:
                raise ValueError(f"default: {exc.message.split(': ', 1)[1]}") from None
        return self

    def allowed(self) -> str:
        """What values this parameter takes, in words (for error messages)."""
        if self.type == "int":
            lo = "" if self.min is None else f" >= {self.min}"
            hi = "" if self.max is None else f" <= {self.max}"
            return "a whole number" + (lo + (" and" if lo and hi else "") + hi if lo or hi else "")
        if self.type == "bool":
            return "true or false (also yes/no, 1/0)"
        if self.type == "choice":
            return "one of: " + ", ".join(self.choices or [])
        if self.type == "hosts":
            return "a host pattern such as web, web:!web3 or label:role=db"
        if self.pattern:
            return f"text matching {self.pattern!r}"
        return "text"


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def coerce_param(name: str, spec: ParamSpec, value: Any) -> Any:
    """``value`` as the parameter's type (strings from a command line or alert labels are parsed).

    Raises ParamError naming the parameter and what it allows.
    """
    def bad(why: str = "") -> ParamError:
        return ParamError(f"param {name!r}: {value!r} is not {spec.allowed()}{why}")

    if spec.type == "int":
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int):
            out = value
        elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            out = int(value)
        else:
            raise bad()
        if (spec.min is not None and out < spec.min) or (spec.max is not None and out > spec.max):
            raise bad()
        return out
    if spec.type == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise bad()
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise bad()
    text = str(value)
    if spec.type == "choice":
        if text not in (spec.choices or []):
            close = difflib.get_close_matches(text, spec.choices or [], n=1)
            raise bad(f"; did you mean {close[0]!r}?" if close else "")
        return text
    if spec.type == "hosts":
        if not text.strip():
            raise bad()
        return text
    if spec.pattern is not None and not re.fullmatch(spec.pattern, text):
        raise bad()
    return text


def validate_params(runbook: Runbook, given: Mapping[str, Any]) -> dict[str, Any]:
    """Check and convert the parameters for one run: defaults filled in, types enforced.

    Raises ParamError listing every unknown, missing or ill-typed parameter.
    """
    problems: list[str] = []
    out: dict[str, Any] = {}
    known = sorted(runbook.params)
    for key in given:
        if key not in runbook.params:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"unknown param {key!r}{hint} (params of {runbook.name}: "
                            f"{', '.join(known) or 'none'})")
    for name, spec in runbook.params.items():
        if name in given and given[name] is not None:
            try:
                out[name] = coerce_param(name, spec, given[name])
            except ParamError as exc:
                problems.append(exc.message)
        elif spec.default is not None:
            out[name] = coerce_param(name, spec, spec.default)
        elif spec.required:
            problems.append(f"param {name!r} is required ({spec.allowed()})")
        else:
            out[name] = None
    if problems:
        raise ParamError("; ".join(problems) if len(problems) == 1 else
                         f"{len(problems)} problems with the params of {runbook.name}:\n  "
                         + "\n  ".join(problems))
    return out


def masked_params(runbook: Runbook, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with secret parameters replaced by ``***`` (for records and logs)."""
    return {k: ("***" if k in runbook.params and runbook.params[k].secret and v is not None else v)
            for k, v in values.items()}


# ---------------------------------------------------------------- step kinds

class ScriptSpec(StrictModel):
    """Upload a script (a file next to the runbook, or inline ``content``) and run it."""

    src: str | None = None
    content: str | None = None
    args: str = ""
    interpreter: str = "/bin/sh"

    @model_validator(mode="after")
    def _one(self) -> ScriptSpec:
        if (self.src is None) == (self.content is None):
            raise ValueError("give exactly one of src (a file) or content (inline text)")
        return self


class CopySpec(StrictModel):
    """Put a file on the host: ``src`` (a file), ``content`` (inline) or ``template`` (Jinja2 file).

    Only written when the content (sha256) differs; ``mode``/``owner``/``group``
    are set when they differ. ``diff`` shows the change in the run record.
    """

    dest: str
    src: str | None = None
    content: str | None = None
    template: str | None = None
    mode: str | None = None
    owner: str | None = None
    group: str | None = None
    diff: bool = True

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            # YAML 1.1 reads 0640 as the number 416 and 640 as 640: the intent is lost
            raise ValueError(f"{v}: write file modes in quotes, like '0640' (YAML reads an "
                             f"unquoted 0640 as the number 416)")
        if isinstance(v, str) and not re.fullmatch(r"0?[0-7]{3,4}", v):
            raise ValueError(f"{v!r} is not a file mode; write it as '0644'")
        return v

    @model_validator(mode="after")
    def _one(self) -> CopySpec:
        given = [k for k in ("src", "content", "template") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of src (a file), content (inline text) or "
                             "template (a Jinja2 file)")
        return self

    @property
    def mode_int(self) -> int:
        return int(self.mode, 8) if self.mode else 0o644


Probe = Literal["watchkeeper", "target"]
"""Where a ``wait``/``http`` probe runs: from watchkeeper (default) or on the target host."""


def _regex(v: str | None) -> str | None:
    if v is not None:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"{v!r} is not a regular expression: {exc}") from None
    return v


class HttpSpec(StrictModel):
    """An HTTP request; fails unless the status is one of ``status`` (and the body matches ``match``).

    ``from: watchkeeper`` (default) makes the request from watchkeeper; ``from: target``
    makes it on the target host through its executor (python3, else curl, else wget there),
    so a service bound to the target's loopback or behind its firewall can be reached.
    ``verify: false`` turns TLS certificate checking off. ``match`` is a regular
    expression (Python syntax) searched for in the response body.
    """

    url: str
    method: str = "GET"
    status: list[int] = Field(default_factory=lambda: [200])
    body: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Duration = 10.0
    match: str | None = None
    verify: bool = True
    from_: Probe = Field(default="watchkeeper", alias="from")

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) else v

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z]+", v):
            raise ValueError(f"{v!r} is not an HTTP method (letters only, e.g. GET, POST)")
        return v.upper()

    @field_validator("match")
    @classmethod
    def _match(cls, v: str | None) -> str | None:
        return _regex(v)


class WaitSpec(StrictModel):
    """Wait for a TCP port, an HTTP status, a check to pass, or simply a duration.

    ``tcp`` is ``PORT`` or ``HOST:PORT``. Probes are made every ``interval``, up to
    ``timeout``: from watchkeeper by default (``PORT`` alone means the target host's
    address), or with ``from: target`` (``tcp`` and ``http`` only) on the target host
    itself, in one remote loop through its executor (``PORT`` alone means
    127.0.0.1 there). ``verify: false`` turns TLS certificate checking off for ``http``.
    """

    tcp: str | None = None
    http: str | None = None
    status: list[int] = Field(default_factory=lambda: [200])
    check: str | None = None
    duration: Duration | None = None
    timeout: Duration = 60.0
    interval: Duration = 1.0
    verify: bool = True
    from_: Probe = Field(default="watchkeeper", alias="from")

    @field_validator("tcp", mode="before")
    @classmethod
    def _tcp(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) else v

    @model_validator(mode="after")
    def _one(self) -> WaitSpec:
        given = [k for k in ("tcp", "http", "check", "duration") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of tcp, http, check or duration")
        if self.from_ == "target" and given[0] not in ("tcp", "http"):
            raise ValueError(f"from: target applies to tcp and http waits, not {given[0]}")
        return self


class ApprovalSpec(StrictModel):
    """Pause the run until someone with ``role`` approves (or rejects) it, for up to ``timeout``."""

    role: str | None = None
    message: str = ""
    timeout: Duration = 3600.0


class RunbookCall(StrictModel):
    """Run another runbook on the current host, recorded as a child run."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class Step(StrictModel):
    """One step: exactly one kind, plus the controls every step has."""

    name: str
    run: str | None = None
    script: ScriptSpec | None = None
    copy_: CopySpec | None = Field(default=None, alias="copy")
    http: HttpSpec | None = None
    wait: WaitSpec | None = None
    check: str | None = None
    approval: ApprovalSpec | None = None
    runbook: RunbookCall | None = None
    when: str | None = None
    retries: int = Field(default=0, ge=0, le=100)
    delay: Duration = 1.0
    timeout: Duration | None = None
    register_: str | None = Field(default=None, alias="register")
    ignore_errors: bool = False
    changed_when: str | None = None
    failed_when: str | None = None

    model_config = {"extra": "forbid", "frozen": True, "populate_by_name": True}

    @field_validator("script", mode="before")
    @classmethod
    def _script(cls, v: Any) -> Any:
        if isinstance(v, str):
            return {"content": v} if "\n" in v else {"src": v}
        return v

    @field_validator("http", mode="before")
    @classmethod
    def _http(cls, v: Any) -> Any:
        return {"url": v} if isinstance(v, str) else v

    @field_validator("runbook", mode="before")
    @classmethod
    def _runbook(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @field_validator("approval", mode="before")
    @classmethod
    def _approval(cls, v: Any) -> Any:
        return {} if v is True else v

    @field_validator("when", "changed_when", "failed_when", mode="before")
    @classmethod
    def _expr(cls, v: Any) -> Any:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):  # Ansible style: all must hold
            return " and ".join(f"({x})" for x in v)
        return v

    @field_validator("register_")
    @classmethod
    def _register(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError(f"{v!r} is not a name; use letters, digits and _")
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = self.kinds()
        if len(kinds) != 1:
            what = "no step kind" if not kinds else "more than one step kind (" + ", ".join(kinds) + ")"
            raise ValueError(f"step {self.name!r} has {what}; give exactly one of "
                             + ", ".join(STEP_KINDS))
        return self

    def kinds(self) -> list[str]:
        return [k for k in STEP_KINDS if getattr(self, "copy_" if k == "copy" else k) is not None]

    @property
    def kind(self) -> str:
        return self.kinds()[0]

    @property
    def key(self) -> str:
        """The name registered results go under (``steps.KEY``)."""
        return self.register_ or re.sub(r"\W", "_", self.name)


class Strategy(StrictModel):
    """``parallel`` (every host at once, up to the executor's forks) or ``rolling``."""

    kind: Literal["parallel", "rolling"] = "parallel"
    batch: int | str = 1
    max_fail_percentage: float = Field(default=0.0, ge=0, le=100)

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, v: Any) -> Any:
        if isinstance(v, str):
            return {"kind": v}
        if isinstance(v, dict) and len(v) == 1 and next(iter(v)) in ("parallel", "rolling"):
            kind, body = next(iter(v.items()))
            body = body or {}
            if not isinstance(body, dict):
                raise ValueError(f"{kind}: must be a mapping (batch, max_fail_percentage)")
            return {"kind": kind, **body}
        return v

    @field_validator("batch")
    @classmethod
    def _batch(cls, v: int | str) -> int | str:
        if isinstance(v, int):
            if v < 1:
                raise ValueError(f"batch {v} must be at least 1")
            return v
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*", v)
        if not m or not 0 < float(m.group(1)) <= 100:
            raise ValueError(f"batch {v!r} must be a number of hosts or a percentage like 25%")
        return v

    def batch_size(self, hosts: int) -> int:
        """Hosts per batch for ``hosts`` targets (a percentage rounds up; at least 1)."""
        if self.kind == "parallel":
            return max(hosts, 1)
        if isinstance(self.batch, int):
            return self.batch
        pct = float(self.batch.strip().rstrip("%").strip())
        return max(1, math.ceil(hosts * pct / 100))


class Runbook(StrictModel):
    """A validated runbook. ``path`` is the file it came from (None when built in code)."""

    name: str
    description: str = ""
    owner: str = ""
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    targets: str = "localhost"
    strategy: Strategy = Field(default_factory=Strategy)
    vars: dict[str, Any] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)
    verify: list[Step] = Field(default_factory=list)
    on_failure: list[Step] = Field(default_factory=list)
    _path: Path | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(f"{v!r} is not a runbook name; use letters, digits, '-', '_' and '.'")
        return v

    @field_validator("params")
    @classmethod
    def _param_names(cls, v: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        for key in v:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"{key}: {key!r} is not a parameter name; use letters, digits and _")
        return v

    @model_validator(mode="after")
    def _unique(self) -> Runbook:
        for phase in ("steps", "verify", "on_failure"):
            seen: dict[str, int] = {}
            for i, step in enumerate(getattr(self, phase)):
                if step.name in seen:
                    raise ValueError(f"{phase}[{i}].name: duplicate step name {step.name!r} "
                                     f"(also {phase}[{seen[step.name]}])")
                seen[step.name] = i
        return self

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def base_dir(self) -> Path:
        return self._path.parent if self._path else Path.cwd()

    def phases(self) -> list[tuple[str, list[Step]]]:
        return [("steps", self.steps), ("verify", self.verify), ("on_failure", self.on_failure)]

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "owner": self.owner,
                "targets": self.targets, "strategy": self.strategy.model_dump(),
                "params": {k: p.model_dump(exclude_defaults=True) | {"type": p.type}
                           for k, p in self.params.items()},
                "steps": [s.name for s in self.steps], "verify": [s.name for s in self.verify],
                "on_failure": [s.name for s in self.on_failure],
                "path": str(self._path) if self._path else None}


# ---------------------------------------------------------------- loading

_OWN_PATH = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\])*(?:\.[A-Za-z_]\w*(?:\[\d+\])*)*): (.*)$", re.DOTALL)


def _model_for(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    current: Any = Runbook
    for part in loc:
        if current is Runbook and part in ("steps", "verify", "on_failure"):
            current = list
            continue
        if current is list:
            current = Step
            continue
        if current is Runbook and part == "params":
            current = dict
            continue
        if current is dict:
            current = ParamSpec
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                field = next((f for f in current.model_fields.values() if f.alias == part), None)
            if field is None:
                return None
            ann = field.annotation
            args = [a for a in getattr(ann, "__args__", ()) if isinstance(a, type)
                    and issubclass(a, BaseModel)]
            current = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else (
                args[0] if args else None)
            continue
        return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _describe_value(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "empty"
    return repr(value)


def _issue(err: Any, located: Located) -> ConfigIssue:
    loc: Path_ = tuple({"copy_": "copy", "register_": "register"}.get(p, p) if isinstance(p, str)
                       else p for p in err["loc"])
    kind = err["type"]
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if kind == "extra_forbidden":
        model = _model_for(loc[:-1])
        allowed = sorted(f.alias or n for n, f in model.model_fields.items()) if model else []
        if model is Strategy:
            allowed = ["batch", "max_fail_percentage"]
        key = str(loc[-1])
        close = difflib.get_close_matches(key, allowed, n=1)
        msg = f"unknown key {key!r}" + (f"; did you mean {close[0]!r}?" if close else "")
        if allowed:
            msg += f" (allowed: {', '.join(allowed)})"
    elif kind == "missing":
        msg = "required key is missing"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        msg = f"must be a mapping of keys, not {_describe_value(err.get('input'))}"
    elif kind == "list_type":
        msg = f"must be a list, not {_describe_value(err.get('input'))}"
    elif kind == "literal_error" and loc and loc[-1] == "type":
        msg = f"{err.get('input')!r} is not a parameter type (allowed: {', '.join(PARAM_TYPES)})"
    elif kind not in ("value_error", "duration", "duration_min") and "input" in err \
            and not isinstance(err["input"], (dict, list)):
        msg = f"{err['input']!r}: {msg}"
    path = format_path(loc)
    own = _OWN_PATH.match(msg) if kind == "value_error" else None
    if own and not own.group(1)[0].isupper():
        sub = own.group(1)
        full_loc = loc + _parse_path(sub)
        if located.lines.get(full_loc) is not None or len(_parse_path(sub)) > 0:
            file, line = located.where(full_loc)
            return ConfigIssue(file, line, format_path(full_loc), own.group(2))
    file, line = located.where(loc)
    return ConfigIssue(file, line, path, msg)


def _parse_path(text: str) -> Path_:
    out: list[str | int] = []
    for part in text.replace("[", ".[").split("."):
        if not part:
            continue
        out.append(int(part[1:-1]) if part.startswith("[") and part.endswith("]") else part)
    return tuple(out)


def _check_templates(rb: Runbook, located: Located, issues: list[ConfigIssue]) -> None:
    """Every template and expression must parse: a typo is a load error, not a 3 a.m. failure."""
    def report(loc: Path_, why: str | None) -> None:
        if why:
            file, line = located.where(loc)
            issues.append(ConfigIssue(file, line, format_path(loc), f"template error: {why}"))

    report(("targets",), templates.check_syntax(rb.targets))
    for key, value in rb.vars.items():
        if isinstance(value, str):
            report(("vars", key), templates.check_syntax(value))
    for phase, steps in rb.phases():
        for i, step in enumerate(steps):
            base: Path_ = (phase, i)
            for key in ("run", "check"):
                value = getattr(step, key)
                if value is not None:
                    report(base + (key,), templates.check_syntax(value))
            for key in ("when", "changed_when", "failed_when"):
                value = getattr(step, key)
                if value is not None:
                    report(base + (key,), templates.check_expression(value))
            if step.copy_ is not None:
                for key in ("dest", "content"):
                    value = getattr(step.copy_, key)
                    if value is not None:
                        report(base + ("copy", key), templates.check_syntax(value))
                for key in ("src", "template"):
                    value = getattr(step.copy_, key)
                    if value is not None and "{{" not in value:
                        f = rb.base_dir / value
                        if not f.is_file():
                            file, line = located.where(base + ("copy", key))
                            issues.append(ConfigIssue(file, line, format_path(base + ("copy", key)),
                                                      f"{value!r}: no such file (looked in {f})"))
                        elif key == "template":
                            report(base + ("copy", key), templates.check_syntax(f.read_text()))
            if step.script is not None and step.script.src is not None:
                f = rb.base_dir / step.script.src
                if not f.is_file():
                    file, line = located.where(base + ("script",))
                    issues.append(ConfigIssue(file, line, format_path(base + ("script",)),
                                              f"{step.script.src!r}: no such file (looked in {f})"))
            if step.http is not None:
                report(base + ("http", "url"), templates.check_syntax(step.http.url))


def load_runbook(path: str | Path) -> Runbook:
    """Read and validate one runbook file.

    Raises ConfigError listing every problem with file, line and key path.
    """
    p = Path(path)
    issues: list[ConfigIssue] = []
    located = _read(p, issues)
    if located is None:
        raise ConfigError(issues)
    if not isinstance(located.data, dict):
        raise ConfigError([ConfigIssue(str(p), 1, "", "a runbook must be a mapping with name, "
                                       "params, targets and steps")])
    if issues:
        raise ConfigError(issues)
    try:
        rb = Runbook.model_validate(located.data)
    except ValidationError as exc:
        raise ConfigError([_issue(e, located) for e in exc.errors(include_url=False)]) from None
    rb._path = p
    _check_templates(rb, located, issues)
    if issues:
        raise ConfigError(issues)
    return rb


def _read(path: Path, issues: list[ConfigIssue]) -> Located | None:
    """YAML with line tracking, as config/yamlsource.py reads it, without ``${VAR}``
    substitution: runbook text is shell and Jinja2, where ``$`` means what the shell makes of it."""
    return read_yaml(path, issues, substitute=False)


class RunbookLibrary:
    """The runbooks of a directory (``*.yaml``/``*.yml``), found by name or by path."""

    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory) if directory else None

    def files(self) -> list[Path]:
        if self.directory is None or not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir()
                      if p.suffix in (".yaml", ".yml") and p.is_file())

    def get(self, name_or_path: str) -> Runbook:
        """The runbook named ``name_or_path`` in the directory, or the file at that path.

        Raises NotFoundError (with the names that exist) or ConfigError.
        """
        candidate = Path(name_or_path)
        if candidate.suffix in (".yaml", ".yml") or "/" in name_or_path:
            if candidate.is_file():
                return load_runbook(candidate)
            if self.directory is not None and (self.directory / name_or_path).is_file():
                return load_runbook(self.directory / name_or_path)
            raise NotFoundError(f"runbook file {name_or_path} does not exist")
        if self.directory is not None:
            for suffix in (".yaml", ".yml"):
                f = self.directory / f"{name_or_path}{suffix}"
                if f.is_file():
                    return load_runbook(f)
        names: list[str] = []
        for f in self.files():
            try:
                rb = load_runbook(f)
            except ConfigError:
                names.append(f.stem)
                continue
            if rb.name == name_or_path:
                return rb
            names.append(rb.name)
        close = difflib.get_close_matches(name_or_path, names, n=1)
        where = str(self.directory) if self.directory else "no runbook directory configured"
        raise NotFoundError(f"no runbook named {name_or_path!r} ({where})"
                            + (f"; did you mean {close[0]!r}?" if close else ""),
                            hint=("runbooks here: " + ", ".join(sorted(names))) if names else
                            "give a path to a runbook file, or set `runbooks:` in watchkeeper.yaml")

    def list(self) -> list[Runbook]:
        """Every valid runbook (invalid files are left out; see :meth:`validate`)."""
        out = []
        for f in self.files():
            try:
                out.append(load_runbook(f))
            except ConfigError:
                continue
        return out

    def validate(self) -> builtins.list[ConfigIssue]:
        """Every problem in every runbook file (empty when all are valid); names must be unique."""
        issues: list[ConfigIssue] = []
        seen: dict[str, Path] = {}
        for f in self.files():
            try:
                rb = load_runbook(f)
            except ConfigError as exc:
                issues.extend(exc.issues)
                continue
            if rb.name in seen:
                issues.append(ConfigIssue(str(f), 1, "name", f"runbook name {rb.name!r} is also "
                                          f"used by {seen[rb.name]}"))
            seen[rb.name] = f
        return issues
