"""The LLM client against a misbehaving stand-in endpoint on loopback: a raw socket server that answers each
request with scripted bytes (bad status lines, cut-off and trickling bodies, replies that are not chat
completions, rate limits, a 401 that echoes the credentials). Each failure is either retried to success (the
server counts the requests it got) or ends in one clear ExilError; the API key never appears in it."""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
import time

import pytest

from exil.common.errors import ConfigError, ExilError
from exil.common.oracle.llm import ChatClient, InvalidReply, parse_reply, redact

MSGS = [{"role": "user", "content": "why fresh"}]
KEY = "sk-secret-0123456789abcdef"


def http(status: int | str, body: bytes | str | object = b"", headers: dict[str, str] | None = None,
         length: int | None = None) -> bytes:
    """A whole HTTP/1.1 response (``Connection: close``); ``length`` overrides the Content-Length."""
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    body = body.encode() if isinstance(body, str) else body
    reason = {200: "OK", 401: "Unauthorized", 429: "Too Many Requests", 503: "Service Unavailable"}.get(status, "X")
    head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json",
            f"Content-Length: {len(body) if length is None else length}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def completion(content: object = "because fresh") -> bytes:
    return http(200, {"choices": [{"message": {"role": "assistant", "content": content}}]})


class Stand:
    """Answers request ``n`` with ``replies[n]`` (the last one repeats): bytes to send before closing, or a
    function of the socket and the request (``{"path", "headers", "body"}``) that writes what it likes."""

    def __init__(self, *replies):
        self.replies, self.requests, self.lock, self.stop = list(replies), [], threading.Lock(), threading.Event()
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                line = self.rfile.readline()
                if not line:
                    return
                headers = {}
                while (h := self.rfile.readline().strip()):
                    k, _, v = h.decode().partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = self.rfile.read(int(headers.get("content-length", 0)))
                req = {"path": line.split()[1].decode(), "headers": headers, "body": json.loads(body)}
                with owner.lock:
                    owner.requests.append(req)
                    reply = owner.replies[min(len(owner.requests), len(owner.replies)) - 1]
                try:
                    if callable(reply):
                        reply(self.connection, req)
                    else:
                        self.connection.sendall(reply)
                except OSError:  # the client hung up (e.g. at its deadline)
                    pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def count(self) -> int:
        return len(self.requests)

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand():
    made = []

    def make(*replies):
        made.append(Stand(*replies))
        return made[-1]

    yield make
    for s in made:
        s.close()


def client(s: Stand, **kw) -> ChatClient:
    kw = {"backoff": 0.01, "max_backoff": 0.02, "timeout": 5, "retries": 2, **kw}
    return ChatClient(s.url, "stand-in", **kw)


# ------------------------------------------------------------------ transient failures, retried to success
@pytest.mark.parametrize("bad", [
    pytest.param(http(200, {"choices": None}), id="choices-null"),
    pytest.param(http(200, [1, 2, 3]), id="json-list"),
    pytest.param(completion(42), id="content-42"),
    pytest.param(http(200, "{not json"), id="invalid-json"),
    pytest.param(http(200, {"choices": [{}]}), id="no-message"),
    pytest.param(b"HTTP/1.1 abc nonsense\r\n\r\n", id="bad-status-line"),
    pytest.param(b"garbage\r\n\r\n", id="no-status-line"),
    pytest.param(http(200, b'{"choices": [{"mess', length=500), id="cut-off-body"),
    pytest.param(b"", id="closed-without-reply"),
    pytest.param(http(503, {"error": "overloaded"}), id="503"),
    pytest.param(http(408, "slow"), id="408"),
])
def test_a_transient_failure_is_retried_and_then_succeeds(stand, bad):
    s = stand(bad, completion())
    c = client(s)
    assert c.complete(MSGS) == "because fresh"
    assert s.count == 2 and c.requests == 2
    assert s.requests[-1]["path"] == "/v1/chat/completions" and s.requests[-1]["body"]["model"] == "stand-in"


