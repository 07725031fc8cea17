"""The bare reference for bench/serve.py: the same fitted model behind Starlette, nothing else.

    .venv/bin/python bench/_serve_bare.py --project DIR [--model churn] [--port 8090]
                                          [--workers 2]

uvicorn (uvloop, httptools, no access log) with ``--workers`` processes; each loads the
champion of ``--model`` once at startup (``driftloop.training.flavors.load_model``) and
limits OpenMP/BLAS to one thread. ``POST /v1/models/{model}/predict`` takes
``{"instances": [{"features": {name: float, ...}}, ...]}`` (the encoded model inputs:
categorical ones as their float codes), builds the float matrix in the signature's input
order, calls ``predict_proba`` and answers ``{"predictions": [p1, ...]}``. No feature
lookup, no validation beyond what numpy does, no log. ``GET /readyz`` answers 200.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

HERE = Path(__file__).resolve().parent
_state: dict[str, Any] = {}


def _load() -> None:
    from threadpoolctl import threadpool_limits

    from driftloop import Project
    from driftloop.training.encoding import inputs_from_signature
    from driftloop.training.flavors import load_model

    _state["limits"] = threadpool_limits(1)
    with Project(os.environ["BENCH_BARE_PROJECT"]) as project:
        version = project.model_version(os.environ["BENCH_BARE_MODEL"], "champion")
        _state["model"] = load_model(project.artifacts, version.artifact_digest, version.flavor)
        _state["names"] = [i.name for i in inputs_from_signature(version.signature)]


@contextlib.asynccontextmanager
async def _lifespan(_: Starlette) -> AsyncIterator[None]:
    _load()
    yield


async def predict(request: Request) -> Response:
    body = orjson.loads(await request.body())
    names = _state["names"]
    X = np.array(
        [[inst["features"][n] for n in names] for inst in body["instances"]], dtype=np.float64
    )
    proba = _state["model"].predict_proba(X)[:, 1]
    return Response(orjson.dumps({"predictions": proba.tolist()}), media_type="application/json")


async def readyz(_: Request) -> Response:
    return Response(b"ok")


app = Starlette(
    routes=[
        Route("/v1/models/{model}/predict", predict, methods=["POST"]),
        Route("/readyz", readyz),
    ],
    lifespan=_lifespan,
)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True)
    parser.add_argument("--model", default="churn")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.environ["BENCH_BARE_PROJECT"] = str(Path(args.project).resolve())
    os.environ["BENCH_BARE_MODEL"] = args.model
    uvicorn.run(
        "_serve_bare:app",
        app_dir=str(HERE),
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
