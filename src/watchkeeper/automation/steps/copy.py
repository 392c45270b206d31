"""``copy:``: put a file on the host, only when its content differs. Read state, then act.

First a read-only probe asks the host for the file's sha256, mode, owner, group
and size; the wanted content is hashed here. Only a different checksum uploads
the file (atomically: temp file and rename); a different mode/owner/group is
fixed with chmod/chown. A dry run (``--check``) runs the probe and reports the
diff it would make, and changes nothing.
"""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path

from watchkeeper.automation.command import Command, Quoted, Raw
from watchkeeper.automation.runbook import CopySpec, Step
from watchkeeper.automation.steps.base import StepContext, StepOutcome, outcome_from_exec
from watchkeeper.automation.templates import render_text

__all__ = ["execute", "probe_command", "unified_diff"]

DIFF_LIMIT = 256 * 1024  # larger files: the checksum decides, no diff is fetched


def probe_command(dest: str) -> Command:
    """Read-only: ``absent``, or ``SHA256`` then ``MODE OWNER GROUP SIZE`` of ``dest``."""
    return Command([Raw("if [ -e "), Quoted(dest), Raw(" ]; then sha256sum -- "), Quoted(dest),
                    Raw(" | cut -d' ' -f1 && stat -c '%a %U %G %s' -- "), Quoted(dest),
                    Raw("; else echo absent; fi")])


def unified_diff(old: bytes | None, new: bytes, path: str) -> str:
    """A unified diff of a file's text (``old`` None: the file does not exist yet)."""
    try:
        a = [] if old is None else old.decode().splitlines(keepends=True)
        b = new.decode().splitlines(keepends=True)
    except UnicodeDecodeError:
        return f"Binary files {path} and {path} (wanted) differ\n"
    lines = difflib.unified_diff(a, b, fromfile="/dev/null" if old is None else path,
                                 tofile=path)
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def _wanted(spec: CopySpec, ctx: StepContext, name: str) -> bytes:
    if spec.content is not None:
        return render_text(spec.content, ctx.template, what=f"step {name!r}: copy content").encode()
    source = spec.template if spec.template is not None else spec.src
    assert source is not None
    src = render_text(source, ctx.template, what=f"step {name!r}: copy source")
    path = Path(ctx.base_dir) / src
    if spec.template is not None:
        return render_text(path.read_text(encoding="utf-8"), ctx.template,
                           what=f"step {name!r}: template {src}").encode()
    return path.read_bytes()


async def execute(step: Step, ctx: StepContext) -> StepOutcome:
    spec = step.copy_
    assert spec is not None
    dest = render_text(spec.dest, ctx.template, what=f"step {step.name!r}: copy dest")
    try:
        data = _wanted(spec, ctx, step.name)
    except OSError as exc:
        return StepOutcome("failed", detail=f"cannot read {exc.filename}: {exc.strerror or exc}")
    want_sha = hashlib.sha256(data).hexdigest()
    shown = f"copy {len(data)} bytes to {dest}"
    probe = await ctx.executor.run(ctx.host, probe_command(dest), timeout=ctx.timeout)
    if not probe.ok:
        out = outcome_from_exec(probe, ctx, shown)
        out.detail = f"cannot read the current state of {dest}: " + (out.detail or out.stderr.strip())
        return out
    lines = probe.stdout.split()
    exists = lines[:1] != ["absent"]
    have_sha, mode, owner, group, size = (lines + [""] * 5)[:5] if exists else ("",) * 5
    content_changes = not exists or have_sha != want_sha
    want_mode = spec.mode_int if spec.mode is not None else None
    mode_changes = want_mode is not None and exists and int(mode or "0", 8) != want_mode
    owner_changes = (spec.owner is not None and spec.owner != owner) or \
                    (spec.group is not None and spec.group != group)
    changes: list[str] = []
    if content_changes:
        changes.append("content" if exists else "created")
    if mode_changes and not content_changes:
        changes.append(f"mode {mode} -> {want_mode:o}")
    if owner_changes:
        changes.append(f"owner {owner}:{group} -> {spec.owner or owner}:{spec.group or group}")
    diff = ""
    if content_changes and (spec.diff or ctx.check_mode):
        old: bytes | None = None
        if exists and size.isdigit() and int(size) <= DIFF_LIMIT:
            got = await ctx.executor.run(ctx.host, Command.of("cat", "--", dest), timeout=ctx.timeout)
            old = got.stdout.encode() if got.ok else None
            diff = unified_diff(old, data, dest) if got.ok else ""
        elif not exists:
            diff = unified_diff(None, data, dest)
        else:
            diff = f"{dest}: {size} bytes, sha256 {have_sha} -> {want_sha} (too large to diff)\n"
    diff = ctx.mask(diff)
    summary = ", ".join(changes) if changes else "unchanged"
    detail = summary + ("\n" + diff if diff else "")
    if ctx.check_mode:
        return StepOutcome("check", changed=bool(changes), command=shown,
                           detail=("would change: " if changes else "") + detail)
    if not changes:
        return StepOutcome("ok", changed=False, command=shown, detail=detail)
    if content_changes:
        mode_to_write = want_mode if want_mode is not None else (int(mode, 8) if mode else 0o644)
        put = await ctx.executor.put(ctx.host, data, dest, mode=mode_to_write, timeout=ctx.timeout)
        if not put.ok:
            out = outcome_from_exec(put, ctx, shown)
            out.detail = f"writing {dest} failed: {out.detail or out.stderr.strip()}"
            return out
    elif mode_changes and want_mode is not None:
        res = await ctx.executor.run(ctx.host, Command.of("chmod", f"{want_mode:o}", "--", dest),
                                     timeout=ctx.timeout)
        if not res.ok:
            return outcome_from_exec(res, ctx, shown)
    if spec.owner is not None or spec.group is not None:
        who = (spec.owner or "") + (f":{spec.group}" if spec.group else "")
        res = await ctx.executor.run(ctx.host, Command.of("chown", who, "--", dest),
                                     timeout=ctx.timeout)
        if not res.ok:
            return outcome_from_exec(res, ctx, shown)
    return StepOutcome("ok", changed=True, command=shown, detail=detail,
                       data={"sha256": want_sha, "dest": dest})