# ------------------------------------------------------------------ ... or ends in a clear error
@pytest.mark.parametrize("bad, says", [
    (http(200, {"choices": None}), r"`choices` is null, not an array"),
    (http(200, [1, 2, 3]), r"the body is an array, not a JSON object"),
    (completion(42), r"`choices\[0\]\.message\.content` is a number, not a string"),
    (http(200, {"choices": []}), r"`choices` is empty"),
    (http(200, {"choices": [{"message": {"role": "assistant"}}]}), r"content` is missing"),
    (http(200, {"error": {"message": "quota"}}), r"an error instead of `choices`.*quota"),
    (http(200, "{not json"), r"the body is not JSON"),
    (b"HTTP/1.1 abc nonsense\r\n\r\n", r"RemoteProtocolError"),
    (http(200, b'{"choices": [{"mess', length=500), r"RemoteProtocolError"),
])
def test_invalid_replies_end_in_a_clear_error_after_the_retries(stand, bad, says):
    s = stand(bad)
    with pytest.raises(ExilError, match=rf"failed 2 times; last: .*{says}") as e:
        client(s, retries=1).complete(MSGS)
    text = str(e.value)
    assert s.count == 2 and s.url in text and "resume" in text
    assert "TypeError" not in text and "KeyError" not in text


def test_a_trickling_body_is_cut_at_the_deadline(stand):
    def trickle(sock, req):
        sock.sendall(http(200, b"", length=200))  # the headers at once, then one byte a second
        for b in json.dumps({"choices": [{"message": {"content": "x" * 150}}]}).encode():
            if s.stop.wait(1.0):
                return
            sock.sendall(bytes([b]))

    s = stand(trickle)
    t0 = time.monotonic()
    with pytest.raises(ExilError, match="no complete reply within the 1 s timeout") as e:
        client(s, timeout=1, retries=0).complete(MSGS)
    elapsed = time.monotonic() - t0
    assert elapsed < 3, elapsed
    assert s.count == 1 and "failed 1 times" in str(e.value)


def trickled_head(stop: threading.Event, gap: float = 0.2):
    """A reply whose status line and headers come one byte every ``gap`` s (each byte well within any read
    timeout), about 60 s in all: only a deadline on the whole attempt cuts it."""
    head = http(200, "", {"X-Padding": "p" * 240}).split(b"\r\n\r\n")[0] + b"\r\n\r\n"

    def reply(sock, req):
        for b in head:
            if stop.wait(gap):
                return
            sock.sendall(bytes([b]))

    return reply


def test_a_server_trickling_its_headers_is_cut_at_the_deadline(stand):
    s = stand()
    s.replies.append(trickled_head(s.stop))
    t0 = time.monotonic()
    with pytest.raises(ExilError, match=r"failed 1 times; last: no complete reply within the 1 s timeout"):
        client(s, timeout=1, retries=0).complete(MSGS)
    elapsed = time.monotonic() - t0
    assert elapsed < 3, f"took {elapsed:.1f} s"  # each byte within a per-read timeout: ~60 s if only those held
    assert s.count == 1


def test_a_proxy_from_the_environment_is_used_and_its_trickle_cut_too(stand, monkeypatch):
    s = stand(completion())
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    proxy = s.url.rsplit("/", 1)[0]
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("http_proxy", proxy)
    c = ChatClient("http://llm.invalid/v1", "stand-in", timeout=1, retries=0)
    assert c.complete(MSGS) == "because fresh"  # sent to the proxy (the stand-in), in absolute form
    assert s.requests[0]["path"] == "http://llm.invalid/v1/chat/completions"
    s.replies[:] = [trickled_head(s.stop)]
    t0 = time.monotonic()
    with pytest.raises(ExilError, match="no complete reply within the 1 s timeout"):
        c.complete([{"role": "user", "content": "why rotten"}])
    assert time.monotonic() - t0 < 3 and s.count == 2
    c.close()


