"""Pages benchmark: the board's render and first live update for 500 patients, and the weight
(bytes, with assets) of each page, against `malestrom up` on free ports.

    python bench/pages_bench.py [-n 500]

500 patients are placed in the simulated organisation and sent one NEWS2 set each (as the hub,
through the API); then a nurse session (through /dev/login) times the board page, its content
fragment (what each live update fetches), and the time from a red reading to the alert event on
the board's stream. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.browser.conftest import System, _healthy
from tests.helpers import eventually, fresh_fnr

NORMAL = {"respiration_rate": 16, "spo2": 97, "systolic_bp": 125, "pulse": 70,
          "temperature": 36.8, "consciousness": "A"}  # fmt: skip
RED = NORMAL | {"respiration_rate": 30, "spo2": 88, "pulse": 135}


def _timed(client: httpx.Client, path: str, runs: int = 5) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        answer = client.get(path)
        times.append(time.perf_counter() - t0)
        size = len(answer.content)
        assert answer.status_code == 200, (path, answer.status_code)
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=500)
    args = parser.parse_args()
    import os
    import signal
    import subprocess

    from infra.devissuer import DevIssuer
    from infra.processes import free_port

    data_dir = Path(tempfile.mkdtemp()) / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALESTROM_")}
    proc = subprocess.Popen([sys.executable, "-m", "infra.cli", "up", "--port", str(port),
                             "--data-dir", str(data_dir)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _healthy(url), timeout=120, what="healthy")
        system = System(url, DevIssuer.ensure(data_dir / "dev-issuer"))
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        fnrs = [fresh_fnr() for _ in range(args.n)]
        for fnr in fnrs:
            system.place(fnr)
            system.send(fnr, now - dt.timedelta(minutes=5), **NORMAL)
        board = lambda: len(system.api("GET", "/api/v1/board").json()["patients"])  # noqa: E731
        eventually(lambda: board() >= args.n, timeout=600, what=f"{args.n} patients on the board")
        with httpx.Client(base_url=url, follow_redirects=True, timeout=60) as browser:
            assert browser.get("/dev/login?role=nurse").status_code == 200
            report = {}
            pages = {
                "board": "/web/tavle",
                "board content (each live update)": "/web/tavle/innhold",
                "patient page 24 h": f"/web/pasient/{fnrs[0]}",
                "patient page 30 d": f"/web/pasient/{fnrs[0]}?periode=30d",
                "login": "/web/",
                "docs": "/docs",
            }
            for name, path in pages.items():
                report[name] = _timed(browser, path)
            assets = sum(
                len(browser.get(a).content) for a in ("/web/assets/app.css", "/web/assets/board.js")
            )
            docs_assets = sum(len(browser.get(f"/docs/assets/{a}").content)
                              for a in ("swagger-ui-bundle.js", "swagger-ui.css"))  # fmt: skip
            t0 = time.perf_counter()
            with browser.stream("GET", "/web/tavle/hendelser", params={"etter": 10**12}) as events:
                red = fresh_fnr()
                system.place(red)
                system.send(red, now, **RED)
                for line in events.iter_lines():
                    if line.startswith("event: alert") or line.startswith("event: scores"):
                        first_update = time.perf_counter() - t0
                        break
            t1 = time.perf_counter()
            browser.get("/web/tavle/innhold")
            refresh = time.perf_counter() - t1
        print(f"pages with {args.n} patients on the board (median of 5; 2 shared cores):")
        for name, (seconds, size) in report.items():
            print(f"  {name:34s} {seconds * 1000:8.1f} ms  {size:>9,d} bytes HTML")
        print(f"  pages' own assets (css + js)       {assets:>20,d} bytes")
        print(f"  /docs assets (Swagger UI)          {docs_assets:>20,d} bytes")
        print(
            f"  red reading → first board event    {first_update * 1000:8.1f} ms"
            f" (+ {refresh * 1000:.0f} ms to fetch the refreshed content)"
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


if __name__ == "__main__":
    main()
