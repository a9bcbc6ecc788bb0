"""Memory per request for ordinary and oversized images, with and without the models' input bounds, and a load test
of the app with oversized images among ordinary ones.

    python -m benchmarks.request_memory [--clients 6] [--requests 60] [--skip-load-test] [--skip-memory]
                                        [--models colponet cell_detector prepost_fusion]

Part 1, one fresh process per (model, image, bounds) case: the default ResNet-50-sized model with random weights
(memory does not depend on the weights), one warm-up request on a small image, then the peak resident memory
added by one request (Linux's VmHWM, reset just before it) for:

- an ordinary 2-megapixel photo (1632x1224 JPEG);
- a 100-megapixel PNG of a few hundred kB (10000x10000, the largest `load_image` accepts: the reported attack);
- a 100-megapixel JPEG (10000x10000).

"unbounded" loads the image at full size, as before the bounds; "bounded" is the library as shipped
(`inference.load_model_input`: reduced to the model's `input_max_side` while decoding, JPEG at a reduced scale);
"app" adds the app's decoding budget (`cervix_hf.app.widgets.MAX_DECODED_PIXELS`: a PNG or TIFF over it is refused
from its header). The target: a 100-MP image's peak at most 1.5x the ordinary photo's.

Part 2 starts `python app.py` (the three default models, random weights) and sends `--requests` requests from
`--clients` threads over gradio's HTTP API, a third of them 100-MP images (PNG, to be refused from the header; JPEG,
to be answered), and prints the unexpected outcomes, p50/p95 latency and the app's peak resident memory.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cervix_hf.cli import DefaultsHelpFormatter

from .app_latency import REPO_ROOT, HttpApi, free_port, peak_memory_mib, percentile, start_app

TARGET_RATIO = 1.5
BOUNDS = ("unbounded", "bounded", "app")
MODEL_TYPES = ("colponet", "cell_detector", "prepost_fusion")
CASE = textwrap.dedent("""
    import sys
    import torch
    from cervix_hf import load_image
    from cervix_hf import inference
    from cervix_hf.app.models import TASKS_BY_NAME

    from cervix_hf.app.widgets import MAX_DECODED_PIXELS
    from cervix_hf.image_io import ImageLoadError

    model_type, image, small, bounds = sys.argv[1:5]
    bounded_load = inference.load_model_input
    if bounds == "unbounded":  # the image at full size, as before the bounds
        inference.load_model_input = lambda image, model_type, reduce=True: load_image(image)
    elif bounds == "app":  # as the app reads an upload: the model's bound and the app's decoding budget
        inference.load_model_input = lambda image, model_type, reduce=True: bounded_load(
            image, model_type, reduce, max_decoded_pixels=MAX_DECODED_PIXELS
        )
    model, processor = TASKS_BY_NAME[model_type].build_untrained("resnet-50")

    def request(path):
        if model_type == "colponet":
            inference.classify_cervix_type(model, processor, path, ignore_quality_gate=True)
        elif model_type == "cell_detector":
            inference.detect_cells(model, processor, path)
        else:
            inference.classify_prepost(model, processor, path, path)

    request(small)  # warm-up: lazy initialisation is not the request's cost
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current resident size
    status = lambda key: int(open("/proc/self/status").read().split(key + ":")[1].split()[0])
    before = status("VmRSS")
    try:
        request(image)
        outcome = "answered"
    except ImageLoadError:
        outcome = "refused"
    print(status("VmHWM") - before, status("VmHWM"), outcome)
