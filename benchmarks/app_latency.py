"""The app's start-up time, its latency per tab through gradio_client against a direct model call, and its memory.

    python -m benchmarks.app_latency [--requests 20] [--threads N]

Starts `python app.py` as a user does (the three default ResNet-50-sized models with random weights: no trained
weights exist offline, and the timing does not depend on the weights), then prints:

- the time from starting `python app.py` to its first served prediction (through gradio_client, so it includes
  importing, launching, and building the ColpoNet on first use);
- p50 and p95 latency of each endpoint through gradio_client over HTTP on loopback, beside the same model function
  called directly in this process on the same images, and their p50 ratio (target: at most 1.2 for the
  classifier); calls alternate so that drift of the machine affects all alike;
- the same requests over gradio's plain HTTP API (upload, `/gradio_api/call/<endpoint>`, read the result; output
  files not downloaded), which separates the server's overhead from gradio_client's own (it polls for messages in
  50 ms steps);
- the app's peak resident memory with all three models loaded.

Images are the real samples in ../shared/data when present, else random images of the same sizes.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import httpx
import numpy as np
import torch
from gradio_client import Client, handle_file
from PIL import Image

from cervix_hf import load_image
from cervix_hf.app.models import TASKS_BY_NAME
from cervix_hf.cli import DefaultsHelpFormatter
from cervix_hf.prediction.explain import grad_cam, overlay_heatmap
from cervix_hf.prediction.inference import classify_cervix_type, classify_prepost, detect_cells
from cervix_hf.sample_data import sample_data_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = sample_data_dir()
TARGET_CLASSIFIER_OVERHEAD = 1.2
START_TIMEOUT = 300


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--requests", default=20, type=int, help="timed requests per endpoint, each way")
    parser.add_argument("--threads", default=None, type=int, help="torch threads here (default: torch's choice)")
    return parser


def sample_images(folder: Path) -> dict[str, Path]:
    """A colposcopy photo, a Pap-smear image and a pre/post pair: the real samples, or random stand-ins."""
    real = {
        "photo": SHARED_DATA / "intel-mobileodt-sample" / "train" / "Type_2" / "1407.jpg",
        "cells": SHARED_DATA / "isbi2014-edf" / "EDF010.png",
        "pre": SHARED_DATA / "iarc-colposcopy-atlas" / "images_low_grade" / "case_AABB" / "1_After_normal_saline.jpg",
        "post": SHARED_DATA / "iarc-colposcopy-atlas" / "images_low_grade" / "case_AABB" / "2_After_acetic_acid.jpg",
    }
    if all(path.exists() for path in real.values()):
        return real
    rng = np.random.default_rng(0)
    sizes = {"photo": (224, 224), "cells": (1024, 1024), "pre": (800, 600), "post": (800, 600)}
    stand_ins = {}
    for name, (width, height) in sizes.items():
        stand_ins[name] = folder / f"{name}.png"
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(stand_ins[name])
    return stand_ins


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_app(port: int, empty_folder: Path, log_path: Path) -> tuple[subprocess.Popen, float, Client]:
    """Starts `python app.py` with no trained weights anywhere; returns the process, the seconds until it answered,
    and a client."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CERVIX_HF_")}
    env["HF_HUB_OFFLINE"] = "1"
    command = [sys.executable, "app.py", "--port", str(port), "--checkpoints-dir", str(empty_folder)]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT)
    deadline = start + START_TIMEOUT
    while True:
        if process.poll() is not None or time.perf_counter() > deadline:
            raise RuntimeError(f"app.py did not start; its log:\n{log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    client = None
    while client is None:  # the port opens a moment before the app answers
        try:
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        except Exception:  # any failure here means "not ready yet"; the deadline bounds the wait
            if time.perf_counter() > deadline:
                raise
            time.sleep(0.1)
    serving = time.perf_counter() - start
    return process, serving, client


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def peak_memory_mib(pid: int) -> tuple[float, float]:
    """(peak, current) resident memory of a process, from /proc (Linux)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        images = sample_images(folder)
        log_path = folder / "app.log"
        start = time.perf_counter()
        port = free_port()
        process, serving, client = start_app(port, folder / "no-checkpoints", log_path)
        try:
            client.predict(handle_file(images["photo"]), False, api_name="/classify_cervix_type")
            first_prediction = time.perf_counter() - start
            results = measure(f"http://127.0.0.1:{port}/", images, args.requests)
            peak, current = peak_memory_mib(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads here; full-size models, random weights")
    print(
        f"python app.py -> first served prediction: {first_prediction:.1f} s (answering after {serving:.1f} s; the "
        "first request builds the ColpoNet)"
    )
    print("seconds per request, p50 / p95; ratio = p50 / direct p50")
    print(f"{'endpoint':<22} {'direct':>13} {'HTTP API':>13} {'ratio':>6} {'gradio_client':>14} {'ratio':>6}")
    for endpoint, times in results.items():
        direct = statistics.median(times["direct"])
        cells = [f"{statistics.median(times['direct']):.3f} / {percentile(times['direct'], 95):.3f}"]
        for way in ("HTTP API", "gradio_client"):
            p50 = statistics.median(times[way])
            cells += [f"{p50:.3f} / {percentile(times[way], 95):.3f}", f"{p50 / direct:.2f}"]
        print(f"{endpoint:<22} {cells[0]:>13} {cells[1]:>13} {cells[2]:>6} {cells[3]:>14} {cells[4]:>6}")
    classifier = results["/classify_cervix_type"]
    ratio = statistics.median(classifier["gradio_client"]) / statistics.median(classifier["direct"])
    verdict = "meets" if ratio <= TARGET_CLASSIFIER_OVERHEAD else "MISSES"
    print(
        f"classifier through gradio_client: {ratio:.2f}x a direct call "
        f"({verdict} the {TARGET_CLASSIFIER_OVERHEAD}x target)"
    )
    print(f"app memory with all three models loaded: peak RSS {peak:.0f} MiB (now {current:.0f} MiB)")
    return {"first_prediction": first_prediction, "results": results, "peak_rss_mib": peak}


class HttpApi:
    """gradio's plain HTTP API, as any language would call it: upload the files, start the call, read its result."""

    def __init__(self, url: str):
        self.url = url
        self.http = httpx.Client(timeout=120)

    def predict(self, *arguments, api_name: str):
        data = [self._upload(argument) if isinstance(argument, Path) else argument for argument in arguments]
        event_id = self.http.post(f"{self.url}gradio_api/call{api_name}", json={"data": data}).json()["event_id"]
        with self.http.stream("GET", f"{self.url}gradio_api/call{api_name}/{event_id}") as response:
            event = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event in ("complete", "error"):
                    if event == "error":
                        raise RuntimeError(f"{api_name} failed: {line}")
                    return line.removeprefix("data: ")
        raise RuntimeError(f"{api_name}: the stream ended without a result")

    def _upload(self, path: Path) -> dict:
        with path.open("rb") as file:
            (server_path,) = self.http.post(f"{self.url}gradio_api/upload", files={"files": (path.name, file)}).json()
        return {"path": server_path, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def measure(url: str, images: dict[str, Path], requests: int) -> dict[str, dict[str, list[float]]]:
    """Per endpoint: seconds per request through gradio_client, through the plain HTTP API, and per direct call of
    the same model function in this process."""
    models = {name: task.build_untrained("resnet-50") for name, task in TASKS_BY_NAME.items()}
    colponet, colponet_processor = models["colponet"]
    detector, detector_processor = models["cell_detector"]
    prepost, prepost_processor = models["prepost_fusion"]

    def explain():
        image = load_image(images["photo"])
        cam, _ = grad_cam(colponet, colponet_processor(image, return_tensors="pt")["pixel_values"])
        return overlay_heatmap(image, cam)

    calls = {
        "/classify_cervix_type": (
            (images["photo"], False),
            lambda: classify_cervix_type(colponet, colponet_processor, images["photo"]),
        ),
        "/cervix_grad_cam": ((images["photo"], False, 0.45), explain),
        "/detect_cells": (
            (images["cells"], 0.5),
            lambda: detect_cells(detector, detector_processor, images["cells"], 0.5),
        ),
        "/classify_prepost": (
            (images["pre"], images["post"], "model default", 0.5, 0.45),
            lambda: classify_prepost(prepost, prepost_processor, images["pre"], images["post"]),
        ),
    }
    client, http_api = Client(url, verbose=False), HttpApi(url)
    results = {}
    for endpoint, (arguments, direct_call) in calls.items():
        files = [handle_file(argument) if isinstance(argument, Path) else argument for argument in arguments]
        ways = {
            "gradio_client": partial(client.predict, *files, api_name=endpoint),
            "HTTP API": partial(http_api.predict, *arguments, api_name=endpoint),
            "direct": direct_call,
        }
        for call in ways.values():  # warm-up: loads the model in the app
            call()
        times = {way: [] for way in ways}
        for _ in range(requests):  # interleaved, so that drift of the machine affects every way alike
            for way, call in ways.items():
                start = time.perf_counter()
                call()
                times[way].append(time.perf_counter() - start)
        results[endpoint] = times
    return results


if __name__ == "__main__":
    main(get_args_parser().parse_args())
