import subprocess
import sys

import hubel
from hubel.cli.main import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as stop:
        assert stop.code == 0
    assert capsys.readouterr().out.strip() == f"hubel {hubel.__version__}"


def test_summary_of_a_spec_file(capsys):
    assert main(["summary", "examples/fashion_cnn.yaml"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 243,786" in out and "(None, 26, 26, 64)" in out


def test_summary_of_a_saved_model(tmp_path, capsys):
    from hubel.models.spec import model_from_spec

    path = model_from_spec("examples/cifar_convnet.yaml").save(tmp_path / "cifar.hubel")
    assert main(["summary", str(path)]) == 0
    assert "Total params: 703,594" in capsys.readouterr().out


def test_summary_input_shape_that_does_not_fit_is_one_line_and_exit_2(capsys):
    assert main(["summary", "examples/fashion_cnn.yaml", "--input-shape", "8,8,1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(
        "hubel summary: error: examples/fashion_cnn.yaml: MaxPooling2D 'max_pooling2d_1' cannot take input shape"
    )


def test_console_script_runs_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.hubel"
    bad.write_bytes(b"not a zip")
    result = subprocess.run(
        [sys.executable, "-m", "hubel", "summary", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "not a hubel model file" in result.stderr


def test_the_command_exits_with_mains_code_and_its_collector_skips_the_imports():
    code = (
        "import gc, sys\n"
        "from hubel.cli.main import command\n"
        "sys.argv = ['hubel', 'summary', 'lennet']\n"
        "try:\n"
        "    command()\n"
        "except SystemExit as stop:\n"
        "    print(stop.code, gc.get_freeze_count())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    exit_code, frozen = map(int, result.stdout.split())
    assert exit_code == 2  # main's answer to an unknown model
    assert "Did you mean 'lenet'" in result.stderr
    assert frozen > 100_000  # torch's objects, and the command's, are out of the collector's passes


def test_zoo_lists_the_tutorial_architectures_with_keras_counts(capsys):
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    for name, params in (
        ("fashion_cnn", "243,786"),
        ("cifar_convnet", "703,594"),
        ("lenet", "61,706"),
        ("mlp", "101,770"),
        ("imdb_conv1d", "1,315,937"),  # the IMDB tutorial's count, with its one output unit
    ):
        assert any(line.split()[:1] == [name] and params in line for line in out.splitlines()), name
    assert main(["summary", "cifar_convnet_gmp", "--input-shape", "64,64,3"]) == 0
    assert "Total params: 179,306" in capsys.readouterr().out  # global pooling: the same count at any size
    assert main(["summary", "lennet"]) == 2
    assert "Did you mean 'lenet'" in capsys.readouterr().err


def test_the_cli_starts_without_matplotlib_and_names_every_kernel():
    import importlib

    from hubel.inspect.kernels import list_kernels

    code = (
        "import sys, importlib; importlib.import_module('hubel.cli.main').build_parser(); "
        "print('matplotlib' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"  # inspection loads only when a command needs it
    parser = importlib.import_module("hubel.cli.main").build_parser()
    convolve = parser._subparsers._group_actions[0].choices["convolve"]
    assert all(name in convolve.epilog for name in list_kernels())
