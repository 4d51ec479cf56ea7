"""The `hubel` command: a thin shell over the Python API. A HubelError becomes one line on
stderr and exit status 2; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import argparse
import gc
import io
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hubel.errors import ConfigError, HubelError

__all__ = ["main"]


def _duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        value = float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"expected a duration such as 90s, 5m or 1h; received {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration; received {text!r}")
    return value


def _shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes such as 32,32,3; received {text!r}") from None


def _summary(args: argparse.Namespace) -> None:
    from hubel.models.applications.backbones import BACKBONES
    from hubel.models.io import load_model
    from hubel.models.spec import model_from_spec
    from hubel.models.zoo import ZOO, create_model

    source = Path(args.model)
    if args.model in BACKBONES and not source.exists():  # the architecture alone: no weights needed to size it
        entry = BACKBONES.get(args.model)
        model = entry.build(input_shape=args.input_shape or entry.input_shape, include_top=False, weights=None)
    elif source.suffix == ".hubel":
        model = load_model(source)
        if args.input_shape:
            raise ConfigError("--input-shape applies to spec files and zoo names; a .hubel model keeps its shape.")
    elif args.model in ZOO or (not source.exists() and source.suffix.lower() not in (".json", ".yaml", ".yml")):
        model = create_model(args.model, input_shape=args.input_shape)  # a zoo name (a typo gets suggestions)
    else:
        model = model_from_spec(source, input_shape=args.input_shape)
    model.summary()


def _zoo(args: argparse.Namespace) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from hubel.models.summary import readable_count, summarize
    from hubel.models.zoo import ZOO, create_model

    table = Table(box=box.SIMPLE_HEAD)
    for column, justify in (
        ("name", "left"),
        ("input", "left"),
        ("params", "right"),
        ("MACs", "right"),
        ("architecture", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for name in ZOO.names():
        entry = ZOO.get(name)
        summary = summarize(create_model(name, num_classes=2 if entry.text else 10))  # text: as the IMDB tutorial
        shape = "x".join(str(size) for size in entry.input_shape) + (" tokens" if entry.text else "")
        table.add_row(name, shape, f"{summary.total_params:,}", readable_count(summary.macs), ZOO.get(name).description)
    from hubel.models.applications.backbones import BACKBONES

    for name in BACKBONES.names():  # pretrained: the architecture alone, no weights read
        entry = BACKBONES.get(name)
        summary = summarize(entry.build(input_shape=entry.input_shape, include_top=False, weights=None, pooling="avg"))
        shape = "x".join(str(size) for size in entry.input_shape)
        description = f"pretrained: {entry.description} (`hubel train FOLDER --model {name}`)"
        table.add_row(name, shape, f"{summary.total_params:,}", readable_count(summary.macs), description)
    buffer = io.StringIO()
    Console(file=buffer, width=160, highlight=False, color_system=None).print(table)
    print("\n".join(line.rstrip() for line in buffer.getvalue().strip("\n").splitlines()))


def _data_check(args: argparse.Namespace) -> None:
    from hubel.data.health import check

    report = check(args.root, near_threshold=args.near_threshold, progress=not args.json)
    print(report.to_json() if args.json else report)


def _train(args: argparse.Namespace) -> None:
    from hubel.runs import train
    from hubel.train.distributed import leave

    try:  # one of torchrun's processes leaves the group before the process ends
        train(
            args.data,
            args.model,
            epochs=args.epochs,
            batch_size=args.batch_size,
            optimizer=args.optimizer,
            learning_rate=args.lr,
            image_size=args.image_size[:2] if args.image_size else None,
            augment=args.augment,
            tta=args.tta,
            precision=args.precision,
            seed=args.seed,
            validation_split=args.validation_split,
            out=args.out,
            resume=args.resume,
            budget=args.budget,
            fine_tune=args.fine_tune,
            nproc=args.nproc,
            sync_batchnorm=args.sync_bn,
            port=args.port,
            command="hubel " + " ".join(sys.argv[1:]),
            started_at=args.started_at,
        )
    finally:
        leave()


def process_started_at() -> float:
    """When this process started, as a time.time(): `--budget 60s` is the command's whole minute,
    its imports included (torch's and the rest: about 3 s on two cores). From Linux's /proc
    (10 ms ticks); elsewhere, now."""
    try:
        after_name = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_ticks = int(after_name[19])  # field 22, starttime: clock ticks after boot
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time()
    return time.time() - max(age, 0.0)


def _predict(args: argparse.Namespace) -> None:
    import json

    from hubel.runs import predict_files

    results = predict_files(args.model, args.images, top=args.top)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for result in results:
        ranked = ", ".join(f"{entry['class']} {entry['probability']:.1%}" for entry in result["top"])
        shown = result["file"] or repr(result["text"] if len(result["text"]) <= 60 else result["text"][:57] + "...")
        print(f"{shown}: {ranked}")


def _export(args: argparse.Namespace) -> None:
    from hubel.runs import export_model

    result = export_model(args.model, out=args.out, format=args.format, input_dtype=args.input_dtype)
    print(
        f"Wrote {result.path} ({result.path.stat().st_size / 2**20:.2f} MB). Parity with ONNX Runtime on "
        f"{result.examples} examples: max |difference| {result.max_difference:.2e}."
    )


def _serve(args: argparse.Namespace) -> None:
    from hubel.serve import serve

    token = args.token or os.environ.get("HUBEL_SERVE_TOKEN")
    if args.host not in ("127.0.0.1", "localhost", "::1") and token is None:
        print(f"hubel serve: listening on {args.host} without a token; anyone who can reach it can use it "
              "(--token or HUBEL_SERVE_TOKEN requires one).", file=sys.stderr)  # fmt: skip
    if args.max_upload_mb <= 0:
        raise ConfigError(f"--max-upload-mb must be positive. Received: {args.max_upload_mb}")
    serve(args.model, args.host, args.port, token=token, max_upload_bytes=int(args.max_upload_mb * 2**20),
          engine=args.engine, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
          workers=args.workers)  # fmt: skip


def _evaluate(args: argparse.Namespace) -> None:
    from hubel.runs import evaluate

    result = evaluate(args.model, args.data, out=args.out, engine=args.engine)
    if args.json:
        import dataclasses
        import json

        rows = [dataclasses.asdict(row) if dataclasses.is_dataclass(row) else row for row in result["classes"]]
        print(json.dumps({**result, "classes": rows}, indent=2))
        return
    print(
        f"loss {result['loss']:.4f} - accuracy {result['accuracy']:.4f} on {result['examples']:,} examples "
        f"({result['seconds']:.1f} s, {result['engine']})"
    )
    width = max(len(row.name) for row in result["classes"])
    print(f"{'class'.ljust(width)}  precision  recall      F1  support")
    for row in result["classes"]:
        print(f"{row.name.ljust(width)}  {row.precision:9.3f}  {row.recall:6.3f}  {row.f1:6.3f}  {row.support:7,}")
    print(f"Confusion matrix: {result['confusion_png']}")


def _compare(args: argparse.Namespace) -> None:
    from hubel.runs import compare

    compare(
        args.data,
        args.model,
        epochs=args.epochs,
        budget=args.budget,
        batch_size=args.batch_size,
        seed=args.seed,
        out=args.out,
    )


def _report(args: argparse.Namespace) -> None:
    from hubel.runs import report_run

    print(f"Report: {report_run(args.run_dir, args.out)}")


def _runs(args: argparse.Namespace) -> None:
    from hubel.runs import list_runs

    rows = list_runs(args.root)
    if not rows:
        print(f"No runs under {args.root}/ yet: hubel train DATA writes one.")
        return
    print(f"{'run':24} {'data':16} {'model':18} {'epochs':>6} {'best val':>9} {'test':>7} {'time':>7}  state")
    for row in rows:
        best = f"{row['best_val_accuracy']:.4f}" if row["best_val_accuracy"] is not None else "-"
        test = f"{row['test_accuracy']:.4f}" if row["test_accuracy"] is not None else "-"
        seconds = f"{row['seconds']:.0f}s" if row["seconds"] is not None else "-"
        print(
            f"{row['run'][:24]:24} {str(row['data'])[:16]:16} {str(row['model'])[:18]:18} {row['epochs']:>6} "
            f"{best:>9} {test:>7} {seconds:>7}  {row['state']}"
        )


def _convolve(args: argparse.Namespace) -> None:
    import numpy as np
    from PIL import Image

    from hubel.inspect.kernels import show_kernel

    try:
        with Image.open(args.image) as image:
            pixels = np.asarray(image.convert("L"))
    except (OSError, ValueError) as error:
        raise ConfigError(f"{args.image}: cannot read this image ({error}).") from None
    out = args.out or f"{Path(args.image).stem}-{args.kernel}.png"
    show_kernel(pixels, args.kernel, path=out)
    print(f"Saved {out}")


def build_parser() -> argparse.ArgumentParser:
    from hubel import __version__

    parser = argparse.ArgumentParser(
        prog="hubel",
        description="Train, inspect and ship convolutional classifiers with Keras's vocabulary on PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"hubel {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    summary = commands.add_parser(
        "summary",
        help="print the Keras-style summary (params, MACs, memory) of a model spec or .hubel file",
        description="Print the layer table of a model: output shapes, parameters, MACs and memory.",
        epilog="examples: hubel summary examples/fashion_cnn.yaml --input-shape 32,32,1; hubel summary lenet",
    )
    summary.add_argument("model", metavar="MODEL", help="a .yaml/.json model spec, a .hubel model file or a zoo name")
    summary.add_argument("--input-shape", type=_shape, help="override the spec's input shape, e.g. 32,32,3")
    summary.set_defaults(run=_summary)

    zoo = commands.add_parser(
        "zoo",
        help="list the named architectures (from the Keras tutorials) with their params and MACs",
        description="The model zoo: names, default input shapes, parameters and MACs per example.",
        epilog="example: hubel zoo; then hubel summary fashion_cnn",
    )
    zoo.set_defaults(run=_zoo)

    train = commands.add_parser(
        "train",
        help="train a model on a built-in dataset or a folder of images into a run directory",
        description="Train, then write runs/NAME/ with config.yaml, metrics.jsonl, checkpoints/, model.hubel, "
        "report.html and train.log. DATA is a built-in dataset (mnist, fashion_mnist, digits, cifar10) or a "
        "folder with one sub-folder of images per class (or train/ val/ test/ inside).",
        epilog="examples: hubel train fashion_mnist --epochs 5;  hubel train photos/ --model snacks_convnet "
        "--image-size 160,160 --out runs/photos;  hubel train photos/ --model mobilenet_v2 --fine-tune;  "
        "hubel train fashion_mnist --out runs/a --resume",
    )
    train.add_argument("data", metavar="DATA", help="a built-in dataset name or a folder of images")
    train.add_argument(
        "--model",
        help="a zoo name (see `hubel zoo`) or a spec file; a default suits the data (with --budget, when the "
        "budget buys it 3 epochs: airbench_small on CIFAR-10, airbench_tiny on MNIST and Fashion-MNIST, at batch "
        "256 for a shorter run; for a folder of images, transfer learning from mobilenet_v2 unless an option "
        "of training from scratch is given: then snacks_convnet)",
    )
    train.add_argument("--epochs", type=int, help="passes over the training data (default 5)")
    train.add_argument("--budget", type=_duration, help="train for this wall-clock time instead: 90s, 5m, 1h")
    train.add_argument("--batch-size", type=int, help="default: the model's recipe (32 for the tutorials' networks)")
    train.add_argument("--optimizer", help="adam, sgd, rmsprop, adamw (default: the model's recipe)")
    train.add_argument(
        "--lr", type=float, help="learning rate, the peak of a one-cycle schedule (default: the model's recipe)"
    )
    train.add_argument(
        "--image-size",
        type=_shape,
        help="for folders: height,width (default: the backbone's own 224,224 for transfer learning, or with "
        "--budget the largest that fits; 160,160 from scratch)",
    )
    train.add_argument(
        "--validation-split",
        type=float,
        metavar="FRACTION",
        help="of the training data held out to validate each epoch (default 0.1 of a built-in dataset, 0.2 of a "
        "folder without val/); 0 trains on all of it, with no validation",
    )
    train.add_argument(
        "--augment",
        nargs="?",
        const="flip,shift",
        default="auto",
        metavar="NAMES",
        help="add augmentation layers: flip, shift, rotate, zoom, contrast (comma-separated; alone: flip,shift); "
        "none; auto (the default): flip,shift on CIFAR-10 for runs of 10 epochs or more (airbench: 6)",
    )
    train.add_argument(
        "--tta",
        choices=("auto", "flip", "none"),
        default="auto",
        help="test-time augmentation of the model: flip averages each image with its mirror image (twice the "
        "inference); auto: flip on CIFAR-10 and with --augment flip",
    )
    train.add_argument(
        "--precision",
        choices=("auto", "float32", "bf16"),
        default="auto",
        help="auto: bf16 autocast where the hardware runs it fast (CUDA, CPUs with AMX or AVX512-BF16), else float32",
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", help="the run directory (default runs/DATA-MODEL)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.add_argument(
        "--fine-tune",
        action="store_true",
        help="with transfer learning (a pretrained --model, or a folder of images without --model): also train "
        "its top blocks at a low rate",
    )
    train.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="train on N processes of this machine (torch.distributed; across machines: torchrun ... -m hubel train)",
    )
    train.add_argument("--sync-bn", action="store_true", help="with --nproc: batch statistics over all processes")
    train.add_argument("--port", type=int, help="with --nproc: the port the processes meet on (default: a free one)")
    train.set_defaults(run=_train)

    export = commands.add_parser(
        "export",
        help="an ONNX graph that takes what predict takes, checked against ONNX Runtime",
        description="Export a .hubel model or a run directory to ONNX. The graph takes raw NHWC pixels (token ids "
        "for a text model) with a dynamic batch axis; it is written only if ONNX Runtime reproduces the model "
        "within 1e-4 on real inputs (the run's test data).",
        epilog="example: hubel export runs/fashion_mnist-default --format onnx --out fashion.onnx",
    )
    export.add_argument("model", metavar="MODEL", help="a .hubel file or a run directory")
    export.add_argument("--format", default="onnx", choices=["onnx"])
    export.add_argument("--out", help="the file to write (default: beside the model, model.onnx)")
    export.add_argument(
        "--input-dtype", default="float32", choices=["float32", "uint8"], help="what the graph's pixel input is"
    )
    export.set_defaults(run=_export)

    serve = commands.add_parser(
        "serve",
        help="answer predictions over HTTP (POST /predict, GET /model, /health, /docs)",
        description="Serve a .hubel model or a run directory over HTTP with FastAPI and uvicorn: a page to try it "
        "at /, POST /predict (?top=k, ?explain=true), GET /model, /health and the API docs at /docs.",
        epilog="example: hubel serve runs/photos --port 8000  (open http://127.0.0.1:8000/);  "
        "curl -F file=@cat.jpg localhost:8000/predict",
    )
    serve.add_argument("model", metavar="MODEL", help="a .hubel file or a run directory")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="the port to listen on (default 8000)")
    serve.add_argument("--token", help="require `Authorization: Bearer TOKEN` (or set HUBEL_SERVE_TOKEN)")
    serve.add_argument("--max-upload-mb", type=float, default=20.0, help="the largest request body accepted")
    serve.add_argument(
        "--engine", default="auto", choices=["auto", "onnxruntime", "torch"],
        help="what runs the model (default: ONNX Runtime when installed and faithful to the model, else PyTorch)",
    )  # fmt: skip
    serve.add_argument(
        "--workers", type=int, default=1, help="processes answering on the port, each with its model (default 1)"
    )
    serve.add_argument("--max-batch", type=int, default=64, help="the most concurrent requests run as one batch")
    serve.add_argument(
        "--max-wait-ms", type=float, default=2.0, help="how long a request waits for others to share its batch"
    )
    serve.set_defaults(run=_serve)

    predict = commands.add_parser(
        "predict",
        help="top classes for image files or texts, preprocessed as in training",
        description="Classify image files (or texts, for a text model) with a .hubel model, a run directory, or "
        "a pretrained backbone's ImageNet top (no training).",
        epilog="examples: hubel predict runs/photos cat.jpg dog.png --top 2;  "
        'hubel predict mobilenet_v2 cat.jpg --top 5;  hubel predict runs/imdb "a moving, funny film" review.txt',
    )
    predict.add_argument(
        "model", metavar="MODEL", help="a .hubel file, a run directory, or a pretrained backbone (ImageNet classes)"
    )
    predict.add_argument(
        "images", metavar="INPUT", nargs="+", help="image files; for a text model, .txt files or the text in quotes"
    )
    predict.add_argument("--top", type=int, default=3)
    predict.add_argument("--json", action="store_true", help="print JSON")
    predict.set_defaults(run=_predict)

    evaluate = commands.add_parser(
        "evaluate",
        help="loss, accuracy, per-class table and confusion matrix of a model on a dataset's test split",
        description="Evaluate a .hubel model (or a run directory) on a built-in dataset's test split, or on a "
        "folder's test/ (else val/) images.",
        epilog="example: hubel evaluate runs/fashion_mnist-default fashion_mnist",
    )
    evaluate.add_argument("model", metavar="MODEL", help="a .hubel file or a run directory")
    evaluate.add_argument("data", metavar="DATA", help="a built-in dataset name or a folder of images")
    evaluate.add_argument("--out", help="where to save the confusion-matrix PNG (default: beside the model)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object (loss, accuracy, examples, ...)")
    evaluate.add_argument(
        "--engine", default="auto", choices=["auto", "onnxruntime", "torch"],
        help="what runs the model: auto (ONNX Runtime on a CPU when installed and faithful to the model, "
        "else PyTorch), onnxruntime, or torch",
    )  # fmt: skip
    evaluate.set_defaults(run=_evaluate)

    compare = commands.add_parser(
        "compare",
        help="train several models on the same split, seed and epochs; a table and overlaid curves",
        description="Train each --model on DATA with the same split, seed and epochs, then print and save a "
        "table (test accuracy, params, MACs, train time, inference ms/image, model file MB) and the validation "
        "curves overlaid.",
        epilog="example: hubel compare mnist --model mlp --model mnist_one_conv --model fashion_cnn --epochs 2",
    )
    compare.add_argument("data", metavar="DATA", help="a built-in dataset name or a folder of images")
    compare.add_argument("--model", action="append", required=True, help="a zoo name or spec file (repeat it)")
    compare.add_argument("--epochs", type=int, default=3)
    compare.add_argument("--budget", type=_duration, help="train each model for this wall-clock time instead: 2m")
    compare.add_argument("--batch-size", type=int, help="default: each model's recipe")
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--out", help="the folder for the runs and the table (default runs/compare-DATA)")
    compare.set_defaults(run=_compare)

    report = commands.add_parser(
        "report",
        help="write the HTML report of a run directory again",
        epilog="example: hubel report runs/fashion_mnist-default --out report.html",
    )
    report.add_argument("run_dir", metavar="RUN", help="a run directory written by hubel train")
    report.add_argument("--out", help="where to write it (default RUN/report.html)")
    report.set_defaults(run=_report)

    runs = commands.add_parser("runs", help="a table of the runs under runs/", epilog="example: hubel runs")
    runs.add_argument("root", nargs="?", default="runs", help="the folder holding run directories (default runs)")
    runs.set_defaults(run=_runs)

    convolve = commands.add_parser(
        "convolve",
        help="a hand-made kernel over an image: original and response side by side",
        epilog="example: hubel convolve digit.png --kernel vertical_edge (also horizontal_edge, sobel_x, sobel_y, "
        "laplacian, sharpen, box_blur, gaussian_blur)",
    )
    convolve.add_argument("image", metavar="IMAGE")
    convolve.add_argument("--kernel", default="vertical_edge", help="a named kernel (default vertical_edge)")
    convolve.add_argument("--out", help="the PNG to write (default IMAGE-KERNEL.png)")
    convolve.set_defaults(run=_convolve)

    data = commands.add_parser("data", help="look at a folder of images before training on it")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    data_check = data_commands.add_parser(
        "check",
        help="counts, sizes, colour modes, unreadable files, duplicates and leakage, class balance",
        description="Report what a folder of images (ROOT/<class>/* or ROOT/{train,val,test}/<class>/*) holds "
        "and what needs attention: duplicates shared between splits (leakage) come first.",
        epilog="example: hubel data check photos/ --json > health.json",
    )
    data_check.add_argument("root", metavar="ROOT", help="the dataset folder")
    data_check.add_argument("--json", action="store_true", help="print JSON for machines instead of text")
    data_check.add_argument(
        "--near-threshold",
        type=int,
        default=5,
        help="bits (of 64) two images' hashes may differ and count as near duplicates",
    )
    data_check.set_defaults(run=_data_check)
    return parser


def main(argv: Sequence[str] | None = None, *, started_at: float | None = None) -> int:
    """Run one command line (default: sys.argv's); its exit status. started_at (a time.time())
    is when the command's time began, which a --budget counts from: the `hubel` command passes
    its process's start; default, the call."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.started_at = started_at
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    try:
        args.run(args)
    except HubelError as error:
        print(f"hubel {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


def command() -> None:
    """The `hubel` command: main() in a process of its own, which it ends.

    The garbage collector leaves alone what exists when the command starts (the imports, torch's
    few hundred thousand objects) and what exists when it ends: its full passes walked all of it,
    11% of a 6 s run (`hubel train digits`), and the interpreter's last pass at exit took 1.1 s,
    0.2 s with this (benchmarks/README.md). Python's API calls main() and keeps its collector."""
    gc.freeze()
    code = main(started_at=process_started_at())
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    command()