def test_retries_stop_at_the_request_deadline_with_a_clear_error(stand):
    s = stand(http(503, {"error": "overloaded"}))
    t0 = time.monotonic()
    with pytest.raises(ExilError, match=r"no answer within the request's 1\.5 s deadline \(\d+ attempts\); "
                                        r"last: HTTP 503.*Raise oracle\.client\.deadline") as e:
        client(s, timeout=1, retries=1000, backoff=0.2, max_backoff=0.2, deadline=1.5).complete(MSGS)
    elapsed = time.monotonic() - t0
    assert elapsed < 2.5, f"took {elapsed:.1f} s"
    assert 2 <= s.count <= 9 and "resume" in str(e.value)


def test_an_attempt_is_cut_at_the_request_deadline_when_that_comes_first(stand):
    s = stand(lambda sock, req: s.stop.wait(30))  # never answers; the attempt's own timeout is longer
    t0 = time.monotonic()
    with pytest.raises(ExilError, match=r"no complete reply before the request's 1 s deadline.*"
                                        r"raise oracle\.client\.deadline"):
        client(s, timeout=20, retries=3, deadline=1).complete(MSGS)
    assert time.monotonic() - t0 < 3 and s.count == 1


def test_the_defaults_bound_a_request_well_below_391_s():
    from pathlib import Path

    from omegaconf import OmegaConf

    c = ChatClient("http://127.0.0.1:1/v1", "m")
    assert c.deadline == 180 and c.timeout == 60 and c.retries == 5  # 6 × 60 s + 31 s of waits were possible
    conf = Path(__file__).resolve().parents[2] / "common" / "conf" / "oracle" / "llm.yaml"
    assert OmegaConf.load(conf).client.deadline == 180


def test_a_redacted_base_url_takes_its_credentials_from_the_environment(stand, monkeypatch):
    import base64

    s = stand(completion())
    full = s.url.replace("http://", "http://user:pw-123@")
    stored = full.replace("pw-123", "[redacted]")  # what a resumed run's config (from its journal) says
    monkeypatch.setenv("TEST_BASE_URL", full + "/")
    c = ChatClient(stored, "m", base_url_env="TEST_BASE_URL", retries=0)
    assert c.complete(MSGS) == "because fresh"
    assert s.requests[0]["headers"]["authorization"] == "Basic " + base64.b64encode(b"user:pw-123").decode()
    monkeypatch.setenv("TEST_BASE_URL", full.replace("pw-123", "other").replace("user", "someone"))
    with pytest.raises(ConfigError, match=r"redacted credential .*\$TEST_BASE_URL holds another URL"):
        ChatClient(stored, "m", base_url_env="TEST_BASE_URL")
    monkeypatch.delenv("TEST_BASE_URL")
    with pytest.raises(ConfigError, match=r"\$TEST_BASE_URL is not set; set \$TEST_BASE_URL to the whole URL") as e:
        ChatClient(stored, "m", base_url_env="TEST_BASE_URL")
    assert "pw-123" not in str(e.value)
    with pytest.raises(ConfigError, match=r"base_url_env is null; name a variable that holds the whole URL"):
        ChatClient(stored, "m", base_url_env=None)


def test_a_server_that_never_answers_is_cut_at_the_deadline(stand):
    s = stand(lambda sock, req: s.stop.wait(10))
    t0 = time.monotonic()
    with pytest.raises(ExilError, match="timeout"):
        client(s, timeout=0.5, retries=1).complete(MSGS)
    assert time.monotonic() - t0 < 3 and s.count == 2


