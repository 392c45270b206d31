"""Probes that run ON the target host (``from: target`` on ``wait`` and ``http`` steps).

A probe is one POSIX ``sh`` script sent through the host's executor (the connection
``run`` steps use), needing no agent on the target. It uses the first tool it finds
there:

- TCP: ``python3``, else ``nc -z``, else bash's ``/dev/tcp``;
- HTTP: ``python3``, else ``curl``, else ``wget`` (GNU; ``--method``, ``--content-on-error``).

A target with none of them exits 127 with a message naming what it needs.

The script polls in ONE remote loop until its budget is spent (a 60 s wait costs one
SSH channel, not 60) and prints one line per failed probe (streamed live through the
executor's output callback) and a last line ``watchkeeper-probe: ok N DETAIL`` (exit
0) or ``watchkeeper-probe: gave-up N`` (exit 3); an ``http`` step's response body
follows the ``ok`` line. The script bounds itself: when watchkeeper stops waiting
(the step's ``timeout``, a cancel), the remote loop still ends at its own deadline.

Every value in the script (host, port, URL, method, headers, body, numbers) is a
:class:`~watchkeeper.automation.command.Quoted` part, or ``Masked`` when it holds a
secret, so no value can inject a command. URLs must be ``http(s)://`` without
whitespace or control characters; header names are HTTP tokens and values have no
line breaks, so nothing can add a header or reach curl's ``@file`` syntax either.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from watchkeeper.automation.command import Command, Masked, Quoted, Raw
from watchkeeper.automation.executors.base import ExecResult
from watchkeeper.automation.steps.base import StepContext

__all__ = ["BODY_CAP", "ProbeResult", "http_script", "run_probe", "split_tcp",
           "tcp_script", "url_problem"]

BODY_CAP = 64 * 1024
"""Bytes of an ``http`` step's response body brought back from the target."""

RESULT_TAG = "watchkeeper-probe: "
GAVE_UP = 3
MISSING_TOOL = 127
# what the remote loop may take beyond its budget: the last probe and the connection
_GRACE = 15.0