""")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--clients", default=6, type=int, help="concurrent clients in the load test")
    parser.add_argument("--requests", default=60, type=int, help="requests in the load test, all clients together")
    parser.add_argument("--skip-load-test", action="store_true", help="only measure memory per request")
    parser.add_argument("--skip-memory", action="store_true", help="only run the load test")
    parser.add_argument(
        "--models", nargs="+", default=list(MODEL_TYPES), choices=MODEL_TYPES, help="models of the memory table"
    )
    parser.add_argument("--bounds", nargs="+", default=list(BOUNDS), choices=BOUNDS,
                        help="rows of the memory table (the target is the app's)")  # fmt: skip
    return parser


def make_images(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    texture = Image.fromarray(rng.integers(0, 255, (1224, 1632, 3), dtype=np.uint8))
    images = {"small": folder / "small.jpg", "2-MP JPEG": folder / "photo.jpg"}
    texture.resize((320, 240)).save(images["small"], quality=90)
    texture.save(images["2-MP JPEG"], quality=90)
    huge = Image.new("RGB", (10000, 10000), (200, 120, 90))
    images["100-MP PNG"], images["100-MP JPEG"] = folder / "huge.png", folder / "huge.jpg"
    huge.save(images["100-MP PNG"])
    huge.save(images["100-MP JPEG"], quality=85)
    return images


def request_memory_mib(model_type: str, image: Path, small: Path, bounds: str) -> tuple[float, float, str]:
    """(MiB added by the request, the process's peak MiB, "answered" or "refused")."""
    command = [sys.executable, "-c", CASE, model_type, str(image), str(small), bounds]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{model_type} on {image.name} ({bounds}) failed:\n{result.stderr[-2000:]}")
    added, peak, outcome = result.stdout.split()[-3:]
    return int(added) / 1024, int(peak) / 1024, outcome


def memory_table(images: dict[str, Path], model_types: list[str], bounds_rows=BOUNDS) -> dict:
    cases = ("2-MP JPEG", "100-MP PNG", "100-MP JPEG")
    table = {}
    print("memory of one request, MiB: added by it / the process's peak (fresh process per cell; ResNet-50-sized,")
    print("random weights); 'refused' = an error from the image's header, before decoding")
    print(f"{'model':<15} {'bounds':<10} " + " ".join(f"{case:>18}" for case in cases) + "  100 MP / 2 MP")
    for model_type in model_types:
        for bounds in bounds_rows:
            row = {case: request_memory_mib(model_type, images[case], images["small"], bounds) for case in cases}
            added = max(row["100-MP PNG"][0], row["100-MP JPEG"][0]) / row["2-MP JPEG"][0]
            peak = max(row["100-MP PNG"][1], row["100-MP JPEG"][1]) / row["2-MP JPEG"][1]
            table[(model_type, bounds)] = {**row, "added_ratio": added, "peak_ratio": peak}
            cells = " ".join(
                f"{f'{a:.0f} / {p:.0f}' + (' refused' if outcome == 'refused' else ''):>18}"
                for a, p, outcome in row.values()
            )
            print(f"{model_type:<15} {bounds:<10} {cells}  added {added:.2f}x, peak {peak:.2f}x")
    for model_type in model_types if "app" in bounds_rows else ():
        ratio = table[(model_type, "app")]["peak_ratio"]
        verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
        print(
            f"{model_type} in the app: a 100-MP image's peak is {ratio:.2f}x an ordinary photo's ({verdict} the "
            f"{TARGET_RATIO}x target; added memory {table[(model_type, 'app')]['added_ratio']:.2f}x)"
        )
    return table


def load_test(images: dict[str, Path], clients: int, requests: int) -> dict:
    """
    `requests` requests from `clients` threads against `python app.py`, spread over the three endpoints: two of
    every six a 100-MP image (a PNG, which the app must refuse from its header, or a JPEG, which it must answer).
    """
    endpoints = [
        ("/classify_cervix_type", lambda image: (image, True)),
        ("/detect_cells", lambda image: (image, 0.5)),
        ("/classify_prepost", lambda image: (image, image, "model default", 0.5, 0.45)),
    ]
    kinds = ("2-MP JPEG", "2-MP JPEG", "100-MP PNG", "2-MP JPEG", "2-MP JPEG", "100-MP JPEG")
    jobs = []
    for index in range(requests):
        api_name, arguments = endpoints[index % len(endpoints)]
        kind = kinds[(index // len(endpoints)) % len(kinds)]
        jobs.append((api_name, kind, arguments(images[kind])))
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        port = free_port()
        process, _, _ = start_app(port, folder / "no-checkpoints", folder / "app.log")
        url = f"http://127.0.0.1:{port}/"
        latencies, unexpected, refused, lock = [], [], 0, threading.Lock()

        def client(worker: int) -> None:
            nonlocal refused
            api = HttpApi(url)
            for api_name, kind, arguments in jobs[worker::clients]:
                start = time.perf_counter()
                try:
                    api.predict(*arguments, api_name=api_name)
                    outcome = "answered"
                except Exception as error:  # counted and reported: the load test's result
                    outcome = "refused" if "this service decodes" in str(error) else f"{api_name}: {str(error)[:200]}"
                with lock:
                    latencies.append(time.perf_counter() - start)
                    expected = "refused" if kind == "100-MP PNG" else "answered"
                    if outcome == "refused" and expected == "refused":
                        refused += 1
                    elif outcome != expected:
                        unexpected.append(f"{kind} -> {outcome}")

        try:
            start = time.perf_counter()
            threads = [threading.Thread(target=client, args=(worker,)) for worker in range(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - start
            peak, current = peak_memory_mib(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
    counts = {kind: sum(job[1] == kind for job in jobs) for kind in dict.fromkeys(kinds)}
    print(
        f"load test: {len(jobs)} requests from {clients} clients ({', '.join(f'{n} {k}' for k, n in counts.items())}) "
        f"in {elapsed:.0f} s: {refused} 100-MP PNG(s) refused as expected, {len(unexpected)} unexpected outcome(s); "
        f"latency p50 {statistics.median(latencies):.2f} s, p95 {percentile(latencies, 95):.2f} s; app peak RSS "
        f"{peak:.0f} MiB (now {current:.0f} MiB)"
    )
    for outcome in unexpected[:5]:
        print(f"  unexpected: {outcome}")
    return {"unexpected": unexpected, "refused": refused, "latencies": latencies, "peak_rss_mib": peak}


def main(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        images = make_images(Path(folder))
        results = {} if args.skip_memory else {"memory": memory_table(images, args.models, args.bounds)}
        if not args.skip_load_test:
            results["load"] = load_test(images, args.clients, args.requests)
    return results


if __name__ == "__main__":
    main(get_args_parser().parse_args())
