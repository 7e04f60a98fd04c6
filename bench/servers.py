"""The two servers the bench runs beside deepsight, each as a process of its own on loopback.

- `upstream`: a fake RAGFlow agent. `POST /api/v1/agents/<id>/completions` with a question like
  `n=500 d=20` streams 500 `message` events 20 ms apart in RAGFlow's agent SSE format (v0.20+:
  `data:{"event":"message",...,"data":{"content":...}}`, then `message_end` and `data:[DONE]`).
  Each token's content is `<seq>:<time.monotonic_ns()> `, stamped as it is written, so a client
  on this machine measures each token's latency exactly (the monotonic clock is system-wide).
- `bareproxy`: the same requests passed through to the upstream by a hand-written aiohttp proxy,
  byte for byte: what a minimal asyncio proxy costs, the floor deepsight is compared with.

`python -m bench.servers upstream` or `python -m bench.servers bareproxy --upstream URL` binds a
free port, prints `PORT <n>` and serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import socket
import sys
import time
import uuid

from aiohttp import web

QUESTION = re.compile(r"n=(\d+)\s+d=(\d+(?:\.\d+)?)")
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


async def completions(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    match = QUESTION.search(str(body.get("question", "")))
    tokens, delay = (int(match[1]), float(match[2]) / 1000) if match else (10, 0.01)
    message_id = uuid.uuid4().hex
    session_id = body.get("session_id") or uuid.uuid4().hex
    head = json.dumps({"event": "message", "message_id": message_id, "created_at": int(time.time())})[:-1]
    prefix = f'data:{head},"task_id":"bench","data":{{"content":"'.encode()
    suffix = f'"}},"session_id":"{session_id}"}}\n\n'.encode()
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    started = loop.time()
    monotonic_ns = time.monotonic_ns
    for seq in range(tokens):
        if seq:
            pause = started + seq * delay - loop.time()
            await asyncio.sleep(pause if pause > 0 else 0)
        await response.write(b"%s%d:%d %s" % (prefix, seq, monotonic_ns(), suffix))
    end = {"event": "message_end", "message_id": message_id, "task_id": "bench", "data": {}, "session_id": session_id}
    await response.write(f"data:{json.dumps(end)}\n\ndata:[DONE]\n\n".encode())
    await response.write_eof()
    return response


def upstream_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/api/v1/agents/{agent_id}/completions", completions)
    return app


def bare_proxy_app(upstream: str) -> web.Application:
    """Pass every POST through to `upstream` and its streamed body back, chunk by chunk."""
    import aiohttp

    async def start(app: web.Application) -> None:
        app["client"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None, sock_read=120)
        )

    async def stop(app: web.Application) -> None:
        await app["client"].close()

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        async with request.app["client"].post(upstream + request.path, data=body, headers=headers) as upstream_response:
            response = web.StreamResponse(status=upstream_response.status, headers=SSE_HEADERS)
            await response.prepare(request)
            async for chunk in upstream_response.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application()
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_post("/{tail:.*}", relay)
    return app


async def serve(app: web.Application) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1)
    await runner.setup()
    await web.SockSite(runner, sock, backlog=4096).start()
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    await stopping.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.servers")
    parser.add_argument("kind", choices=["upstream", "bareproxy"])
    parser.add_argument("--upstream", default="")
    args = parser.parse_args(argv)
    app = upstream_app() if args.kind == "upstream" else bare_proxy_app(args.upstream.rstrip("/"))
    asyncio.run(serve(app))


if __name__ == "__main__":
    sys.exit(main())
