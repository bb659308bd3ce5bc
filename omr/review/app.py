"""The review station's web app: Flask pages over `ReviewService`, served by waitress.

Pages (every one needs a logged-in examiner; ``/login`` asks for the name)::

    /                        the queue, worst first; ?reason=dirty filters
    /card/<id>               the card screen (keyboard: see the page's help line)
    /card/<id>/panel         its decision panel (htmx swaps it after each decision)
    /card/<id>/image.jpg     the page as read; /card/<id>/crop/<q>.png one question
    /questions, /question/<q>  the by-question mode: one question on every card
    /supervisor              disagreements of double entry
    /stats                   per examiner
    POST /card/<id>/decide | finalise | postpone | undo   (CSRF token required)

Security: with a ``token`` (required by ``omr review`` off loopback) every request
must carry it -- ``?token=`` once (then an HttpOnly, SameSite=Strict cookie), or the
``X-Review-Token`` header -- or gets 403.  Every POST must carry the session's CSRF
token (the ``X-CSRF-Token`` header htmx sends, or a ``csrf`` form field), so another
site cannot post decisions through an examiner's browser.  The examiner's name is kept
in the signed session cookie (the secret is new at each start: a restart logs
everyone out).
"""

from __future__ import annotations

import functools
import hmac
import json
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import cv2
import numpy as np

from omr.errors import OmrError, ReviewError
from omr.review.geometry import box_quads_px, code_window, crop_question, question_window
from omr.review.service import ReviewService

__all__ = ["TOKEN_COOKIE", "ServerThread", "create_app", "serve"]

TOKEN_COOKIE = "omr_review_token"
#: width of the page image on the card screen (the grid is drawn in image pixels, scaled by the SVG)
PAGE_WIDTH_PX = 1000


