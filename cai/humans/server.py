"""The labeling page: a small starlette app over a :class:`~cai.humans.store.LabelStore`.

    cai humans serve pairs/ --db labels.sqlite            # http://127.0.0.1:8000/
    cai humans serve pairs/ --db labels.sqlite --host 0.0.0.0   # prints a URL with a token

The page (``static/``: plain HTML, CSS and JS, no build step, nothing fetched from the network)
asks ``/api/next`` for a task, shows the guideline it is judged by, the conversation and
responses A and B side by side, and posts the pick (with an optional comment) to ``/api/label``;
``/api/undo`` takes back the rater's own label. ``/guidelines/HASH`` shows a guideline in full.
All state lives in SQLite; the server holds none, so it can be killed and restarted at any moment.
Pages are sent with a Content-Security-Policy that allows only this server's own script and style.

Access: on a loopback address only requests whose Host is a loopback name are served (a web page
elsewhere cannot reach the server through DNS rebinding); on any other address every request must
carry the token (``?token=`` once, then a cookie; or an ``X-Cai-Token`` header). POSTs must be
JSON, which a cross-site form cannot send.
"""

from __future__ import annotations

import hmac
import json
import secrets
import socket
from pathlib import Path
from typing import Callable

from cai.core.errors import CaiError, require
from cai.humans.store import LabelConflict, LabelStore, UnknownTask, clean_labeler

STATIC = Path(__file__).parent / "static"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TOKEN_COOKIE = "cai_humans_token"
MAX_BODY = 64 * 1024
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def create_app(store: LabelStore, *, token: str | None = None, labeler: str = "", loopback_only: bool = True):
    """The ASGI app. ``token``: required on every request when set. ``loopback_only``: refuse
    requests whose Host header is not a loopback name (for a server bound to 127.0.0.1)."""
    require("starlette", extra="serve", purpose="the labeling page")
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse
    from starlette.routing import Route

    from cai.humans.guidelines import render_markdown

    page_headers = {"Cache-Control": "no-store", "Content-Security-Policy": CSP,
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def who(value) -> str:
        return clean_labeler(value if isinstance(value, str) else "")

    async def body(request: Request) -> dict:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise _HTTPProblem(415, "send JSON (Content-Type: application/json)")
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise _HTTPProblem(413, "request too large")
        try:
            data = json.loads(raw)
        except ValueError:
            raise _HTTPProblem(400, "malformed JSON") from None
        if not isinstance(data, dict):
            raise _HTTPProblem(400, "expected a JSON object")
        return data

    def public(task) -> dict | None:
        if task is None:
            return None
        data = task.public()
        if data["guideline"]:
            data["guideline"]["html"] = render_markdown(data["guideline"].pop("summary"))
        return data

    def answer(labeler_name: str, task=None, **extra) -> JSONResponse:
        progress = store.progress(labeler_name)
        payload = {"task": public(task), "progress": progress, **extra}
        return JSONResponse(payload, headers={"Cache-Control": "no-store"})

    async def page(request: Request):
        return FileResponse(STATIC / "label.html", headers=page_headers)

    async def guideline_page(request: Request):
        g = await run_in_threadpool(store.guideline, request.path_params["hash"])
        if g is None:
            return error(404, "no such guideline")
        from html import escape

        html = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(g.title)}</title>'
                f'<link rel="icon" href="data:,"><link rel="stylesheet" href="../static/label.css"></head>'
                f'<body class="guidelines"><main id="guidelines" data-hash="{escape(g.hash)}">'
                f'{render_markdown(g.text)}</main></body></html>')
        return HTMLResponse(html, headers=page_headers)

    async def config(request: Request):
        return JSONResponse({"labeler": labeler, "lease_seconds": store.lease_seconds,
                             "raters_per_task": store.raters_per_task})

    def next_task(request: Request):
        try:
            name = who(request.query_params.get("labeler"))
        except ValueError as exc:
            return error(400, str(exc))
        return answer(name, store.next_task(name))

    async def post(request: Request, action: Callable[[dict, str], JSONResponse]):
        try:
            data = await body(request)
            name = who(data.get("labeler"))
        except _HTTPProblem as exc:
            return error(exc.status, exc.message)
        except ValueError as exc:
            return error(400, str(exc))
        try:
            return await run_in_threadpool(action, data, name)
        except UnknownTask:
            return error(404, "no such task")
        except LabelConflict as exc:
            return error(409, str(exc))
        except ValueError as exc:
            return error(400, str(exc))

    def _task_id(data: dict) -> str:
        task = data.get("task")
        if not isinstance(task, str) or not task:
            raise ValueError("'task' must be a task id")
        return task

    def do_label(data: dict, name: str) -> JSONResponse:
        seconds = data.get("seconds")
        seconds = float(seconds) if isinstance(seconds, (int, float)) and seconds >= 0 else None
        comment = data.get("comment") or ""
        if not isinstance(comment, str):
            raise ValueError("'comment' must be text")
        stored = store.label(name, _task_id(data), str(data.get("choice")), seconds, comment)
        return answer(name, stored=stored)

    def do_undo(data: dict, name: str) -> JSONResponse:
        return answer(name, store.undo(name, _task_id(data)))

    def do_skip(data: dict, name: str) -> JSONResponse:
        store.skip(name, _task_id(data))
        return answer(name)

    def do_unskip(data: dict, name: str) -> JSONResponse:
        store.unskip(name)
        return answer(name)

    def do_renew(data: dict, name: str) -> JSONResponse:
        return answer(name, held=store.renew(name, _task_id(data)))

    async def label(request):
        return await post(request, do_label)

    async def skip(request):
        return await post(request, do_skip)

    async def unskip(request):
        return await post(request, do_unskip)

    async def renew(request):
        return await post(request, do_renew)

    async def undo(request):
        return await post(request, do_undo)

    async def asset(request: Request):
        name = request.path_params["name"]
        if name not in ("label.js", "label.css"):
            return error(404, "not found")
        return FileResponse(STATIC / name, headers={"Cache-Control": "no-store"})

    routes = [
        Route("/", page),
        Route("/static/{name}", asset),
        Route("/api/config", config),
        Route("/api/next", next_task),
        Route("/api/label", label, methods=["POST"]),
        Route("/api/skip", skip, methods=["POST"]),
        Route("/api/unskip", unskip, methods=["POST"]),
        Route("/api/renew", renew, methods=["POST"]),
        Route("/api/undo", undo, methods=["POST"]),
        Route("/guidelines/{hash}", guideline_page),
    ]
    app = Starlette(routes=routes)
    return _Gate(app, token=token, loopback_only=loopback_only)


