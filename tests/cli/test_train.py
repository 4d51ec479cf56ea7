import json
import re

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import hubel
from hubel import layers as L
from hubel.cli.main import main


def test_train_writes_a_complete_run_directory_and_resumes(tmp_path, capsys):
    run = tmp_path / "digits"
    assert main(["train", "digits", "--epochs", "2", "--out", str(run)]) == 0
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoints",
        "config.yaml",
        "metrics.jsonl",
        "model.hubel",
        "report.html",
        "result.json",
        "train.log",
    ]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"] == "digits" and config["model"] == "mnist_one_conv" and config["seed"] == 0
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [0, 1] and "val_accuracy" in lines[0]
    out = capsys.readouterr().out
    assert "Test accuracy" in out and str(run / "report.html") in out
    assert json.loads((run / "result.json").read_text())["measured_on"] == "test"
    model = hubel.load_model(run / "model.hubel")
    assert model.metadata["class_names"][:3] == ["0", "1", "2"]
    assert main(["train", "digits", "--epochs", "2", "--out", str(run)]) == 2  # never overwritten
    assert "exists already: resume it with --resume" in capsys.readouterr().err
    assert main(["train", "digits", "--epochs", "3", "--out", str(run), "--resume"]) == 0
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [0, 1, 2]  # continued from the checkpoint, not from zero
    steps = hubel.load_model(run / "model.hubel").metadata["history_steps"]  # what the report draws per step
    assert steps["epoch"][-1] == 3.0 and np.all(np.diff(steps["epoch"]) > 0)  # the resumed run kept epochs 1-2
    per_epoch = [sum(epoch < p <= epoch + 1 for p in steps["epoch"]) for epoch in range(3)]
    assert len(steps["loss"]) == len(steps["epoch"]) and per_epoch[0] == per_epoch[1] == per_epoch[2] > 10
    capsys.readouterr()
    assert main(["evaluate", str(run), "digits"]) == 0
    out = capsys.readouterr().out
    result = json.loads((run / "result.json").read_text())
    assert out.startswith(f"loss {result['test_loss']:.4f} - accuracy {result['test_accuracy']:.4f}")
    assert (run / "model-confusion.png").exists()
    assert main(["runs", str(tmp_path)]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[:4] == ["digits", "digits", "mnist_one_conv", "3"] and row[5] == f"{result['test_accuracy']:.4f}"
    again = tmp_path / "again.html"
    assert main(["report", str(run), "--out", str(again)]) == 0
    assert f"{result['test_accuracy']:.2%}" in again.read_text()  # the same test accuracy, recomputed
    assert main(["report", str(tmp_path)]) == 2 and "not a finished run directory" in capsys.readouterr().err


def test_the_test_pass_and_evaluate_take_onnx_runtime_when_it_repays_its_start_and_agree_with_pytorch(tmp_path, capsys):
    from hubel.runs import evaluate
    from hubel.runs.inference import _test_outputs

    run = tmp_path / "digits"
    assert main(["train", "digits", "--epochs", "1", "--out", str(run)]) == 0
    result = json.loads((run / "result.json").read_text())
    assert result["test_engine"] == "PyTorch (a pass this short does not repay ONNX Runtime's start)"
    fast, exact = evaluate(run, "digits", engine="onnxruntime"), evaluate(run, "digits", engine="torch")
    assert fast["engine"].startswith("ONNX Runtime") and exact["engine"] == "PyTorch, as asked"
    examples = fast["examples"]
    assert examples == exact["examples"] == 355  # the built-in digits test split
    assert fast["accuracy"] == pytest.approx(exact["accuracy"], abs=1 / examples)  # a near tie may flip, no more
    assert exact["accuracy"] == pytest.approx(result["test_accuracy"])
    assert fast["loss"] == pytest.approx(exact["loss"], rel=1e-4)
    # a pass that PyTorch would take long over goes to ONNX Runtime, with the same outputs
    model = hubel.load_model(run / "model.hubel")
    _, (x_test, _) = hubel.datasets.load("digits")
    outputs, engine = _test_outputs(model, x_test, seconds_per_example=1.0)
    assert engine.startswith("ONNX Runtime")
    np.testing.assert_allclose(outputs, model.predict(x_test), atol=1e-5)
    outputs, engine = _test_outputs(model, x_test)  # timed on its first batch: short, so PyTorch
    assert engine.startswith("PyTorch (a pass this short") and outputs.shape == (examples, 10)
    capsys.readouterr()
    assert main(["evaluate", str(run), "digits", "--engine", "torch"]) == 0
    assert "PyTorch, as asked" in capsys.readouterr().out


def test_the_residual_network_trains_with_its_recipe_and_augmentation_and_resumes_from_its_config(tmp_path):
    run = tmp_path / "resnet"
    assert main(["train", "digits", "--model", "fast_resnet", "--epochs", "2", "--augment", "--out", str(run)]) == 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["batch_size"] == 128 and config["augment"] == "flip,shift" and config["optimizer"] is None
    assert config["optimizer_used"].startswith("SGD(learning_rate=0.1") and "nesterov=True" in config["optimizer_used"]
    assert config["one_cycle_peak"] == 0.1 and config["precision"] in ("bf16", "float32")
    layers = hubel.load_model(run / "model.hubel").layers
    assert [type(layer).__name__ for layer in layers[:3]] == ["Rescaling", "RandomFlip", "RandomTranslation"]
    assert sum(type(layer).__name__ == "Residual" for layer in layers) == 3
    rates = [json.loads(line)["learning_rate"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rates[0] > rates[1]  # one cycle: epoch 1 ends past the peak, epoch 2 near zero
    # 10 classes, chance 0.1; after 24 steps BN's moving statistics (momentum 0.99) are still far from
    # the data, so the test accuracy is about 0.5 (0.499 with Keras's biased variance, 0.501 before it)
    assert json.loads((run / "result.json").read_text())["test_accuracy"] > 0.3
    assert "Trained with SGD(learning_rate=0.1, momentum=0.9" in (run / "report.html").read_text()
    # trained on flipped images, the model averages each image with its mirror (--tta auto)
    assert config["tta"] == "auto" and config["test_time_augmentation"] == "flip"
    assert hubel.load_model(run / "model.hubel").test_time_augmentation == "flip"
    assert "average each image with its mirror" in (run / "report.html").read_text()
    # resuming with no options takes them from config.yaml: the same model, recipe and augmentation
    assert main(["train", "digits", "--epochs", "3", "--out", str(run), "--resume"]) == 0
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [0, 1, 2]
    assert [type(layer).__name__ for layer in hubel.load_model(run / "model.hubel").layers[:2]] == [
        "Rescaling",
        "RandomFlip",
    ]


def test_train_on_a_folder_then_predict_files_like_model_predict(tmp_path, capsys):
    folder = tmp_path / "colours"
    rng = np.random.default_rng(0)
    for name, colour in (("blue", (20, 20, 220)), ("red", (220, 20, 20))):
        (folder / name).mkdir(parents=True)
        for index in range(15):
            noise = rng.integers(0, 40, (24, 24, 3))
            Image.fromarray((np.array(colour) + noise).clip(0, 255).astype(np.uint8)).save(
                folder / name / f"{index}.png"
            )
    run = tmp_path / "run"
    code = main(["train", str(folder), "--model", "cifar_convnet_gmp", "--image-size", "32,32", "--epochs", "3",
                 "--lr", "0.003", "--validation-split", "0.4", "--seed", "2", "--out", str(run)])  # fmt: skip
    assert code == 0 and (run / "report.html").exists()
    out = capsys.readouterr().out  # no test/ folder: the last figures are the validation split's, and say so
    assert "Validation accuracy (no test/ folder)" in out and "Test accuracy" not in out
    assert json.loads((run / "result.json").read_text())["measured_on"] == "validation"
    assert "No test split was held out" in (run / "report.html").read_text()
    assert "on 12 images" in (run / "report.html").read_text()  # 40% of 30
    assert main(["report", str(run), "--out", str(tmp_path / "again.html")]) == 0  # the run's split and seed again
    again, first = (tmp_path / "again.html").read_text(), (run / "report.html").read_text()
    accuracy = json.loads((run / "result.json").read_text())["test_accuracy"]
    assert "on 12 images" in again and f"{accuracy:.2%}" in again and f"{accuracy:.2%}" in first
    capsys.readouterr()
    assert main(["runs", str(tmp_path)]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[0] == "run" and row[5] == "-"  # a best validation accuracy, no test accuracy
    picture = tmp_path / "query.jpg"
    Image.new("RGB", (50, 40), (230, 10, 10)).save(picture)
    assert main(["predict", str(run), str(picture), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    model = hubel.load_model(run / "model.hubel")
    pixels = hubel.data.images.decode_image(picture, hubel.data.images.DecodeOptions((32, 32)))
    positive = float(model.predict(pixels[None])[0, 0])  # two classes: one sigmoid unit
    expected = ["blue", "red"][int(positive > 0.5)]
    assert result["top"][0]["class"] == expected
    assert result["top"][0]["probability"] == max(positive, 1 - positive)


def test_airbench_adapts_its_whitening_and_trains_with_its_recipe(tmp_path, capsys):
    folder = tmp_path / "shapes"
    rng = np.random.default_rng(0)
    for name in ("bars", "dots"):
        (folder / name).mkdir(parents=True)
        for index in range(12):
            pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            pixels[:, ::4] = 255 if name == "bars" else pixels[:, ::4]
            Image.fromarray(pixels).save(folder / name / f"{index}.png")
    run = tmp_path / "run"
    assert main(["train", str(folder), "--model", "airbench", "--image-size", "16,16", "--epochs", "1",
                 "--out", str(run)]) == 0  # fmt: skip
    whitening = hubel.load_model(run / "model.hubel").get_layer("patch_whitening")
    train, _ = hubel.data.image_folder(folder, (16, 16), validation_split=0.2, subset="both", seed=0, verbose=False)
    expected = L.PatchWhitening(2)
    expected.adapt(train.numpy()[0] / 255)  # every training image (fewer than 5,000), not the validation ones
    assert torch.allclose(whitening.kernel, expected.kernel, atol=1e-5)  # fitted, then fixed while training
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert (config["label_smoothing"], config["batch_size"], config["one_cycle_peak"]) == (0.2, 1024, 1.5)
    assert config["lookahead"] == "Lookahead(every=5, decay=0.7738, power=3)"  # the recipe's callback, in fit
    assert "learning_rate_multipliers={'beta': 64.0}" in config["optimizer_used"]  # batch norm's offsets
    assert config["freeze_weights"] == ["FreezeWeights('patch_whitening*.bias', after_epochs=3)"]
    report = (run / "report.html").read_text()
    assert "labels smoothed by 0.2" in report and "Lookahead(every=5" in report and "FreezeWeights(" in report


def test_a_built_in_run_adapts_patch_whitening_without_the_validation_images(tmp_path):
    spec = tmp_path / "whitened.yaml"
    spec.write_text(
        "input_shape: [8, 8, 1]\nlayers:\n  - Rescaling: {scale: 0.00392156862745098}\n"
        "  - PatchWhitening: {kernel_size: 2}\n  - GlobalAveragePooling2D\n"
        "  - Dense: {units: 10, activation: softmax}\n"
    )
    run = tmp_path / "run"
    assert main(["train", "digits", "--model", str(spec), "--epochs", "1", "--out", str(run)]) == 0
    whitening = hubel.load_model(run / "model.hubel").get_layer("patch_whitening")
    (x_train, _), _ = hubel.datasets.load("digits")
    expected = L.PatchWhitening(2)
    expected.adapt(x_train[: int(len(x_train) * 0.9)].reshape(-1, 8, 8, 1) / 255)  # fit's validation: the last 10%
    assert torch.allclose(whitening.kernel, expected.kernel, atol=1e-5)


def test_tta_follows_the_data_unless_told(tmp_path, capsys):
    from hubel import runs

    plain = runs.train("digits", "mlp", epochs=1, out=tmp_path / "digits")  # digits are not mirror images
    assert hubel.load_model(plain.directory / "model.hubel").test_time_augmentation is None
    told = runs.train("digits", "mlp", epochs=1, tta="flip", out=tmp_path / "told")
    assert hubel.load_model(told.directory / "model.hubel").test_time_augmentation == "flip"
    network = hubel.models.zoo.create_model("mlp", input_shape=(32, 32, 3))
    assert runs.setup._test_time_augmentation("auto", network, "cifar10") == "flip"
    assert runs.setup._test_time_augmentation("none", network, "cifar10") is None
    assert main(["train", "digits", "--model", "mobilenet_v2", "--tta", "flip", "--out", str(tmp_path / "t")]) == 2
    assert "--tta flip is for networks trained here from scratch" in capsys.readouterr().err
    with pytest.raises(hubel.errors.ConfigError, match="expected --tta"):  # before any data is read
        runs.train("imdb", tta="rotate", out=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_augment_auto_adds_flips_and_shifts_to_mirror_symmetric_data_in_long_runs(tmp_path, capsys, monkeypatch):
    from hubel import runs

    augmentation = runs.setup._augmentation
    assert augmentation("auto", "cifar10", 10) == "flip,shift" and augmentation("auto", "cifar10", 9) is None
    assert augmentation("auto", "cifar10", 4, from_epochs=4) == "flip,shift"  # a recipe's own threshold
    assert augmentation("auto", "cifar10", 3, from_epochs=4) is None
    assert augmentation("auto", "mnist", 40) is None  # digits and shoes are not mirror images
    assert augmentation("none", "cifar10", 40) is None and augmentation(None, "cifar10", 40) is None
    assert augmentation("flip", "digits", 1) == "flip"
    # digits taken as mirror-symmetric, and 3 epochs as long: the budget's plan decides, the network
    # is rebuilt with the augmentation, and its steps are timed again
    monkeypatch.setattr(runs.setup, "_MIRRORED", ("digits",))
    monkeypatch.setattr(runs.setup, "_AUTO_AUGMENTATION_FROM_EPOCHS", 3)
    planned, plan = [], runs.training._plan_budget

    def recording_plan(network, *rest):
        planned.append(network)
        return plan(network, *rest)

    monkeypatch.setattr(runs.training, "_plan_budget", recording_plan)
    run = runs.train("digits", "mlp", budget=6, out=tmp_path / "long").directory
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["augment"] == "flip,shift" and config["epochs"] >= 3
    assert [type(layer).__name__ for layer in planned[1].layers[:3]] == ["Rescaling", "RandomFlip", "RandomTranslation"]
    assert len(planned) == 2 and "RandomFlip" not in [type(layer).__name__ for layer in planned[0].layers]
    assert f"Augmentation (auto, for {config['epochs']} epochs): flip,shift." in capsys.readouterr().out
    assert [type(layer).__name__ for layer in hubel.load_model(run / "model.hubel").layers[:2]] == [
        "Rescaling",
        "RandomFlip",
    ]
    assert "augmentation: flip,shift" in (run / "report.html").read_text()
    short = runs.train("digits", "mlp", epochs=2, out=tmp_path / "short").directory  # below 3 epochs: none
    assert yaml.safe_load((short / "config.yaml").read_text())["augment"] is None


def test_a_budget_without_a_model_plans_the_long_run_network_first_and_keeps_it_if_it_fits(
    tmp_path, capsys, monkeypatch
):
    from hubel import runs

    monkeypatch.setattr(
        runs.training, "_LONG_RUN_MODELS", {"digits": ("fast_resnet_small",)}
    )  # default: mnist_one_conv
    kept = runs.train("digits", budget=5, out=tmp_path / "kept").directory
    config = yaml.safe_load((kept / "config.yaml").read_text())
    assert (config["model"], config["batch_size"]) == ("fast_resnet_small", 128)
    epochs = config["budget"]["total_steps"] / config["budget"]["steps_per_epoch"]
    assert f"Model: fast_resnet_small (fast_resnet_small takes 3 epochs or more; the budget buys it {epochs:.1f})." in (
        capsys.readouterr().out
    )
    monkeypatch.setattr(runs.training, "_LONG_RUN_FROM_EPOCHS", 10_000)  # more than 5 s buys
    short = runs.train("digits", budget=5, out=tmp_path / "short").directory
    config = yaml.safe_load((short / "config.yaml").read_text())
    assert (config["model"], config["batch_size"]) == ("mnist_one_conv", 32)  # its own recipe's batch
    out = capsys.readouterr().out
    assert "Model: mnist_one_conv (fast_resnet_small takes 10000 epochs or more; the budget would buy it " in out
    monkeypatch.setattr(runs.training, "_LONG_RUN_FROM_EPOCHS", 1)
    named = runs.train("digits", "mnist_one_conv", budget=5, out=tmp_path / "named").directory  # --model decides
    assert yaml.safe_load((named / "config.yaml").read_text())["model"] == "mnist_one_conv"
    assert " takes 1 epochs or more" not in capsys.readouterr().out


def test_the_long_run_network_needs_its_epochs_in_steps_not_a_last_epoch_begun(tmp_path, capsys, monkeypatch):
    # a plan of 2.5 epochs has 3 to count; on CIFAR-10, airbench_small at batch 1,024 for 2.3 epochs
    # reached 85.9%, where at 512 for 1.95 it reached 87.9%
    from hubel import runs

    planned = runs.training._plan_budget

    def two_and_a_half_epochs(*arguments, **keywords):
        plan = planned(*arguments, **keywords)
        return {**plan, "total_steps": int(2.5 * plan["steps_per_epoch"]), "epochs": 3}

    monkeypatch.setattr(runs.training, "_plan_budget", two_and_a_half_epochs)
    monkeypatch.setattr(runs.training, "_LONG_RUN_MODELS", {"digits": ("fast_resnet_small",)})
    run = runs.train("digits", budget=5, out=tmp_path / "run").directory
    assert yaml.safe_load((run / "config.yaml").read_text())["model"] == "mnist_one_conv"
    assert "(fast_resnet_small takes 3 epochs or more; the budget would buy it 2.5)." in capsys.readouterr().out


def test_a_budget_too_short_for_the_long_run_batch_trains_the_same_network_at_its_short_run_batch(
    tmp_path, capsys, monkeypatch
):
    from dataclasses import replace

    from hubel import runs
    from hubel.models.zoo import ZOO

    entry = ZOO.get("fast_resnet_small")
    shortened = replace(entry, recipe=replace(entry.recipe, short_run_batch_size=64))
    monkeypatch.setitem(ZOO._entries, "fast_resnet_small", shortened)
    monkeypatch.setattr(runs.training, "_LONG_RUN_MODELS", {"digits": ("fast_resnet_small",)})
    monkeypatch.setattr(runs.training, "_LONG_RUN_FROM_EPOCHS", 10_000)  # more than 5 s buys at batch 128
    run = runs.train("digits", budget=5, out=tmp_path / "short").directory
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert (config["model"], config["batch_size"]) == ("fast_resnet_small", 64)
    assert config["budget"]["steps_per_epoch"] == 21  # the 1,297 digits fit trains on, in batches of 64 (128: 11)
    out = capsys.readouterr().out
    assert (
        "Model: fast_resnet_small at batch 64 (fast_resnet_small takes 10000 epochs or more at batch 128; the " in out
    )
    assert " ms a step (scaled from batch 128's), so " in out and config["budget"]["timed_steps"] == 0  # one probe
    given = runs.train("digits", budget=5, batch_size=32, out=tmp_path / "given").directory  # the user's batch holds
    config = yaml.safe_load((given / "config.yaml").read_text())
    assert (config["model"], config["batch_size"]) == ("mnist_one_conv", 32)
    capsys.readouterr()
    # a plan too short for the short-run batch as well (on CIFAR-10, airbench_small below 1.5 epochs)
    too_short = replace(shortened, recipe=replace(shortened.recipe, short_run_from_epochs=10_000))
    monkeypatch.setitem(ZOO._entries, "fast_resnet_small", too_short)
    timed = []  # inference timings: none for a network that all of the budget could not keep, three for the fallback
    seconds_per_example = runs.budget._seconds_per_example
    monkeypatch.setattr(runs.budget, "_seconds_per_example", lambda *a: timed.append(a) or seconds_per_example(*a))
    fallback = runs.train("digits", budget=5, out=tmp_path / "fallback").directory
    config = yaml.safe_load((fallback / "config.yaml").read_text())
    assert (config["model"], config["batch_size"]) == ("mnist_one_conv", 32) and len(timed) == 3
    out = capsys.readouterr().out
    assert (
        "Model: mnist_one_conv (fast_resnet_small takes 10000 epochs or more at batch 128, 10000 at batch 64; " in out
    )
    # epochs to a tenth: it may buy less than one; an upper bound, the finish not timed
    assert re.search(r"the budget would buy it at most \d+\.\d\)\.", out)


def test_train_and_predict_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "fashion", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Did you mean 'fashion_mnist'?" in err
    assert main(["train", "digits", "--model", "resnet99", "--out", str(tmp_path / "b")]) == 2
    assert "Unknown zoo model 'resnet99'" in capsys.readouterr().err
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    model = hubel.models.zoo.create_model("mlp").save(tmp_path / "mlp.hubel")
    assert main(["predict", str(model), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken.jpg: not an image Pillow can read" in err
    assert main(["evaluate", str(model), "digits"]) == 2  # a 28x28 model on 8x8 images
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "takes examples of shape (28, 28, 1)" in err and "received a batch" in err
    assert main(["train", "digits", "--augment", "flip,spin", "--out", str(tmp_path / "c")]) == 2
    assert "Unknown augmentation 'spin'" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "no-such-folder"), "--out", str(tmp_path / "d")]) == 2
    assert "is neither a built-in dataset" in capsys.readouterr().err


def test_convolve_draws_a_hand_kernel_over_an_image(tmp_path, capsys):
    image = tmp_path / "bar.png"
    pixels = np.zeros((20, 20), np.uint8)
    pixels[:, 8:12] = 255
    Image.fromarray(pixels).save(image)
    out = tmp_path / "edges.png"
    assert main(["convolve", str(image), "--kernel", "sobel_x", "--out", str(out)]) == 0
    assert out.stat().st_size > 1000 and f"Saved {out}" in capsys.readouterr().out
    assert main(["convolve", str(image), "--kernel", "sobelx"]) == 2
    assert "Did you mean 'sobel_x'" in capsys.readouterr().err


def test_compare_trains_each_model_on_the_same_split_and_writes_a_table(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert (
        main(["compare", "digits", "--model", "mlp", "--model", "mnist_one_conv", "--epochs", "2", "--out", str(out)])
        == 0
    )
    table = (out / "comparison.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| mlp") or line.startswith("| mnist_one_conv")]
    params = hubel.models.zoo.create_model("mnist_one_conv", 10, (8, 8, 1)).count_params()  # at digits' 8x8
    assert len(rows) == 2 and f"| {params:,} |" in rows[1] and "| model | test accuracy |" in table
    assert (out / "validation_curves.png").stat().st_size > 1000
    for name in ("mlp", "mnist_one_conv"):
        assert json.loads((out / name / "result.json").read_text())["epochs_trained"] == 2
    assert main(["compare", "digits", "--model", "mlp", "--out", str(tmp_path / "one")]) == 2
    assert "needs at least two models" in capsys.readouterr().err


def test_compare_can_give_each_model_the_same_time_budget(tmp_path, monkeypatch):
    from hubel import runs

    # were digits mirror-symmetric, --augment auto would augment a long plan: compare augments none
    monkeypatch.setattr(runs.setup, "_MIRRORED", ("digits",))
    monkeypatch.setattr(runs.setup, "_AUTO_AUGMENTATION_FROM_EPOCHS", 1)
    out = tmp_path / "cmp"
    assert (
        main(["compare", "digits", "--model", "mlp", "--model", "mnist_one_conv", "--budget", "3s", "--out", str(out)])
        == 0
    )
    assert "Same data split, seed 0 and a 3 s budget for every model." in (out / "comparison.md").read_text()
    for name in ("mlp", "mnist_one_conv"):
        result = json.loads((out / name / "result.json").read_text())
        plan = result["budget"]
        assert plan["seconds"] == 3 and 1 <= result["epochs_trained"] <= plan["epochs"]
        assert yaml.safe_load((out / name / "config.yaml").read_text())["augment"] is None
        if plan["stopped_by"] == "steps":  # not by the deadline, which slow machines can reach first
            assert plan["steps_taken"] == plan["total_steps"] and result["epochs_trained"] == plan["epochs"]


def test_a_time_budget_sizes_the_epochs_and_schedule_and_keeps_the_best_epoch(tmp_path, capsys):
    run = tmp_path / "budget"
    assert main(["train", "digits", "--budget", "4s", "--out", str(run)]) == 0
    result = json.loads((run / "result.json").read_text())
    plan = result["budget"]
    # 4 s is less than loading the digits, the probe, the test pass and the report: the console says so first
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line.startswith(
        "Budget 4 s is shorter than this run's fixed costs (starting, loading and timing took "
    )
    first = yaml.safe_load((run / "config.yaml").read_text())["budget"]  # the plan before its re-timing
    assert f"so {first['total_steps']} steps in {first['epochs']} epoch" in first_line and "s or more" in first_line
    assert plan["seconds"] == 4 and plan["epochs"] >= 1 and plan["steps_per_epoch"] == 41
    assert 1 <= result["epochs_trained"] <= plan["epochs"] and plan["steps_taken"] <= plan["total_steps"]
    assert plan["stopped_by"] in ("steps", "seconds")
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == result["epochs_trained"]
    if plan["epochs"] > 2:  # one cycle: the rate peaks within the first epochs, then anneals towards zero
        rates = [line["learning_rate"] for line in lines]  # (logged at epoch ends: the warm-up may end in epoch 1)
        peak = yaml.safe_load((run / "config.yaml").read_text())["one_cycle_peak"]
        assert max(rates) <= peak * 1.0001 and rates.index(max(rates)) < len(rates) - 1 and rates[-1] < peak / 10
    assert "Time budget 4 s:" in (run / "report.html").read_text()
    with pytest.raises(SystemExit) as stop:  # argparse rejects it before anything runs
        main(["train", "digits", "--budget", "soon", "--out", str(tmp_path / "x")])
    assert stop.value.code == 2 and not (tmp_path / "x").exists()


def test_a_budget_counts_from_when_the_command_started(tmp_path, capsys):
    import subprocess
    import sys
    import time

    # the `hubel` command's time begins with its process: torch's imports come out of the budget
    run = tmp_path / "late"
    assert (
        main(["train", "digits", "--model", "mlp", "--budget", "8s", "--out", str(run)], started_at=time.time() - 3)
        == 0
    )
    plan = json.loads((run / "result.json").read_text())["budget"]
    assert plan["before_fit_seconds"] >= 3 and plan["spent_seconds"] >= 3
    assert "Budget 8 s" in capsys.readouterr().out
    code = (
        "import time; time.sleep(1.0); from hubel.cli.main import process_started_at as at; print(time.time() - at())"
    )
    age = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 1.0 <= age < 30  # the sleep and the imports, not the time of the call


def test_a_budget_whose_probe_was_slowed_is_corrected_during_the_run(tmp_path, monkeypatch):
    # Another process slowed the probe 20-fold: it planned 1/20 of the steps in one epoch. The run
    # re-times itself after a few steps and fills the budget with more steps and epochs.
    from hubel import runs

    probe = runs.training._plan_budget  # as train looks it up

    def slowed(*args, **kwargs):
        plan = probe(*args, **kwargs)
        plan["seconds_per_step"] *= 20
        plan["total_steps"], plan["epochs"] = max(5, plan["total_steps"] // 20), 1  # 5: re-timed after 4
        return plan

    monkeypatch.setattr(runs.training, "_plan_budget", slowed)
    run = tmp_path / "slowed"
    runs.train("digits", budget=6, out=run)
    result = json.loads((run / "result.json").read_text())
    first = yaml.safe_load((run / "config.yaml").read_text())["budget"]  # the plan as the probe made it
    plan = result["budget"]
    # The fit ran to its planned end, where the slowed plan alone would have stopped it after about a
    # tenth of a second. Once, in a full test run, the fit began 2.6 s late and so had 0.4 s; it then
    # took 42 steps: the steps and epochs are counted where the fit had the time for them
    fit_had = plan["fit_ends_after"] - plan["fit_began_after"]
    assert first["epochs"] == 1
    assert plan["fit_began_after"] + plan["fit_seconds"] >= plan["fit_ends_after"] - max(0.3, fit_had / 10)
    if fit_had >= 1.0:
        assert plan["steps_taken"] > 3 * first["total_steps"] and result["epochs_trained"] >= 2
    if plan["stopped_by"] == "steps":  # not by the deadline, which slow machines can reach first
        last = result["epochs_trained"]  # the last epoch is counted out of the plan that ended the run
        assert plan["epochs"] == last and (run / "train.log").read_text().splitlines()[-1].startswith(
            f"Epoch {last}/{last} "
        )


def test_a_killed_hubel_train_resumes_and_logs_every_epoch_once(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import torch

    run = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "hubel",
        "train",
        "digits",
        "--epochs",
        "30",
        "--batch-size",
        "4",
        "--out",
        str(run),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ))
    checkpoint = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if checkpoint.exists() and torch.load(checkpoint, weights_only=True)["epoch"] >= 3:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (run / "model.hubel").exists()
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(30))  # each epoch once, none lost, none twice
    assert len((run / "train.log").read_text().splitlines()) == 30
    assert json.loads((run / "result.json").read_text())["epochs_trained"] == 30


def test_the_budget_plans_from_its_fastest_inference_timing_and_times_fewer_steps_when_they_are_slow(monkeypatch):
    # After bf16 training, float32's first batches choose their kernels anew and ran 2-3x slower
    # than the rest: the plan takes the fastest of its timings, not the first.
    import time

    from hubel import layers as L
    from hubel.runs import budget

    timings = iter([0.003, 0.002, 0.001, 0.0005])
    monkeypatch.setattr(budget, "_seconds_per_example", lambda network, x: next(timings))
    network = hubel.Sequential([L.Input((8, 8, 1)), L.Flatten(), L.Dense(10, activation="softmax")])
    network.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = np.zeros((200, 8, 8, 1), np.float32), np.arange(200) % 10
    plan = budget._plan_budget(network, (x, y), None, (x[:100], y[:100]), 16, 30.0, time.perf_counter())
    assert plan["inference_seconds_per_example"] == 0.001  # the third: three are timed
    assert plan["finish_seconds_planned"] == pytest.approx(
        100 * 0.001 * budget._TEST_PASS_OVER_PROBE + budget._REPORT_AND_SAVING_SECONDS
    )
    assert plan["timed_steps"] == 6  # fast steps: six are timed
    monkeypatch.setattr(budget, "_seconds_per_example", lambda network, x: 0.001)
    monkeypatch.setattr(budget, "_PROBE_SECONDS", 1e-9)  # as if each step took longer than the probe's time
    plan = budget._plan_budget(network, (x, y), None, (x[:100], y[:100]), 16, 30.0, time.perf_counter())
    assert plan["timed_steps"] == 1 and plan["seconds_per_step"] > 0  # slow steps: fewer, which train nothing


def test_a_plan_at_another_batch_scales_the_probes_step_time_instead_of_timing_again(monkeypatch):
    import time

    from hubel import layers as L
    from hubel.runs import budget

    network = hubel.Sequential([L.Input((8, 8, 1)), L.Flatten(), L.Dense(10, activation="softmax")])
    network.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = np.zeros((1000, 8, 8, 1), np.float32), np.arange(1000) % 10
    monkeypatch.setattr(budget, "_probe", lambda *arguments: (0.5, 6, 0.001))  # batch 32: half a second a step
    timed = budget._plan_budget(network, (x, y), None, (x[:100], y[:100]), 32, 30.0, time.perf_counter())
    assert (timed["seconds_per_step"], timed["timed_steps"], timed["timed_at_batch"]) == (0.5, 6, 32)

    def probe(*arguments):
        raise AssertionError("probed again")

    monkeypatch.setattr(budget, "_probe", probe)
    scaled = budget._plan_budget(
        network, (x, y), None, (x[:100], y[:100]), 8, 30.0, time.perf_counter(), scaled_from=timed
    )
    assert (scaled["seconds_per_step"], scaled["timed_steps"], scaled["timed_at_batch"]) == (0.125, 0, 32)
    assert scaled["inference_seconds_per_example"] == 0.001 and scaled["steps_per_epoch"] == 125
    assert scaled["total_steps"] == pytest.approx(4 * timed["total_steps"], abs=4)  # a quarter of the time a step
    assert "125 ms a step (scaled from batch 32's), so " in budget._plan_line(scaled)


def test_a_large_batch_is_probed_on_a_cpu_at_a_smaller_one_and_its_step_time_scaled(monkeypatch):
    # airbench_small's probe at batch 1,024 took 12 s of a CPU's budget: a warm-up step and a timed one
    import time

    from hubel import layers as L
    from hubel.runs import budget

    network = hubel.Sequential([L.Input((8, 8, 1)), L.Flatten(), L.Dense(10, activation="softmax")])
    network.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = np.zeros((1000, 8, 8, 1), np.float32), np.arange(1000) % 10
    probed_at = []

    def probe(network, train_data, batch_size, processes, time_inference):
        probed_at.append(batch_size)
        return 0.25, 6, 0.001

    monkeypatch.setattr(budget, "_probe", probe)
    monkeypatch.setattr(budget, "_CPU_PROBE_BATCH", 16)
    plan = budget._plan_budget(network, (x, y), None, (x[:100], y[:100]), 64, 30.0, time.perf_counter())
    assert probed_at == [16] and (plan["timed_at_batch"], plan["batch_size"]) == (16, 64)
    assert plan["seconds_per_step"] == 1.0  # 4x the examples of the 0.25 s step timed
    assert "1000 ms a step (scaled from batch 16's), so " in budget._plan_line(plan)
    plan = budget._plan_budget(network, (x, y), None, (x[:100], y[:100]), 16, 30.0, time.perf_counter())
    assert probed_at[-1] == 16 and plan["seconds_per_step"] == 0.25  # a batch within the limit: as it is
    assert "250 ms a step, so " in budget._plan_line(plan)
    network.to("meta")  # not a CPU: a large batch costs less than its examples' worth there, so it is timed itself
    assert budget._probe_batch(network, 64) == 64


def test_the_budget_probe_times_steps_without_taking_them_at_the_peak_rate(capsys):
    # The probe times a few steps on a copy before the schedule exists: at the recipe's peak rate
    # (reached in the run only after its warm-up) a copy of airbench_tiny went to NaN on MNIST.
    import copy
    import time

    from hubel import layers as L
    from hubel.runs import budget
    from hubel.train import SGD

    network = hubel.Sequential([L.Input((8, 8, 1)), L.Flatten(), L.Dense(1)])
    network.compile(optimizer=SGD(1e5), loss="mse")  # gradient descent diverges geometrically at this rate
    x, y = np.random.default_rng(0).normal(size=(200, 8, 8, 1)).astype(np.float32), np.ones(200, np.float32)
    copy.deepcopy(network).fit(x[:112], y[:112], batch_size=16, verbose=0)  # 7 steps at the rate itself
    assert "the loss became" in capsys.readouterr().err
    budget._plan_budget(network, (x, y), None, (x[:100], y[:100]), 16, 30.0, time.perf_counter())
    captured = capsys.readouterr()
    assert "the loss became" not in captured.out + captured.err
    assert network.optimizer.learning_rate == 1e5  # the network's own optimizer is untouched


def test_validation_split_sets_what_fit_holds_out_and_0_trains_on_everything(tmp_path, capsys):
    spec = tmp_path / "whitened.yaml"
    spec.write_text(
        "input_shape: [8, 8, 1]\nlayers:\n  - Rescaling: {scale: 0.00392156862745098}\n"
        "  - PatchWhitening: {kernel_size: 2}\n  - GlobalAveragePooling2D\n"
        "  - Dense: {units: 10, activation: softmax}\n"
    )
    (x_train, _), _ = hubel.datasets.load("digits")  # 1,442 training images
    everything = tmp_path / "all"
    assert main(["train", "digits", "--model", str(spec), "--budget", "4s", "--validation-split", "0",
                 "--out", str(everything)]) == 0  # fmt: skip
    result = json.loads((everything / "result.json").read_text())
    assert result["budget"]["steps_per_epoch"] == 46  # ⌈1,442 / 32⌉: nothing held out
    lines = [json.loads(line) for line in (everything / "metrics.jsonl").read_text().splitlines()]
    assert lines and not any("val_accuracy" in line for line in lines)
    assert yaml.safe_load((everything / "config.yaml").read_text())["validation_split"] == 0
    assert "the last epoch was kept (no validation data)" in (everything / "report.html").read_text()
    whitening = hubel.load_model(everything / "model.hubel").get_layer("patch_whitening")
    expected = L.PatchWhitening(2)
    expected.adapt(x_train.reshape(-1, 8, 8, 1) / 255)  # every training image
    assert torch.allclose(whitening.kernel, expected.kernel, atol=1e-5)

    quarter = tmp_path / "quarter"
    assert main(["train", "digits", "--model", str(spec), "--epochs", "1", "--validation-split", "0.25",
                 "--out", str(quarter)]) == 0  # fmt: skip
    resumed = ["train", "digits", "--model", str(spec), "--epochs", "2", "--out", str(quarter), "--resume"]
    assert main(resumed) == 0  # with the run's split
    steps = hubel.load_model(quarter / "model.hubel").metadata["history_steps"]["epoch"]
    per_epoch = [sum(epoch < p <= epoch + 1 for p in steps) for epoch in range(2)]
    assert per_epoch == [34, 34]  # ⌈int(1,442 × 0.75) / 32⌉ = ⌈1,081 / 32⌉ in both
    lines = [json.loads(line) for line in (quarter / "metrics.jsonl").read_text().splitlines()]
    assert [("val_accuracy" in line) for line in lines] == [True, True]
    capsys.readouterr()
    assert main(["train", "digits", "--validation-split", "1", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected the validation split to be a fraction from 0" in err


def test_a_folder_trains_on_all_its_images_with_validation_split_0_when_it_has_a_test_folder(tmp_path, capsys):
    folder = tmp_path / "colours"
    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("test", 4)):
        for name, colour in (("blue", (20, 20, 220)), ("red", (220, 20, 20))):
            (folder / split / name).mkdir(parents=True)
            for index in range(count):
                noise = rng.integers(0, 40, (16, 16, 3))
                Image.fromarray((np.array(colour) + noise).clip(0, 255).astype(np.uint8)).save(
                    folder / split / name / f"{index}.png"
                )
    run = tmp_path / "run"
    assert main(["train", str(folder), "--model", "cifar_convnet_gmp", "--image-size", "32,32", "--epochs", "2",
                 "--batch-size", "8", "--validation-split", "0", "--out", str(run)]) == 0  # fmt: skip
    assert json.loads((run / "result.json").read_text())["measured_on"] == "test"
    steps = hubel.load_model(run / "model.hubel").metadata["history_steps"]["epoch"]
    assert sum(0 < p <= 1 for p in steps) == 3  # all 24 training images, in batches of 8
    capsys.readouterr()
    (folder / "test").rename(folder / "elsewhere")
    assert main(["train", str(folder), "--validation-split", "0", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no test/ folder" in err and "keep a validation split above 0" in err
    (folder / "val").mkdir()
    assert main(["train", str(folder), "--validation-split", "0.3", "--out", str(tmp_path / "c")]) == 2
    assert "has a val/ folder, which is its validation data" in capsys.readouterr().err


def test_a_budget_plans_the_long_run_networks_in_turn_and_keeps_the_first_it_can_train_long_enough(
    tmp_path, capsys, monkeypatch
):
    # on CIFAR-10, where ten minutes buy airbench_small 2 epochs, airbench_tiny's 7.5 reached 89.5% (87.6-88.1%)
    from dataclasses import replace

    from hubel import runs
    from hubel.models.zoo import ZOO

    entry = ZOO.get("fast_resnet_small")
    monkeypatch.setitem(
        ZOO._entries, "fast_resnet_small", replace(entry, recipe=replace(entry.recipe, short_run_batch_size=64))
    )
    monkeypatch.setattr(runs.training, "_LONG_RUN_MODELS", {"digits": ("fast_resnet", "fast_resnet_small")})
    monkeypatch.setattr(runs.training, "_LONG_RUN_FROM_EPOCHS", 10_000)  # more than 5 s buys either
    timed = []  # inference timings: none for the network dropped, three for the one kept
    seconds_per_example = runs.budget._seconds_per_example
    monkeypatch.setattr(runs.budget, "_seconds_per_example", lambda *a: timed.append(a) or seconds_per_example(*a))
    run = runs.train("digits", budget=5, out=tmp_path / "second").directory
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert (config["model"], config["batch_size"]) == ("fast_resnet_small", 64) and len(timed) == 3
    line = re.search(r"Model: fast_resnet_small at batch 64 \((.*)\)\.\n", capsys.readouterr().out).group(1)
    first, second = line.split(". ")
    assert re.fullmatch(r"fast_resnet takes 10000 epochs or more; the budget would buy it at most \d+\.\d", first)
    assert re.fullmatch(
        r"fast_resnet_small takes 10000 epochs or more at batch 128; the budget would buy it \d+\.\d", second
    )
    monkeypatch.setitem(ZOO._entries, "fast_resnet_small", entry)  # no short-run batch: past both, the default
    run = runs.train("digits", budget=5, out=tmp_path / "default").directory
    assert yaml.safe_load((run / "config.yaml").read_text())["model"] == "mnist_one_conv"
    out = capsys.readouterr().out
    assert "Model: mnist_one_conv (fast_resnet takes 10000 epochs or more; the budget would buy it at most " in out
    assert ". fast_resnet_small takes 10000 epochs or more; the budget would buy it at most " in out
