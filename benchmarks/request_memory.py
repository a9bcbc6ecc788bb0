"""Memory per request for ordinary and oversized images, with and without the models' input bounds, and a load test
of the app with oversized images among ordinary ones.

    python -m benchmarks.request_memory [--clients 6] [--requests 60] [--skip-load-test] [--skip-memory] [--batch]
                                        [--models colponet cell_detector prepost_fusion]

Part 1, one fresh process per (model, image, bounds) case: the default ResNet-50-sized model with random weights
(memory does not depend on the weights), one warm-up request on a small image, then the peak resident memory
added by one request (Linux's VmHWM, reset just before it) for:

- an ordinary 2-megapixel photo (1632x1224 JPEG);
- a 100-megapixel PNG of a few hundred kB (10000x10000, the largest `load_image` accepts: the reported attack);
- a 100-megapixel JPEG (10000x10000).

"unbounded" loads the image at full size, as before the bounds; "bounded" is the library as shipped
(`inference.load_model_input`: reduced to the model's `input_max_side` while decoding, JPEG at a reduced scale);
"app" adds the app's decoding budget (`cervix_hf.app.inputs.MAX_DECODED_PIXELS`: a PNG or TIFF over it is refused
from its header). The target: a 100-MP image's peak at most 1.5x the ordinary photo's.

Part 2 starts `python app.py` (the three default models, random weights) and sends `--requests` requests from
`--clients` threads over gradio's HTTP API, a third of them 100-MP images (PNG, to be refused from the header; JPEG,
to be answered), and prints the unexpected outcomes, p50/p95 latency and the app's peak resident memory.

Part 3 (`--batch`) starts `python app.py` with its own gradio and temporary folders and sends the Batch tab the
worst requests over raw HTTP, one at a time (the files uploaded first, as the page does): a 10000x10000 16-bit PNG
of under 1 MB (ColpoNet, then the detector), a zip of 1.5 GB of zeros referenced twice, a 10 MB file referenced
250 times, a zip of 200,000 empty entries, and two batches of 16-bit PNGs at once. For each: the app's peak
resident memory added (VmHWM, reset before the request), the bytes and files the request left or wrote under those
folders (at their peak, sampled every 50 ms), its seconds, and its answer.
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
    from cervix_hf.prediction import inference
    from cervix_hf.app.models import TASKS_BY_NAME

    from cervix_hf.app.inputs import MAX_DECODED_PIXELS
    from cervix_hf.io.images import ImageLoadError

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
    parser.add_argument(
        "--bounds",
        nargs="+",
        default=list(BOUNDS),
        choices=BOUNDS,
        help="rows of the memory table (the target is the app's)",
    )
    parser.add_argument("--batch", action="store_true", help="also measure the Batch tab's worst requests (part 3)")
    parser.add_argument("--batch-only", action="store_true", help="only measure the Batch tab's worst requests")
    return parser


def _batch_files(folder: Path) -> dict[str, Path]:
    import zipfile

    files = {"16-bit PNG": folder / "sixteen_bit.png", "10 MB file": folder / "ten_mb.bin"}
    pixels = np.zeros((10000, 10000), dtype=np.uint16)
    pixels[::97] = 40000  # a little structure, still well under 1 MB
    Image.fromarray(pixels).save(files["16-bit PNG"])
    files["10 MB file"].write_bytes(np.random.default_rng(0).integers(0, 255, 10_000_000, dtype=np.uint8).tobytes())
    files["zeros zip"] = folder / "zeros.zip"
    with zipfile.ZipFile(files["zeros zip"], "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for part in range(3):
            with archive.open(f"zeros_{part}.png", "w", force_zip64=True) as entry:
                for _ in range(500):
                    entry.write(bytes(1_000_000))
    files["many entries zip"] = folder / "entries.zip"
    with zipfile.ZipFile(files["many entries zip"], "w", zipfile.ZIP_STORED) as archive:
        for number in range(200_000):
            archive.writestr(f"e{number}.jpg", b"")
    return files


def _tree_size(roots: list[Path]) -> tuple[int, int]:
    sizes = []
    for root in roots:
        for path in root.rglob("*"):
            try:
                if path.is_file() and not path.is_symlink():
                    sizes.append(path.stat().st_size)
            except OSError:  # removed meanwhile
                pass
    return len(sizes), sum(sizes)


def batch_table() -> dict:
    """The Batch tab's worst requests against `python app.py`: memory, disk, time and answer of each."""
    import json
    import os

    import httpx

    photos, cells = "Cervix type (photos)", "Cell detection (Pap-smear images)"
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "inputs").mkdir()
        files = _batch_files(folder / "inputs")
        roots = [folder / "gradio", folder / "tmp"]
        for root in roots:
            root.mkdir()
        saved = {key: os.environ.get(key) for key in ("GRADIO_TEMP_DIR", "TMPDIR")}
        os.environ.update(GRADIO_TEMP_DIR=str(roots[0]), TMPDIR=str(roots[1]))
        port = free_port()
        try:
            process, _, _ = start_app(port, folder / "no-checkpoints", folder / "app.log")
        finally:
            for key, value in saved.items():
                os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
        url = f"http://127.0.0.1:{port}"

        def upload(path: Path) -> dict:
            with path.open("rb") as handle:
                answer = httpx.post(f"{url}/gradio_api/upload", files={"files": (path.name, handle)}, timeout=600)
            return {"path": answer.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

        def call(data) -> str:
            event = httpx.post(f"{url}/gradio_api/call/predict_batch", json={"data": data}, timeout=60).json()
            text = httpx.get(f"{url}/gradio_api/call/predict_batch/{event['event_id']}", timeout=900).text
            last = [block for block in text.split("\n\n") if block.startswith("event:")][-1]
            kind, _, payload = last.partition("\n")
            payload = json.loads(payload.removeprefix("data:").strip())
            if "complete" in kind:
                return "answered: " + payload[0].split("\n")[-1][:60]
            return "refused: " + str(payload.get("error") if isinstance(payload, dict) else payload)[:60]

        cases = [
            ("16-bit 10000x10000 PNG, ColpoNet", photos, [("16-bit PNG", 1)], 1),
            ("16-bit 10000x10000 PNG, detector", cells, [("16-bit PNG", 1)], 1),
            ("zip of 1.5 GB zeros, twice", photos, [("zeros zip", 2)], 1),
            ("10 MB file, 250 references", photos, [("10 MB file", 250)], 1),
            ("zip of 200,000 empty entries", photos, [("many entries zip", 1)], 1),
            ("two 16-bit PNG batches at once", cells, [("16-bit PNG", 1)], 2),
        ]
        table = {}
        print("the Batch tab's worst requests: app memory added (peak RSS), what they wrote (peak over the request),")
        print("seconds and answer; ResNet-50-sized models with random weights")
        try:
            for label, choice, parts, parallel in cases:
                payloads = [payload for name, count in parts for payload in [upload(files[name])] * count]
                Path(f"/proc/{process.pid}/clear_refs").write_text("5")
                before_rss = peak_memory_mib(process.pid)[1]
                before_files, before_bytes = _tree_size(roots)
                most, answers, done = [0, 0], [], threading.Event()

                def watch():
                    while not done.wait(0.05):
                        count, size = _tree_size(roots)
                        most[0], most[1] = max(most[0], count - before_files), max(most[1], size - before_bytes)

                watcher = threading.Thread(target=watch)
                watcher.start()
                start = time.perf_counter()
                threads = [
                    threading.Thread(target=lambda: answers.append(call([choice, payloads]))) for _ in range(parallel)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                seconds = time.perf_counter() - start
                done.set()
                watcher.join()
                added = peak_memory_mib(process.pid)[0] - before_rss
                table[label] = {
                    "added_mib": added,
                    "files": most[0],
                    "bytes": most[1],
                    "seconds": seconds,
                    "answers": answers,
                }
                print(
                    f"{label:<34} +{added:>6.0f} MiB  {most[1] / 1e6:>8.1f} MB in {most[0]:>6} file(s)  "
                    f"{seconds:>6.1f} s  {' | '.join(answers)}"
                )
        finally:
            process.terminate()
            process.wait(timeout=30)
    return table


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
    if args.batch_only:
        return {"batch": batch_table()}
    with tempfile.TemporaryDirectory() as folder:
        images = make_images(Path(folder))
        results = {} if args.skip_memory else {"memory": memory_table(images, args.models, args.bounds)}
        if not args.skip_load_test:
            results["load"] = load_test(images, args.clients, args.requests)
    if args.batch:
        results["batch"] = batch_table()
    return results


if __name__ == "__main__":
    main(get_args_parser().parse_args())
