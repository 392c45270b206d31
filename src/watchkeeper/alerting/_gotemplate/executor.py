"""The executor: walks a parsed template against its data and collects the output.

Go's semantics: ``{{range}}`` over maps in key order, ``and``/``or`` short
circuit, a missing map key is the empty string, ``{{template}}`` nests at
most 100 deep. Errors are :class:`~.errors.TemplateError` naming line and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from watchkeeper.alerting._gotemplate.errors import TemplateError
from watchkeeper.alerting._gotemplate.funcs import FUNCS
from watchkeeper.alerting._gotemplate.lexer import Lexer
from watchkeeper.alerting._gotemplate.nodes import (
    Action,
    Branch,
    Command,
    Loop,
    Node,
    Pipe,
    TemplateCall,
    Text,
)
from watchkeeper.alerting._gotemplate.values import (
    MISSING,
    QueryFunc,
    QuerySample,
    _Data,
    format_value,
    go_quote,
    truth,
    type_name,
)

__all__ = ["Executor"]


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


@dataclass
class Executor:
    lexer: Lexer
    defines: dict[str, list[Any]]
    query_func: QueryFunc | None
    external_url: str
    out: list[str] = field(default_factory=list)
    depth: int = 0

    def query(self, q: Any) -> list[QuerySample]:
        if not isinstance(q, str):
            raise TemplateError("error calling query: the query must be a string")
        if self.query_func is None:
            raise TemplateError("error calling query: queries are not available here")
        return list(self.query_func(q))

    def error(self, pos: int, message: str) -> TemplateError:
        return self.lexer.error(pos, message)

    def run(self, nodes: list[Any], dot: Any, scope: list[tuple[str, Any]]) -> None:
        mark = len(scope)
        for node in nodes:
            if isinstance(node, Text):
                self.out.append(node.text)
            elif isinstance(node, Action):
                value = self.pipe(node.pipe, dot, scope)
                if not node.pipe.decl:
                    self.out.append(format_value(value))
            elif isinstance(node, Branch):
                self.branch(node, dot, scope)
            elif isinstance(node, TemplateCall):
                self.call_template(node, dot, scope)
            elif isinstance(node, Loop):
                raise _Break() if node.kind == "break" else _Continue()
        del scope[mark:]

    def call_template(self, node: TemplateCall, dot: Any, scope: list[tuple[str, Any]]) -> None:
        body = self.defines.get(node.name)
        if body is None:
            raise self.error(node.pos, f'no such template "{node.name}"')
        self.depth += 1
        if self.depth > 100:
            raise self.error(node.pos, "exceeded maximum template depth (100)")
        new_dot = self.pipe(node.pipe, dot, scope) if node.pipe else None
        self.run(body, new_dot, [("$", new_dot)])
        self.depth -= 1

    def branch(self, node: Branch, dot: Any, scope: list[tuple[str, Any]]) -> None:
        mark = len(scope)
        if node.kind == "range":
            self.range(node, dot, scope)
            del scope[mark:]
            return
        value = self.pipe(node.pipe, dot, scope)
        if truth(value):
            self.run(node.body, value if node.kind == "with" else dot, scope)
        elif node.else_ is not None:
            self.run(node.else_, dot, scope)
        del scope[mark:]

    def range(self, node: Branch, dot: Any, scope: list[tuple[str, Any]]) -> None:
        decl = node.pipe.decl
        pipe = Pipe([], False, node.pipe.cmds, node.pipe.pos)
        value = self.pipe(pipe, dot, scope)
        if isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif value is None or value is MISSING:
            items = []
        else:
            raise self.error(node.pipe.pos, f"range can't iterate over {format_value(value)}")
        if not items:
            if node.else_ is not None:
                self.run(node.else_, dot, scope)
            return
        mark = len(scope)
        for key, elem in items:
            if len(decl) == 1:
                scope.append((decl[0], elem))
            elif len(decl) == 2:
                scope.append((decl[0], key))
                scope.append((decl[1], elem))
            try:
                self.run(node.body, elem, scope)
            except _Break:
                del scope[mark:]
                break
            except _Continue:
                pass
            del scope[mark:]

    def pipe(self, pipe: Pipe, dot: Any, scope: list[tuple[str, Any]]) -> Any:
        value: Any = MISSING
        for i, cmd in enumerate(pipe.cmds):
            value = self.command(cmd, dot, scope, value if i else None, i > 0)
        for name in pipe.decl:
            if pipe.assign:
                for j in range(len(scope) - 1, -1, -1):
                    if scope[j][0] == name:
                        scope[j] = (name, value)
                        break
                else:
                    raise self.error(pipe.pos, f"undefined variable: {name}")
            else:
                scope.append((name, value))
        return value

    def command(self, cmd: Command, dot: Any, scope: list[tuple[str, Any]], final: Any,
                has_final: bool) -> Any:
        first = cmd.args[0]
        if first.kind == "ident":
            return self.call(first, cmd.args[1:], dot, scope, final, has_final)
        if len(cmd.args) > 1 or has_final:
            if first.kind in ("field",) and False:
                pass
            raise self.error(first.pos, f"can't give argument to non-function {self.node_text(first)}")
        return self.operand(first, dot, scope)

    def node_text(self, node: Node) -> str:
        if node.kind == "const":
            return go_quote(node.value) if isinstance(node.value, str) else format_value(node.value)
        if node.kind == "var":
            return str(node.value) + "".join("." + f for f in node.fields)
        if node.kind == "field":
            return "".join("." + f for f in node.fields)
        return str(node.value)

    def call(self, fn_node: Node, args: list[Node], dot: Any, scope: list[tuple[str, Any]],
             final: Any, has_final: bool) -> Any:
        name = fn_node.value
        func, ctx = FUNCS[name]
        if name in ("and", "or"):
            nodes: list[Any] = list(args)
            if has_final:
                nodes.append(("final", final))
            if not nodes:
                raise self.error(fn_node.pos, f"wrong number of args for {name}: want at least 1 got 0")
            value: Any = None
            for n in nodes:
                value = n[1] if isinstance(n, tuple) else self.operand(n, dot, scope)
                if truth(value) != (name == "and"):
                    return value
            return value
        values = [self.operand(a, dot, scope) for a in args]
        if has_final:
            values.append(final)
        try:
            return func(self, *values) if ctx else func(*values)
        except TemplateError as exc:
            raise self.error(fn_node.pos, f'executing at <{name}>: {exc.detail}') from None
        except TypeError:
            raise self.error(fn_node.pos, f"wrong number of args for {name}: got {len(values)}") from None

    def operand(self, node: Node, dot: Any, scope: list[tuple[str, Any]]) -> Any:
        if node.kind == "const":
            return node.value
        if node.kind == "dot":
            base = dot
        elif node.kind == "field":
            base = dot
        elif node.kind == "var":
            for name, value in reversed(scope):
                if name == node.value:
                    base = value
                    break
            else:
                raise self.error(node.pos, f"undefined variable: {node.value}")
        elif node.kind == "ident":
            func, ctx = FUNCS[node.value]
            try:
                base = func(self) if ctx else func()
            except TemplateError as exc:
                raise self.error(node.pos, f'executing at <{node.value}>: {exc.detail}') from None
            except TypeError:
                raise self.error(node.pos, f"wrong number of args for {node.value}: want more than 0"
                                 ) from None
        else:  # parenthesised pipeline
            base = self.pipe(node.value, dot, scope)
        for name in node.fields:
            base = self.field(base, name, node)
        return base

    def field(self, base: Any, name: str, node: Node) -> Any:
        if isinstance(base, dict):
            return base.get(name, "")  # missingkey=zero on map[string]string
        if isinstance(base, (_Data, QuerySample)) and hasattr(base, name) and not name.startswith("_"):
            return getattr(base, name)
        if base is None or base is MISSING:
            raise self.error(node.pos, f"nil pointer evaluating {type_name(base)}.{name}")
        raise self.error(node.pos, f"can't evaluate field {name} in type {type_name(base)}")
