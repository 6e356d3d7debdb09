"""The web teacher's HTTP API and page (Starlette, served by uvicorn in the loop's process).

Every request needs the run's token: the printed URL carries it (``/?token=…``), the first visit turns it into
an HttpOnly, SameSite=Strict cookie and the page sends it as ``X-Exil-Token`` with every API call. On a
loopback address the ``Host`` header must name it too (no DNS rebinding). Bodies over ``max_body`` bytes are
refused. Only the package's own static files, registered kinds' view modules and in-memory images are served.

=========================  ===================================================================
``GET /``                  the page
``GET /api/state``         the loop's stage, the round's questions, the answers given (long poll: ``since``)
``POST /api/next``         claim the next question for this tab (``{keep: id}``: the one it shows, if open)
``GET /api/question/ID``   one question (with its answer, to revise it)
``POST /api/answer``       ``{id, answer, revise}`` → saved (in the journal) · 422 invalid · 409 taken · 410 in use
``POST /api/preview``      ``{id, data}`` → the kind's live feedback (ALICE: parsed parts)
``POST /api/review``       ``{action: train | hold}`` at the end of a round
=========================  ===================================================================
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from exil.common.errors import ExilError
from exil.common.oracle.asker import AnswerInUse, AnswerTaken
from exil.common.oracle.base import InvalidAnswer
from exil.common.oracle.kinds import kind_of
from exil.common.web.session import WebSession

STATIC = Path(__file__).parent / "static"
COOKIE = "exil_token"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


class TokenGate:
    """ASGI middleware: the token on every request, a sane Host on loopback, bounded bodies."""

    def __init__(self, app, token: str | None, hosts: set[str] | None, max_body: int):
        self.app, self.token, self.hosts, self.max_body = app, token, hosts, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        req = Request(scope)
        if self.hosts is not None and req.headers.get("host", "").rsplit(":", 1)[0] not in self.hosts:
            return await JSONResponse({"error": "unknown host"}, status_code=421)(scope, receive, send)
        if self.token is not None:
            given = req.headers.get("x-exil-token") or req.cookies.get(COOKIE)
            query = req.query_params.get("token")
            if scope["path"] == "/" and query is not None and secrets.compare_digest(query, self.token):
                resp = RedirectResponse("/", status_code=303)  # the token leaves the address bar
                resp.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
                return await resp(scope, receive, send)
            if given is None or not secrets.compare_digest(given, self.token):
                return await _forbidden(scope)(scope, receive, send)
        if int(req.headers.get("content-length") or 0) > self.max_body:
            return await JSONResponse({"error": f"the request is larger than {self.max_body} bytes"},
                                      status_code=413)(scope, receive, send)
        return await self.app(scope, _bounded(receive, self.max_body), send)


def _forbidden(scope) -> Response:
    if scope["path"].startswith("/api/"):
        return JSONResponse({"error": "this run's token is missing or wrong: open the URL exil printed"},
                            status_code=403)
    return HTMLResponse("<!doctype html><title>exil</title><p>This page needs the run's token: open the URL "
                        "that <code>exil</code> printed when the run started (it ends in <code>?token=…</code>).",
                        status_code=403)


def _bounded(receive, limit: int):
    seen = 0

    async def wrapped():
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise ExilError("request body too large")
        return message

    return wrapped


def build_app(session: WebSession, token: str | None, title: str = "exil", hosts: set[str] | None = None,
              max_body: int = 1_000_000, long_poll: float = 20.0):
    """The ASGI app of one run's teacher page (module docstring)."""

    def tab_of(req: Request) -> str:
        return req.headers.get("x-exil-tab", "")[:64] or "anonymous"

    def page(req: Request) -> Response:
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        html = html.replace("{{TITLE}}", _escape(title)).replace("{{TOKEN}}", token or "")
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    def view(req: Request) -> Response:
        try:
            path = kind_of(req.path_params["kind"]).view
        except ExilError:
            path = None
        if path is None or not Path(path).is_file():
            return JSONResponse({"error": "no view for this kind"}, status_code=404)
        return FileResponse(path, media_type="text/javascript")

    def media(req: Request) -> Response:
        data = session.media.get(req.path_params["key"])
        if data is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    def state(req: Request) -> Response:
        tab = tab_of(req)
        session.touch(tab)
        try:
            since = int(req.query_params.get("since", "-1"))
        except ValueError:
            since = -1
        if since == session.version:
            session.wait(since, timeout=min(long_poll, float(req.query_params.get("wait", long_poll))))
        return JSONResponse(session.state_json(tab))

    async def next_question(req: Request) -> Response:
        body = await _json(req)
        keep = body.get("keep") if isinstance(body, dict) else None
        e = session.next_for(tab_of(req), keep=str(keep) if keep else None)
        return JSONResponse({"question": session.question_json(e) if e is not None else None,
                             "state": session.state_json(tab_of(req))})

    def one(req: Request) -> Response:
        e = session.entry(req.path_params["qid"])
        if e is None:
            return JSONResponse({"error": "this question is no longer open (the run has moved on)"}, status_code=404)
        return JSONResponse({"question": session.question_json(e)})

    async def answer(req: Request) -> Response:
        body = await _json(req)
        if not isinstance(body, dict) or "id" not in body or "answer" not in body:
            return JSONResponse({"error": "send {id, answer}"}, status_code=400)
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(_answer, body, tab_of(req))

    def _answer(body: dict[str, Any], tab: str) -> Response:
        qid, revise = str(body["id"]), bool(body.get("revise"))
        try:
            e = session.submit(qid, body["answer"], revise)
        except KeyError:
            return JSONResponse({"error": "this question is no longer open (the run has moved on)"}, status_code=404)
        except InvalidAnswer as err:
            return JSONResponse({"error": str(err)}, status_code=422)
        except AnswerTaken as err:
            nxt = session.next_for(tab)
            return JSONResponse({"error": str(err), "taken": True,
                                 "next": session.question_json(nxt) if nxt else None}, status_code=409)
        except AnswerInUse as err:
            return JSONResponse({"error": str(err)}, status_code=410)
        nxt = None if revise else session.next_for(tab)
        return JSONResponse({"saved": True, "id": qid, "summary": e.summary,
                             "next": session.question_json(nxt) if nxt else None})

    async def preview(req: Request) -> Response:
        body = await _json(req)
        try:
            return JSONResponse(session.preview(str(body.get("id")), body.get("data")))
        except KeyError:
            return JSONResponse({"error": "this question is no longer open"}, status_code=404)

    async def review(req: Request) -> Response:
        body = await _json(req)
        action = body.get("action") if isinstance(body, dict) else None
        if action not in ("train", "hold"):
            return JSONResponse({"error": "action must be train or hold"}, status_code=400)
        session.set_review(action)
        return JSONResponse({"ok": True})

    routes = [
        Route("/", page), Mount("/static", StaticFiles(directory=STATIC)), Route("/views/{kind}.js", view),
        Route("/media/{key}.png", media), Route("/api/state", state), Route("/api/next", next_question,
                                                                          methods=["POST"]),
        Route("/api/question/{qid:path}", one), Route("/api/answer", answer, methods=["POST"]),
        Route("/api/preview", preview, methods=["POST"]), Route("/api/review", review, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    return TokenGate(app, token, hosts, max_body)


async def _json(req: Request) -> Any:
    try:
        return json.loads(await req.body() or b"null")
    except (ValueError, ExilError):
        return None


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")

