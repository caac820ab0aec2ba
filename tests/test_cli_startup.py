"""The CLI answers at once: --help, info of a .vqa file and usage errors import no torch.

Measured by the modules loaded, not by time (which a busy test machine makes meaningless).
"""

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
HEAVY = ("torch", "librosa", "matplotlib", "safetensors", "einops")

RUN = """
import json, sys
from vqaudio_cli.main import app
try:
    app(sys.argv[1:], prog_name="vqaudio")
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "heavy": [m for m in HEAVY if m in sys.modules]}))
"""


def _run(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{RUN}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args, code",
    [
        (["--help"], 0),
        (["--version"], 0),
        (["compress", "--help"], 0),
        (["info", str(GOLDEN / "golden-v3-entropy.vqa")], 0),
        (["info", str(GOLDEN / "golden-v1-packed.vqa"), "--json"], 0),
        (["info", str(GOLDEN / "golden-v4-context.vqa"), "--json"], 0),  # binary header
        (["compress"], 2),  # usage error: no input
        (["compress", "x.wav", "--bitrate", "0"], 2),
        (["eval", "--no-such-option"], 2),
    ],
)
def test_quick_commands_import_no_torch(args, code):
    result = _run(*args)
    assert result == {"code": code, "heavy": []}


def test_the_package_imports_no_torch_until_a_model_is_used():
    check = (
        "import sys, vqaudio\n"
        "from vqaudio.vqa.container import VqaReader\n"
        "assert 'torch' not in sys.modules\n"
        "assert callable(vqaudio.compress) and vqaudio.Codec.__name__ == 'Codec'\n"
        "import vqaudio.vqa.compress\n"
        "assert callable(vqaudio.compress), 'the submodule must not hide the function'\n"
        "assert 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True, timeout=120)


@pytest.mark.parametrize(
    "command, shown",
    [
        (
            "generate",
            ("[default: 0.8,0.98]", "[default: on]", "[default: shipped]", "[default: 16,"),
        ),
        ("compress", ("[default: shipped model]", "[default: IN.vqa]")),
        ("eval", ("[default: the shipped one]",)),
    ],
)
def test_help_shows_the_defaults_written_in_brackets(command, shown):
    """Rich reads [...] in a help text as markup and drops it unless escaped."""
    from typer.testing import CliRunner

    from vqaudio_cli.main import app

    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    for text in shown:
        assert text in result.output, f"{command} --help lost {text!r}"


def test_generate_help_states_the_library_defaults():
    """The CLI keeps torch out of --help, so its defaults are written out in the help text: they
    must be sampling.SHIPPED's, which the library's generate applies too."""
    from typer.testing import CliRunner

    from vqaudio.generation import generate
    from vqaudio.prior.sampling import SHIPPED
    from vqaudio_cli.main import app

    result = CliRunner().invoke(app, ["generate", "--help"], env={"COLUMNS": "400"})

    def option_help(name):  # the option's row of the table (one line at 400 columns)
        rows = [r.strip("│ ") for r in result.output.splitlines()]
        return next(r for r in rows if r.startswith(f"--{name} "))

    top_p = ",".join(f"{p:g}" for p in SHIPPED.top_p)
    assert f"[default: {top_p}]" in option_help("top-p")
    assert f"[default: {SHIPPED.contrast:g}]" in option_help("contrast")
    assert f"[default: {SHIPPED.hold_cap:g}]" in option_help("hold-cap")
    assert f"[default: {SHIPPED.temperature:g}]" in option_help("temperature")
    assert "[default: on]" in option_help("exact-hold") and SHIPPED.exact_hold
    assert "[default: 0]" in option_help("top-k") and SHIPPED.top_k is None
    assert inspect.signature(generate).parameters["sampling"].default is SHIPPED