_HOST = re.compile(r"^[A-Za-z0-9_.:%-]+$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_URL = re.compile(r"^https?://[^\s/?#]+([/?#]\S*)?$", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# The inline program python3 runs on the target: argv is MODE BUDGET INTERVAL TIMEOUT and
# then "tcp HOST PORT" or "http URL METHOD VERIFY BODYCAP WANTED HASBODY BODY HEADER...".
# Written for any python3 (no f-strings), standard library only.
PROGRAM = r'''import socket, sys, time
def out(s):
    sys.stdout.buffer.write(s.encode("utf-8", "replace")); sys.stdout.flush()
def why(e, where, t):
    if isinstance(e, socket.timeout): return "%s: no answer within %gs" % (where, t)
    t = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return ("%s: %s" % (where, t)).replace("\n", " ").replace("\r", " ")
def tcp(a, t):
    s = socket.create_connection((a[0], int(a[1])), timeout=t); s.close()
    return True, "%s:%s" % (a[0], a[1]), None
def http(a, t):
    import base64, ssl
    import http.client as hc
    from urllib.parse import unquote, urlsplit
    url, method, verify, cap, wanted, hasbody, body = a[:7]
    u = urlsplit(url); cap = int(cap)
    hdrs = dict(h.split(": ", 1) for h in a[7:])
    if u.username is not None and not any(k.lower() == "authorization" for k in hdrs):
        cred = "%s:%s" % (unquote(u.username), unquote(u.password or ""))
        hdrs["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
    if u.scheme.lower() == "https":
        ctx = ssl.create_default_context()
        if verify == "0": ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
        c = hc.HTTPSConnection(u.hostname, u.port, timeout=t, context=ctx)
    else:
        c = hc.HTTPConnection(u.hostname, u.port, timeout=t)
    try:
        path = (u.path or "/") + ("?" + u.query if u.query else "")
        c.request(method, path, body=body.encode() if hasbody == "1" else None, headers=hdrs)
        r = c.getresponse()
        data = r.read(cap + 1) if cap and method != "HEAD" else b""
    finally:
        c.close()
    note = " (body cut at %d bytes)" % cap if len(data) > cap else ""
    summary = "HTTP %d%s" % (r.status, note)
    ok = not wanted or str(r.status) in wanted.split(",")
    return ok, summary, (data[:cap] if cap else None)
def main(a):
    mode, budget, interval, limit = a[0], float(a[1]), float(a[2]), float(a[3])
    where = a[4] if mode == "http" else "%s:%s" % (a[4], a[5])
    end = time.monotonic() + budget; n = 0
    while True:
        n += 1
        t = max(0.1, min(limit, end - time.monotonic())) if budget > 0 else limit
        try:
            ok, summary, body = (tcp if mode == "tcp" else http)(a[4:], t)
        except Exception as e:
            ok, summary, body = False, why(e, where, t), None
        if ok:
            out("watchkeeper-probe: ok %d %s\n" % (n, summary))
            if body is not None: sys.stdout.buffer.write(body)
            return 0
        out("probe %d: %s\n" % (n, summary))
        if time.monotonic() + interval > end:
            out("watchkeeper-probe: gave-up %d\n" % n)
            return 3
        time.sleep(interval)
sys.exit(main(sys.argv[1:]))
'''

# The loop the sh fallbacks share: ``wk_probe`` sets wk_ok (success) or wk_err (failure).
_LOOP = r"""wk_n=0
wk_end=$(( $(date +%s) + BUDGET ))
while :; do
  wk_n=$((wk_n + 1)); wk_ok=''; wk_err=''
  if wk_probe; then
    printf 'watchkeeper-probe: ok %s %s\n' "$wk_n" "$wk_ok"
    wk_done
    exit 0
  fi
  [ -n "$wk_err" ] || wk_err='no answer'
  printf 'probe %s: %s\n' "$wk_n" "$(printf '%s' "$wk_err" | tr '\r\n' '  ')"
  if [ "$(date +%s)" -ge "$wk_end" ]; then
    printf 'watchkeeper-probe: gave-up %s\n' "$wk_n"
    exit 3
  fi
  sleep INTERVAL
done
"""


def _num(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


class _Builder:
    """Collects a script's parts; values become Quoted, or Masked when they hold a secret."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self.parts: list[Raw | Quoted | Masked] = []
        self._secrets = [s for s in secrets if s]

    def raw(self, text: str) -> _Builder:
        self.parts.append(Raw(text))
        return self

    def value(self, text: str) -> _Builder:
        secret = any(s in text for s in self._secrets)
        self.parts.append(Masked(text) if secret else Quoted(text))
        return self

    def args(self, values: Sequence[str]) -> _Builder:
        for v in values:
            self.raw(" ").value(v)
        return self

    def command(self) -> Command:
        return Command(self.parts)


def _head(b: _Builder, title: str, argv: Sequence[str]) -> None:
    # the title is ours, but it shows a user's host/URL: keep it to one comment line
    b.raw("# watchkeeper: " + _CONTROL.sub(" ", title) + "\n")
    b.raw("if command -v python3 >/dev/null 2>&1; then\n  exec python3 -c ").value(PROGRAM)
    b.args(argv).raw("\nfi\n")


def _missing(b: _Builder, what: str, tools: str) -> None:
    b.raw(f"else\n  printf '%s\\n' \"watchkeeper: {what} from the target needs {tools} "
          "on the target's PATH ($PATH); none was found\" >&2\n  exit 127\nfi\n")


def _loop(b: _Builder, budget: float, interval: float) -> None:
    text = _LOOP.replace("BUDGET", str(math.ceil(budget)))
    before, after = text.split("INTERVAL")
    b.raw(before).value(_num(interval)).raw(after)


def split_tcp(target: str, default_host: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[V6]:PORT`` as (host, port). Raises ValueError."""
    host, sep, port = target.rpartition(":")
    if not sep:
        host, port = default_host, target
    host = host.strip("[]") or default_host
    number = int(port)
    if not 0 < number < 65536:
        raise ValueError(f"port {number} is out of range 1-65535")
    return host, number


def tcp_script(host: str, port: int, *, budget: float, interval: float, probe_timeout: float,
               title: str, secrets: Sequence[str] = ()) -> Command:
    """The script that polls ``host:port`` from the target. Raises ValueError for a bad host."""
    if not _HOST.match(host) or host.startswith("-"):
        raise ValueError(f"{host!r} is not a host name or address")
    b = _Builder(secrets)
    _head(b, title, ["tcp", _num(budget), _num(interval), _num(probe_timeout), host, str(port)])
    wait = str(max(1, math.ceil(probe_timeout)))
    b.raw("if command -v nc >/dev/null 2>&1; then\n  wk_probe() { wk_err=$(nc -z -v -w ")
    b.value(wait).raw(" -- ").value(host).raw(" ").value(str(port))
    b.raw(" 2>&1) && wk_ok=").value(f"{host}:{port}").raw("; }\n")
    b.raw("elif command -v bash >/dev/null 2>&1; then\n  wk_probe() {\n"
          "    if command -v timeout >/dev/null 2>&1; then wk_t='timeout '")
    b.value(_num(probe_timeout)).raw("; else wk_t=''; fi\n"
                                     "    wk_err=$($wk_t bash -c 'exec 3<>\"/dev/tcp/$1/$2\"' wk ")
    b.value(host).raw(" ").value(str(port)).raw(" 2>&1) && wk_ok=").value(f"{host}:{port}")
    b.raw("\n  }\n")
    _missing(b, "a tcp probe", "python3, nc or bash")
    b.raw("wk_done() { :; }\n")
    _loop(b, budget, interval)
    return b.command()


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot go into a target-side probe, or None."""
    if _CONTROL.search(url) or not _URL.match(url):
        return f"{url!r} is not an http:// or https:// URL without spaces or control characters"
    return None


def _header_problem(name: str, value: str) -> str | None:
    if not _TOKEN.match(name):
        return f"header name {name!r} is not an HTTP token"
    if _CONTROL.sub("", value.replace("\t", "")) != value.replace("\t", ""):
        return f"header {name!r}: the value has a line break or control character"
    return None


def http_script(url: str, *, method: str = "GET", headers: Mapping[str, str] | None = None,
                body: str | None = None, verify: bool = True, wanted: Sequence[int] = (),
                budget: float = 0.0, interval: float = 1.0, probe_timeout: float = 10.0,
                body_cap: int = 0, title: str, secrets: Sequence[str] = ()) -> Command:
    """The script that requests ``url`` from the target until the status is one of ``wanted``
    (any status when empty) or ``budget`` seconds are spent (0: one request). With
    ``body_cap`` the first ``body_cap`` bytes of the body follow the result line.

    Raises ValueError for a URL, header or body that cannot be sent.
    """
    problem = url_problem(url)
    heads = dict(headers or {})
    for name, value in heads.items():
        problem = problem or _header_problem(name, value)
    if problem is None and body is not None and "\x00" in body:
        problem = "the body has a NUL character"
    if problem is None and not re.fullmatch(r"[A-Z]+", method):
        problem = f"{method!r} is not an HTTP method"
    if problem:
        raise ValueError(problem)
    lines = [f"{k}: {v}" for k, v in heads.items()]
    want = ",".join(str(s) for s in wanted)
    b = _Builder(secrets)
    _head(b, title, ["http", _num(budget), _num(interval), _num(probe_timeout), url, method,
                     "1" if verify else "0", str(body_cap), want,
                     "0" if body is None else "1", body or "", *lines])
    out = '"$wk_tmp"' if body_cap and method != "HEAD" else "/dev/null"
    # curl: -g so [::1] is an address, not a glob; --url so a URL is never an option
    b.raw("if command -v curl >/dev/null 2>&1; then\n  wk_fetch() {\n    wk_out=$(curl -sS -g -o "
          + out + " -w '%{http_code}' --max-time ").value(_num(probe_timeout))
    b.raw(" -k" if not verify else "")
    b.raw(" --head" if method == "HEAD" else "").raw("" if method == "HEAD" else " -X ")
    if method != "HEAD":
        b.value(method)
    for line in lines:
        b.raw(" -H ").value(line)
    if body is not None:
        b.raw(" --data-raw ").value(body)
    b.raw(" --url ").value(url).raw(" 2>&1)\n"
                                    "    wk_code=${wk_out#\"${wk_out%???}\"}\n"
                                    "    [ \"$wk_code\" != 000 ] || { wk_err=${wk_out%???}; return 1; }\n"
                                    "  }\n")
    b.raw("elif command -v wget >/dev/null 2>&1; then\n  wk_fetch() {\n    wk_out=$(wget -nv -S -O "
          + out + " --tries=1 --max-redirect=0 --content-on-error --timeout=")
    b.value(_num(probe_timeout)).raw(" --no-check-certificate" if not verify else "")
    b.raw(" --method=").value(method)
    for line in lines:
        b.raw(" --header=").value(line)
    if body is not None:
        b.raw(" --body-data=").value(body)
    b.raw(" -- ").value(url).raw(
        " 2>&1)\n"
        "    wk_code=$(printf '%s\\n' \"$wk_out\" | sed -n 's/^ *HTTP\\/[0-9.]* \\([0-9][0-9][0-9]\\).*/\\1/p'"
        " | tail -n 1)\n"
        "    [ -n \"$wk_code\" ] || { wk_err=$(printf '%s\\n' \"$wk_out\" | tail -n 1); return 1; }\n"
        "  }\n")
    _missing(b, "an http probe", "python3, curl or wget")
    if body_cap:
        b.raw("wk_tmp=$(mktemp) || exit 1\ntrap 'rm -f \"$wk_tmp\"' EXIT\n")
        b.raw(f"wk_done() {{ dd if=\"$wk_tmp\" bs={body_cap} count=1 2>/dev/null; }}\n")
    else:
        b.raw("wk_done() { :; }\n")
    b.raw("wk_probe() {\n  wk_fetch || return 1\n  wk_ok=\"HTTP $wk_code\"\n")
    if body_cap:
        b.raw(f"  [ \"$(wc -c < \"$wk_tmp\")\" -le {body_cap} ] || "
              f"wk_ok=\"$wk_ok (body cut at {body_cap} bytes)\"\n")
    if want:
        b.raw("  case ,").value(want).raw(",  in *,\"$wk_code\",*) return 0 ;; esac\n"
                                          "  wk_err=\"HTTP $wk_code\"\n  return 1\n")
    b.raw("}\n")
    _loop(b, budget, interval)
    return b.command()


@dataclass
class ProbeResult:
    """What a target-side probe gave.

    ``status``: ok, gave-up (the budget was spent), failed (the script could not probe:
    ``detail`` says why, e.g. a missing tool), unreachable or timeout (the executor's).
    ``summary`` is the ok line's detail (``HTTP 200``, ``127.0.0.1:8080``); ``last`` the
    last failed probe's reason; ``log`` the probe lines; ``body`` what followed an ok line.
    """

    status: str
    attempts: int = 0
    summary: str = ""
    last: str = ""
    log: str = ""
    body: str = ""
    detail: str = ""

    @property
    def http_status(self) -> int | None:
        m = re.match(r"HTTP (\d{3})\b", self.summary)
        return int(m.group(1)) if m else None


def parse(res: ExecResult) -> ProbeResult:
    """Read a probe script's output (decided by exit status; the text only fills in detail)."""
    if res.status in ("unreachable", "timeout"):
        return ProbeResult(res.status, detail=res.error or res.stderr.strip())
    text = res.stdout
    log, body, result = text, "", ""
    # the first line that starts with the tag; probe lines start with "probe N:"
    at = 0 if text.startswith(RESULT_TAG) else text.find("\n" + RESULT_TAG) + 1
    if at > 0 or text.startswith(RESULT_TAG):
        end = text.find("\n", at)
        end = len(text) if end < 0 else end
        log, result, body = text[:at], text[at + len(RESULT_TAG):end], text[end + 1:]
    lines = [ln for ln in log.splitlines() if ln.strip()]
    last = re.sub(r"^probe \d+: ", "", lines[-1]) if lines else ""
    words = result.split(" ", 2)
    attempts = int(words[1]) if len(words) > 1 and words[1].isdigit() else 0
    if res.exit_code == 0 and words[0] == "ok":
        return ProbeResult("ok", attempts, words[2] if len(words) > 2 else "", last, log, body)
    if res.exit_code == GAVE_UP and words[0] == "gave-up":
        return ProbeResult("gave-up", attempts, "", last, log)
    why = res.stderr.strip() or res.error or last or f"exit status {res.exit_code}"
    if res.exit_code != MISSING_TOOL and res.exit_code is not None:
        why = f"the probe script failed (exit status {res.exit_code}): {why}"
    return ProbeResult("failed", attempts, "", last, log, detail=why)


async def run_probe(ctx: StepContext, script: Command, *, budget: float,
                    probe_timeout: float) -> ProbeResult:
    """Run ``script`` on the step's host through its executor (output streamed live)."""
    res = await ctx.executor.run(ctx.host, script, timeout=budget + probe_timeout + _GRACE,
                                 on_output=ctx.on_output)
    return parse(res)