def create_app(service: ReviewService, *, token: str | None = None) -> Any:
    """The Flask app over ``service``; ``token`` makes every request carry it."""
    from flask import (
        Flask,
        Response,
        abort,
        g,
        make_response,
        redirect,
        render_template,
        request,
        session,
        url_for,
    )

    app = Flask(__name__)
    app.secret_key = secrets.token_bytes(32)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict")
    app.jinja_env.globals["double_entry"] = service.double_entry

    @app.before_request
    def check_token() -> Any:
        if token is None:
            return None
        given = (
            request.args.get("token")
            or request.headers.get("X-Review-Token")
            or request.cookies.get(TOKEN_COOKIE)
        )
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            return Response(
                "403: this review station needs its token (open the URL 'omr review' printed)\n",
                status=403,
                mimetype="text/plain",
            )
        g.set_token_cookie = request.args.get("token") is not None
        return None

    @app.after_request
    def headers(resp: Response) -> Response:
        if token is not None and g.get("set_token_cookie"):
            resp.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"
        )
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp

    @app.before_request
    def check_csrf() -> Any:
        if request.method != "POST":
            return None
        expected = session.get("csrf")
        given = request.headers.get("X-CSRF-Token") or request.form.get("csrf")
        if not expected or not given or not hmac.compare_digest(str(expected), str(given)):
            return Response(
                "400: missing or wrong CSRF token; reload the page\n", status=400, mimetype="text/plain"
            )
        return None

    @app.context_processor
    def common() -> dict:
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(24)
        return {"examiner": session.get("examiner", ""), "csrf": session["csrf"]}

    def examiner_required(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not session.get("examiner"):
                return redirect(url_for("login", next=request.full_path))
            return view(*args, **kwargs)

        return wrapper

    def me() -> str:
        return str(session.get("examiner", ""))

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        error = ""
        if request.method == "POST":
            name = " ".join(request.form.get("name", "").split())[:60]
            if name:
                session["examiner"] = name
                target = request.args.get("next") or url_for("queue")
                return redirect(target if target.startswith("/") and not target.startswith("//") else "/")
            error = "type your name: every decision is recorded under it"
        return render_template("login.html", error=error)

    @app.post("/logout")
    def logout() -> Any:
        session.pop("examiner", None)
        return redirect(url_for("login"))

    @app.get("/")
    @examiner_required
    def queue() -> Any:
        reason = request.args.get("reason") or None
        entries = service.queue(me(), reason)
        return render_template(
            "queue.html",
            entries=entries,
            reason=reason,
            reasons=service.reasons(),
            next_id=service.next_card(me(), reason=reason),
        )

    @app.get("/supervisor")
    @examiner_required
    def supervisor() -> Any:
        return render_template("supervisor.html", entries=service.supervisor_queue(me()))

    @app.get("/stats")
    @examiner_required
    def stats() -> Any:
        return render_template("stats.html", stats=service.stats())

    def _extra_questions() -> list[int]:
        return [int(q) for q in request.args.getlist("q") if q.isdigit()]

    def _panel(row_id: int, error: str = "", status: int = 200) -> Any:
        view = service.card_view(row_id, me(), _extra_questions())
        return make_response(
            render_template(
                "panel.html",
                v=view,
                error=error,
                extra=_extra_questions(),
                reason=request.args.get("reason", ""),
            ),
            status,
        )

    @app.get("/card/<int:row_id>")
    @examiner_required
    def card(row_id: int) -> Any:
        try:
            view = service.card_view(row_id, me(), _extra_questions())
        except ReviewError as err:
            return render_template("message.html", message=str(err)), 404
        layout = service.layout
        overlay = _overlay(service, row_id, view)
        return render_template(
            "card.html",
            v=view,
            overlay=overlay,
            extra=_extra_questions(),
            reason=request.args.get("reason", ""),
            questions=layout.questions,
        )

    @app.get("/card/<int:row_id>/panel")
    @examiner_required
    def panel(row_id: int) -> Any:
        return _panel(row_id)

    def _post(row_id: int, action: Callable[[str], object]) -> Any:
        try:
            action(request.form.get("content_hash", ""))
        except ReviewError as err:
            return _panel(row_id, error=str(err))
        return _panel(row_id)

    @app.post("/card/<int:row_id>/decide")
    @examiner_required
    def decide(row_id: int) -> Any:
        return _post(
            row_id,
            lambda h: service.decide(
                row_id,
                h,
                me(),
                request.form.get("field", ""),
                request.form.get("value", "").strip().upper(),
                request.form.get("note", ""),
            ),
        )

    @app.post("/card/<int:row_id>/carry")
    @examiner_required
    def carry(row_id: int) -> Any:
        return _post(row_id, lambda h: service.carry_over(row_id, h, me()))

    @app.post("/card/<int:row_id>/undo")
    @examiner_required
    def undo(row_id: int) -> Any:
        return _post(row_id, lambda h: service.undo(row_id, h, me()))

    def _next(row_id: int) -> Any:
        reason = request.form.get("reason") or None
        nxt = service.next_card(me(), after=row_id, reason=reason)
        target = (
            url_for("card", row_id=nxt, **({"reason": reason} if reason else {}))
            if nxt
            else url_for("queue", done=row_id)
        )
        resp = make_response(f'<a href="{target}">next</a>', 200)  # htmx follows HX-Redirect
        resp.headers["HX-Redirect"] = target
        return resp

    @app.post("/card/<int:row_id>/finalise")
    @examiner_required
    def finalise(row_id: int) -> Any:
        try:
            service.finalise(row_id, request.form.get("content_hash", ""), me())
        except ReviewError as err:
            return _panel(row_id, error=str(err))
        if request.form.get("stay"):
            return _panel(row_id)
        return _next(row_id)

    @app.post("/card/<int:row_id>/postpone")
    @examiner_required
    def postpone(row_id: int) -> Any:
        try:
            service.postpone(row_id, request.form.get("content_hash", ""), me())
        except ReviewError as err:
            return _panel(row_id, error=str(err))
        return _next(row_id)

    @app.get("/card/<int:row_id>/image.jpg")
    @examiner_required
    def image(row_id: int) -> Any:
        try:
            gray = service.page_image(row_id)
        except (OmrError, OSError) as err:
            return Response(str(err), status=404, mimetype="text/plain")
        scale = min(1.0, PAGE_WIDTH_PX / gray.shape[1])
        small = (
            cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
        )
        ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        resp = Response(data.tobytes(), mimetype="image/jpeg")
        resp.headers["Cache-Control"] = "private, max-age=3600"
        return resp

    @app.get("/card/<int:row_id>/crop/<int:question>.png")
    @examiner_required
    def crop(row_id: int, question: int) -> Any:
        try:
            _, geo = service.geometry(row_id)
            gray = service.page_image(row_id)
        except (OmrError, OSError) as err:
            return Response(str(err), status=404, mimetype="text/plain")
        if not 1 <= question <= service.layout.questions:
            abort(404)
        window = question_window(
            service.layout, question, geo.box_shifts_mm, neighbours=int(request.args.get("n", 1))
        )
        ok, data = cv2.imencode(".png", crop_question(gray, geo.homography, window))
        assert ok
        resp = Response(data.tobytes(), mimetype="image/png")
        resp.headers["Cache-Control"] = "private, max-age=3600"
        return resp

    @app.get("/card/<int:row_id>/crop/code.png")
    @examiner_required
    def code_crop(row_id: int) -> Any:
        try:
            _, geo = service.geometry(row_id)
            gray = service.page_image(row_id)
        except (OmrError, OSError) as err:
            return Response(str(err), status=404, mimetype="text/plain")
        window = code_window(service.layout, geo.box_shifts_mm)
        ok, data = cv2.imencode(".png", crop_question(gray, geo.homography, window, px_per_mm=5.0))
        assert ok
        resp = Response(data.tobytes(), mimetype="image/png")
        resp.headers["Cache-Control"] = "private, max-age=3600"
        return resp

    @app.get("/favicon.ico")
    def favicon() -> Any:
        return Response(status=204)

    @app.get("/questions")
    @examiner_required
    def questions() -> Any:
        return render_template("questions.html", counts=service.doubt_counts(me()))

    @app.get("/question/<int:question>")
    @examiner_required
    def question(question: int) -> Any:
        try:
            tiles = service.question_tiles(question, me(), only_doubts=not request.args.get("all"))
        except ReviewError as err:
            return render_template("message.html", message=str(err)), 404
        if request.headers.get("HX-Request"):
            return render_template(
                "tiles.html", tiles=tiles, question=question, options=service.layout.options
            )
        return render_template(
            "question.html",
            tiles=tiles,
            question=question,
            options=service.layout.options,
            questions=service.layout.questions,
        )

    @app.post("/question/<int:question>/decide")
    @examiner_required
    def question_decide(question: int) -> Any:
        error = ""
        try:
            service.decide(
                int(request.form.get("card", "0")),
                request.form.get("content_hash", ""),
                me(),
                f"answer:{question}",
                request.form.get("value", "").strip().upper(),
            )
        except (ReviewError, ValueError) as err:
            error = str(err)
        tiles = service.question_tiles(question, me(), only_doubts=not request.form.get("all"))
        return render_template(
            "tiles.html", tiles=tiles, question=question, options=service.layout.options, error=error
        )

    app.jinja_env.filters["tojson_attr"] = lambda value: json.dumps(value)
    app.jinja_env.globals["urlencode"] = urlencode
    return app


def _overlay(service: ReviewService, row_id: int, view: Any) -> dict:
    """The grid to draw over the page image: box polygons in image pixels, by state."""
    try:
        _, geo = service.geometry(row_id)
    except ReviewError:
        return {"width": 0, "height": 0, "paths": {}, "questions": {}}
    layout = service.layout
    quads = box_quads_px(layout, geo.homography, geo.box_shifts_mm)
    fill = service.store().fill_matrix(view.card.source, view.card.page)
    states = fill.states if fill is not None else np.zeros(len(quads), np.int8)
    try:
        height, width = service.page_image(row_id).shape
    except (OmrError, OSError):
        return {"width": 0, "height": 0, "paths": {}, "questions": {}}
    paths: dict[str, list[str]] = {"blank": [], "marked": [], "ambiguous": []}
    names = {0: "blank", 1: "marked", 2: "ambiguous"}
    for quad, state in zip(quads, states, strict=True):
        paths[names.get(int(state), "ambiguous")].append(
            "M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in quad) + "Z"
        )
    n = len(layout.options)
    focus = {}
    for item in view.items:
        if item.question:
            q = item.question
            pts = quads[(q - 1) * n : q * n].reshape(-1, 2)
            x0, y0 = pts.min(axis=0)
            x1, y1 = pts.max(axis=0)
            pad = (x1 - x0) * 0.06
            focus[q] = (float(x0 - pad), float(y0 - pad), float(x1 - x0 + 2 * pad), float(y1 - y0 + 2 * pad))
    return {
        "width": width,
        "height": height,
        "paths": {k: " ".join(v) for k, v in paths.items()},
        "questions": focus,
    }


def serve(app: Any, host: str, port: int, *, threads: int = 6) -> Any:
    """A waitress server for ``app`` (not yet running: call ``.run()``; ``.close()`` stops it)."""
    import logging

    from waitress.server import create_server

    # a page asks for its image and crops at once: a short wait for a thread is normal here
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    return create_server(app, host=host, port=port, threads=threads, ident="omr-review")


class ServerThread:
    """A waitress server running on a daemon thread, stopped with `stop` (tests, benchmarks).

    Closing a waitress server from another thread races its select loop, which may then
    fail on the closed socket ("Bad file descriptor"); that failure, once a stop was asked
    for, is the stop itself and is not raised.
    """

    def __init__(self, app: Any, host: str, port: int, *, threads: int = 6) -> None:
        import threading

        self.server = serve(app, host, port, threads=threads)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="omr-review-server")
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    def _run(self) -> None:
        try:
            self.server.run()
        except (OSError, ValueError):
            if not self._stopping.is_set():
                raise

    def stop(self) -> None:
        self._stopping.set()
        self.server.close()
        self._thread.join(timeout=2.0)
