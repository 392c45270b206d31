"""The parser: tokens into the tree of :mod:`.nodes`.

As Go does, it rejects undefined variables and unknown functions at parse
time, and collects ``{{define}}``/``{{block}}`` bodies in :attr:`Parser.defines`.
Errors are :class:`~.errors.TemplateError` naming line and column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from watchkeeper.alerting._gotemplate.errors import TemplateError
from watchkeeper.alerting._gotemplate.funcs import FUNCS
from watchkeeper.alerting._gotemplate.lexer import Lexer, Token
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

__all__ = ["Parser"]


class Parser:
    def __init__(self, lexer: Lexer, toks: list[Token], variables: Sequence[str] = ()) -> None:
        self.lexer = lexer
        self.toks = toks
        self.vars: list[str] = ["$", *variables]  # in scope here, as Go checks them when parsing
        self.i = 0
        self.defines: dict[str, list[Any]] = {}
        self.range_depth = 0

    def error(self, pos: int, message: str) -> TemplateError:
        return self.lexer.error(pos, message)

    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def take(self) -> Token:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def parse(self) -> list[Any]:
        body, stop = self.list_until(set())
        if stop is not None:
            raise self.error(stop.pos, f"unexpected {{{{{stop.value}}}}}")
        return body

    def list_until(self, stops: set[str]) -> tuple[list[Any], Token | None]:
        """Parse nodes until ``{{end}}``/``{{else}}`` (when in ``stops``); returns the keyword token."""
        out: list[Any] = []
        while self.i < len(self.toks):
            tok = self.take()
            if tok.kind == "text":
                out.append(Text(tok.value))
                continue
            # tok is "open"
            nxt = self.peek()
            if nxt is None:
                raise self.error(tok.pos, "unclosed action")
            if nxt.kind == "keyword":
                kw = nxt.value
                if kw in ("end", "else"):
                    if kw not in stops:
                        raise self.error(nxt.pos, f"unexpected {{{{{kw}}}}}")
                    self.take()
                    if kw == "end":
                        self.expect_end()
                    return out, nxt
                self.take()
                out.append(self.keyword(kw, nxt))
                continue
            if nxt.kind == "end":
                raise self.error(nxt.pos, "missing value for command")
            pipe = self.pipeline(allow_decl=True)
            self.expect_end()
            out.append(Action(pipe))
        if stops:
            raise self.error(len(self.lexer.text), "unexpected EOF")
        return out, None

    def expect_end(self) -> None:
        tok = self.peek()
        if tok is None or tok.kind != "end":
            pos = tok.pos if tok else len(self.lexer.text)
            what = _describe(tok)
            raise self.error(pos, f"unexpected {what} in command")
        self.take()

    def keyword(self, kw: str, tok: Token) -> Any:
        if kw in ("if", "with", "range"):
            return self.branch(kw, tok)
        if kw in ("break", "continue"):
            if self.range_depth == 0:
                raise self.error(tok.pos, f"{{{{{kw}}}}} outside {{{{range}}}}")
            self.expect_end()
            return Loop(kw, tok.pos)
        if kw in ("define", "template", "block"):
            name_tok = self.peek()
            if name_tok is None or name_tok.kind != "string":
                raise self.error(tok.pos, f"expected a quoted template name in {{{{{kw}}}}}")
            self.take()
            if kw == "define":
                self.expect_end()
                saved, self.vars = self.vars, ["$"]
                body, _ = self.list_until({"end"})
                self.vars = saved
                self.defines[name_tok.value] = body
                return Text("")
            pipe = None
            if self.peek() is not None and self.peek().kind != "end":  # type: ignore[union-attr]
                pipe = self.pipeline(allow_decl=False)
            self.expect_end()
            if kw == "block":
                body, _ = self.list_until({"end"})
                self.defines[name_tok.value] = body
            return TemplateCall(name_tok.value, pipe, tok.pos)
        raise self.error(tok.pos, f"unexpected keyword {kw}")

    def branch(self, kw: str, tok: Token) -> Branch:
        mark = len(self.vars)
        try:
            return self._branch(kw, tok)
        finally:
            del self.vars[mark:]

    def _branch(self, kw: str, tok: Token) -> Branch:
        pipe = self.pipeline(allow_decl=True, range_=kw == "range")
        self.expect_end()
        if kw == "range":
            self.range_depth += 1
        body, stop = self.list_until({"end", "else"})
        if kw == "range":
            self.range_depth -= 1
        else_: list[Any] | None = None
        if stop is not None and stop.value == "else":
            nxt = self.peek()
            if nxt is not None and nxt.kind == "keyword" and nxt.value in ("if", "with") and kw != "range":
                # ``{{else if ...}}`` is ``{{else}}{{if ...}}...{{end}}`` sharing our end
                self.take()
                else_ = [self.branch(nxt.value, nxt)]
            else:
                self.expect_end()
                else_, stop2 = self.list_until({"end"})
        else:
            pass
        return Branch(kw, pipe, body, else_)

    def pipeline(self, *, allow_decl: bool, range_: bool = False) -> Pipe:
        start = self.peek()
        pos = start.pos if start else len(self.lexer.text)
        decl: list[str] = []
        assign = False
        if allow_decl and start is not None and start.kind == "var":
            nxt = self.peek(1)
            if nxt is not None and nxt.kind in ("declare", "assign"):
                decl = [start.value]
                assign = nxt.kind == "assign"
                self.i += 2
            elif range_ and nxt is not None and nxt.kind == "comma":
                third, fourth = self.peek(2), self.peek(3)
                if third is not None and third.kind == "var" and fourth is not None and \
                        fourth.kind in ("declare", "assign"):
                    decl = [start.value, third.value]
                    assign = fourth.kind == "assign"
                    self.i += 4
        if assign:
            for name in decl:
                if name not in self.vars:
                    raise self.error(pos, f"undefined variable: {name}")
        cmds: list[Command] = []
        while True:
            cmds.append(self.command())
            tok = self.peek()
            if tok is not None and tok.kind == "pipe":
                self.take()
                continue
            break
        for cmd in cmds[1:]:
            first = cmd.args[0]
            if first.kind not in ("ident", "field", "var", "dot", "pipe") or \
                    (first.kind == "const"):
                raise self.error(first.pos, "non executable command in pipeline stage")
        if not assign:
            self.vars.extend(decl)
        return Pipe(decl, assign, cmds, pos)

    def command(self) -> Command:
        args: list[Node] = []
        start = self.peek()
        while True:
            tok = self.peek()
            if tok is None or tok.kind in ("end", "pipe", "rparen"):
                break
            args.append(self.operand())
        if not args:
            pos = start.pos if start else len(self.lexer.text)
            raise self.error(pos, "missing value for command")
        return Command(args, args[0].pos)

    def operand(self) -> Node:
        tok = self.take()
        node: Node
        if tok.kind in ("string", "number", "bool", "nil"):
            node = Node("const", tok.value, tok.pos)
        elif tok.kind == "dot":
            node = Node("dot", None, tok.pos)
        elif tok.kind == "field":
            node = Node("field", None, tok.pos, (tok.value,))
        elif tok.kind == "var":
            if tok.value not in self.vars:
                raise self.error(tok.pos, f"undefined variable: {tok.value}")
            node = Node("var", tok.value, tok.pos)
        elif tok.kind == "ident":
            if tok.value not in FUNCS:
                raise self.error(tok.pos, f'function "{tok.value}" not defined')
            node = Node("ident", tok.value, tok.pos)
        elif tok.kind == "lparen":
            pipe = self.pipeline(allow_decl=True)
            close = self.peek()
            if close is None or close.kind != "rparen":
                raise self.error(tok.pos, "unclosed left paren")
            self.take()
            node = Node("pipe", pipe, tok.pos)
        else:
            raise self.error(tok.pos, f"unexpected {_describe(tok)} in operand")
        fields = list(node.fields)
        while True:
            nxt = self.peek()
            if nxt is not None and nxt.kind == "field" and self._adjacent(nxt):
                self.take()
                fields.append(nxt.value)
                continue
            break
        if fields and node.kind in ("ident",):
            raise self.error(node.pos, f"unexpected . after term {node.value!r}")
        if node.kind == "const" and fields:
            raise self.error(node.pos, "unexpected field access on a constant")
        node.fields = tuple(fields)
        return node

    def _adjacent(self, tok: Token) -> bool:
        prev = self.toks[self.i - 1]
        end = prev.pos
        # a field chains when it follows the previous token with no space
        text = self.lexer.text
        j = tok.pos - 1
        return j >= end and text[j] not in " \t\r\n"


def _describe(tok: Token | None) -> str:
    if tok is None:
        return "EOF"
    names = {"end": "}}", "pipe": "|", "lparen": "(", "rparen": ")", "declare": ":=",
             "assign": "=", "comma": ",", "dot": "."}
    if tok.kind in names:
        return f'"{names[tok.kind]}"'
    return f"<{tok.value}>"