class _HTTPProblem(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


class _Gate:
    """ASGI middleware: the Host check and the token check, before any route runs."""

    def __init__(self, app, *, token: str | None, loopback_only: bool):
        self.app, self.token, self.loopback_only = app, token, loopback_only

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.requests import Request
        from starlette.responses import PlainTextResponse

        request = Request(scope)
        if self.loopback_only and _host_name(request.headers.get("host", "")) not in LOOPBACK:
            return await PlainTextResponse("unknown host", status_code=403)(scope, receive, send)
        if self.token is None:
            return await self.app(scope, receive, send)
        from_query = request.query_params.get("token")
        given = from_query or request.headers.get("x-cai-token") or request.cookies.get(TOKEN_COOKIE) or ""
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return await PlainTextResponse("token required: open the URL printed by `cai humans serve`",
                                           status_code=401)(scope, receive, send)
        if not from_query:
            return await self.app(scope, receive, send)
        cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict".encode()

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                message = dict(message, headers=list(message.get("headers", [])) + [(b"set-cookie", cookie)])
            await send(message)

        return await self.app(scope, receive, send_with_cookie)


def _host_name(host: str) -> str:
    """The name part of a Host header: ``127.0.0.1:8000`` → ``127.0.0.1``, ``[::1]:80`` → ``::1``."""
    if host.startswith("["):
        return host[1:].split("]")[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on host:port (port 0: any free port), or a one-line CaiError."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise CaiError(f"cannot resolve --host {host}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(128)  # connections queue from now on, even before uvicorn starts accepting
    except OSError as exc:
        sock.close()
        raise CaiError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def serve(tasks: str | Path, db: str | Path, *, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          labeler: str = "", lease_seconds: float = 120.0, raters_per_task: int = 1,
          guidelines: str | Path | None = None, constitution: str | None = None, principles: str | Path | None = None,
          gold: str | Path | None = None, gold_rate: float = 0.1, echo: Callable[[str], None] = print) -> None:
    """Load ``tasks`` (any pairs file or folder) into ``db`` and serve the labeling page until stopped.

    ``raters_per_task``: how many different raters label each task. ``guidelines`` (a Markdown
    file) or ``constitution`` (a name or YAML file): the text tasks are judged by when their focus
    principle is unknown; principles come from ``principles`` (default ``principles/`` when it
    exists). ``gold``: pairs whose chosen is the known answer, mixed in at ``gold_rate``."""
    require("uvicorn", extra="serve", purpose="the labeling page")
    import uvicorn

    from cai.data.pairs import read_pairs

    if labeler:
        try:
            labeler = clean_labeler(labeler)
        except ValueError as exc:
            raise CaiError(f"--labeler: {exc}") from None
    store = LabelStore(db, lease_seconds=lease_seconds, raters_per_task=raters_per_task, gold_rate=gold_rate)
    read_counts: dict = {}
    counts = store.add_tasks(read_pairs(tasks, counts=read_counts), source=str(tasks))
    counts["empty_response"] += read_counts["empty_response"]
    if counts["total"] == 0:
        raise CaiError("no tasks to label", path=str(tasks))
    gold_counts = store.add_tasks(read_pairs(gold), source=str(gold), kind="gold") if gold else None
    principled = _assign_guidelines(store, guidelines, constitution, principles)
    if gold and principled["task"] and principled["gold"] < gold_counts["total"]:
        echo(f"warning: {gold_counts['total'] - principled['gold']} gold task(s) name no known principle while routed "
             f"tasks show their principle's question; give gold pairs principle_ids so they do not stand out")
    loopback = host in LOOPBACK
    if not loopback and not token:
        token = secrets.token_urlsafe(18)
    sock = bind(host, port)
    port = sock.getsockname()[1]
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host  # a wildcard is no address to open
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    progress = store.progress()
    echo(f"{counts['total']} tasks ({counts['added']} new, {counts['identical']} identical pairs and "
         f"{counts['empty_response']} with an empty response left out), "
         f"{progress['labeled']} labeled by {raters_per_task} rater(s) each, {progress['labels']} labels; "
         f"labels go to {db}")
    if gold_counts:
        echo(f"{gold_counts['total']} gold tasks ({gold_counts['added']} new), mixed in at {gold_rate:g}")
    app = create_app(store, token=token, labeler=labeler, loopback_only=loopback)
    _warm_up()
    echo(f"labeling page: {url}")  # once the app is ready: a burst of raters at this line is served at once
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


def _warm_up() -> None:
    """Import now what the first request would import on the event loop: anyio loads its asyncio
    backend on the first run_in_threadpool (80-150 ms here), which held up every rater of a burst."""
    import importlib

    try:
        importlib.import_module("anyio._backends._asyncio")
    except ImportError:  # a future anyio that moved it: the first request pays, nothing breaks
        pass


def _assign_guidelines(store: LabelStore, guidelines, constitution, principles) -> dict[str, int]:
    """Give every task (gold ones too, which must look the same) the guideline it is judged by;
    returns how many tasks of each kind show a principle's question."""
    from cai.humans import guidelines as gl

    default = None
    library = {}
    if constitution:
        from cai.sl.pipeline import resolve_constitution

        c = resolve_constitution(constitution, str(principles) if principles else None)
        default = gl.constitution_guideline(c)
        library = {p.id: p for p in c.principles}
    if guidelines:
        default = gl.file_guideline(guidelines)
    pdir = Path(principles) if principles else Path("principles")
    if principles or pdir.is_dir():
        from cai.principles.library import load_principles_dir

        library = {**load_principles_dir(pdir), **library}
    kinds, rows = {}, {}
    for kind in ("task", "gold"):
        for pid, row in store.pairs(kind):
            kinds[pid], rows[pid] = kind, row
    assigned = gl.assign(rows, principles=library, default=default)
    store.set_guidelines(assigned)
    principled = {"task": 0, "gold": 0}
    for pid, g in assigned.items():
        principled[kinds[pid]] += g is not None and g is not default
    return principled