def test_429_with_retry_after_is_honoured_then_succeeds(stand):
    s = stand(http(429, {"error": "slow down"}, {"Retry-After": "1"}), completion())
    t0 = time.monotonic()
    assert client(s, max_backoff=5).complete(MSGS) == "because fresh"
    assert time.monotonic() - t0 >= 0.9 and s.count == 2  # waited the server's second, not backoff=0.01
    # a Retry-After longer than max_backoff is capped by it
    s = stand(http(503, "", {"Retry-After": "3600"}), completion())
    t0 = time.monotonic()
    assert client(s, max_backoff=0.05).complete(MSGS) == "because fresh"
    assert time.monotonic() - t0 < 2 and s.count == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_a_refused_request_fails_at_once(stand, status):
    s = stand(http(status, {"error": {"message": "no such thing"}}))
    with pytest.raises(ExilError, match=rf"refused the request \(HTTP {status}: .*no such thing"):
        client(s, retries=5).complete(MSGS)
    assert s.count == 1


def test_a_redirect_fails_at_once_and_names_the_new_address(stand):
    s = stand(http(301, "", {"Location": "https://elsewhere.example/v1/chat/completions"}))
    with pytest.raises(ExilError, match="redirected.*elsewhere.example.*base_url"):
        client(s).complete(MSGS)
    assert s.count == 1


def test_the_api_key_never_appears_in_an_error(stand, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="exil.common.oracle.llm")
    monkeypatch.setenv("TEST_LLM_KEY", KEY)

    def echo(sock, req):  # a server that quotes the credentials it was sent
        auth = req["headers"]["authorization"]
        sock.sendall(http(401, {"error": f"invalid key; you sent Authorization: {auth} (key {KEY})"}))

    s = stand(echo)
    with pytest.raises(ExilError, match="refused the request.*HTTP 401.*TEST_LLM_KEY") as e:
        client(s, api_key_env="TEST_LLM_KEY").complete(MSGS)
    text = str(e.value)
    assert s.requests[0]["headers"]["authorization"] == f"Bearer {KEY}"  # it was sent...
    assert KEY not in text and "secret-0123" not in text and "[redacted]" in text  # ...but is not printed
    # a key that looks like no token is redacted by its value; retried failures are redacted too
    monkeypatch.setenv("TEST_LLM_KEY", "hunter2-plain-key")
    s = stand(lambda sock, req: sock.sendall(http(500, f"boom {req['headers']['authorization']} hunter2-plain-key")))
    with pytest.raises(ExilError, match="failed 2 times") as e:
        client(s, api_key_env="TEST_LLM_KEY", retries=1).complete(MSGS)
    assert "hunter2" not in str(e.value) and s.count == 2
    retried = [r.getMessage() for r in caplog.records if "retry 1 of 1" in r.getMessage()]
    assert retried and all("hunter2" not in m and "[redacted]" in m for m in retried)  # the log is redacted too


def test_redact_hides_keys_bearer_tokens_and_long_bodies_are_cut(stand):
    assert redact("Authorization: Bearer abc.def-ghi", None) == "Authorization: Bearer [redacted]"
    assert redact("key sk-proj_ABCdef123456789 end") == "key [redacted] end"
    assert redact("my value s3cr3t!", "s3cr3t!") == "my value [redacted]"
    assert redact("https://u:pw@h/v1?api_key=zzz&x=1") == "https://u:[redacted]@h/v1?api_key=[redacted]&x=1"
    assert redact("sk-short stays") == "sk-short stays"
    s = stand(http(400, "y" * 5000))
    with pytest.raises(ExilError) as e:
        client(s).complete(MSGS)
    assert len(str(e.value)) < 800 and "(5000 characters)" in str(e.value)


def test_connection_refused_is_retried_then_fails_clearly():
    with socket.socket() as sock:  # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    c = ChatClient(f"http://127.0.0.1:{port}/v1", "m", backoff=0.01, max_backoff=0.02, retries=2, timeout=2)
    with pytest.raises(ExilError, match=r"failed 3 times; last: ConnectError.*server is up"):
        c.complete(MSGS)
    assert c.requests == 3


def test_null_content_is_an_empty_reply_that_is_not_cached(stand, tmp_path):
    s = stand(completion(None), completion())
    c = client(s, cache_path=tmp_path / "cache.jsonl")
    assert c.complete(MSGS) == "" and c.complete(MSGS) == "because fresh" and c.complete(MSGS) == "because fresh"
    assert s.count == 2
    assert parse_reply(b'{"choices": [{"message": {"content": null}}]}') == ""
    with pytest.raises(InvalidReply):
        parse_reply(b'{"choices": [{"message": "hi"}]}')


def test_a_cut_off_last_cache_line_is_skipped_and_later_rows_still_read(stand, tmp_path):
    s = stand(completion())
    path = tmp_path / "cache.jsonl"
    first = client(s, cache_path=path)
    other = [{"role": "user", "content": "why rotten"}]
    whole = json.dumps({"key": first.key(MSGS), "content": "cached"})
    cut = json.dumps({"key": first.key(other), "content": "because rotten"})[:25]  # a kill mid-write
    path.write_text(whole + "\n" + cut)
    c = client(s, cache_path=path)
    assert c.complete(MSGS) == "cached" and s.count == 0  # the whole row is used
    assert c.complete(other) == "because fresh" and s.count == 1  # the cut-off one is asked again
    again = client(s, cache_path=path)  # the new row starts on a line of its own: both are read
    assert again.complete(MSGS) == "cached" and again.complete(other) == "because fresh" and s.count == 1
    again.forget(other)
    assert client(s, cache_path=path).complete(other) == "because fresh" and s.count == 2


def test_close_releases_connections_and_a_later_request_reopens(stand):
    s = stand(completion())
    with client(s) as c:
        assert c.complete(MSGS) == "because fresh"
    assert c._http is None
    assert c.complete([{"role": "user", "content": "again"}]) == "because fresh" and s.count == 2
    c.close()


def test_bad_settings_are_config_errors(monkeypatch):
    with pytest.raises(ConfigError, match="http:// or https://"):
        ChatClient("ftp://example.com/v1", "m")
    with pytest.raises(ConfigError, match="timeout > 0"):
        ChatClient("http://127.0.0.1:1/v1", "m", timeout=0)
    for bad in (0, -1, "60", None, True):
        with pytest.raises(ConfigError, match=r"deadline \(oracle\.client\.deadline.*must be a number > 0"):
            ChatClient("http://127.0.0.1:1/v1", "m", deadline=bad)
    monkeypatch.setenv("TEST_LLM_KEY", "sk-a b")
    with pytest.raises(ConfigError, match=r"\$TEST_LLM_KEY has spaces"):
        ChatClient("http://127.0.0.1:1/v1", "m", api_key_env="TEST_LLM_KEY").complete(MSGS)


def test_a_hung_name_lookup_is_cut_at_the_deadline_and_a_name_still_connects(stand, monkeypatch):
    """getaddrinfo has no timeout: a resolver that hangs (here: 5 s for one name) fails the attempt within its
    time, and a name that resolves to several addresses (localhost: ::1 and 127.0.0.1) is tried address by
    address, as socket.create_connection does."""
    real = socket.getaddrinfo

    def resolver(host, *args, **kwargs):
        if host == "hangs.invalid":
            time.sleep(5)
        if host == "twice.invalid":  # an address nothing listens on first, then the stand's
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", 9)), *real("127.0.0.1", *args, **kwargs)]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    s = stand(completion())
    port = s.url.split(":")[2].split("/")[0]
    t0 = time.monotonic()
    with pytest.raises(ExilError, match="timeout|took longer"):
        ChatClient(f"http://hangs.invalid:{port}/v1", "stand-in", timeout=0.5, retries=1, backoff=0.01).complete(MSGS)
    assert time.monotonic() - t0 < 2.5 and s.count == 0
    assert ChatClient(f"http://twice.invalid:{port}/v1", "stand-in", timeout=5, retries=1).complete(MSGS) == "because fresh"
