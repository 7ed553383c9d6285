"""Every option of every command has help text, is shown as `--a-b` and accepted as `--a_b` too; `mist
train --help` is short (MIST's options and the most used TrainingArguments), `--help-all` lists them all."""

import dataclasses
import importlib
import json

import pytest
import transformers

from training.cli import main as mist
from training.cli.arguments import MistArgumentParser, parse_with_preset
from training.train import TrainOptions


class Captured(Exception):
    pass


def parser_of(command: str, argv: list[str], monkeypatch) -> MistArgumentParser:
    """The parser `mist COMMAND` builds, caught when it starts parsing."""

    def capture(self, args=None, namespace=None):
        raise Captured(self)

    monkeypatch.setattr(MistArgumentParser, "parse_known_args", capture)
    module = importlib.import_module(f"training.cli.{command}")
    with pytest.raises(Captured) as captured:
        module.main(argv)
    monkeypatch.undo()
    return captured.value.args[0]


COMMANDS = {
    # command: a command line with every multi-word option spelled with underscores
    "evaluate": ["--model", "m", "--dataset", "d", "--features", "f", "--output_dir", "o", "--batch_size", "3",
                 "--num_workers", "2", "--group_by", "x", "--features_split", "s", "--clip_pretrained", "none",
                 "--zero_video", "--no_progress"],
    "predict": ["--model", "m", "--question", "q", "--video", "v", "--video_id", "i", "--question_clip_embedding", "e",
                "--clip_pretrained", "none", "--top_k", "3", "--no_progress"],
    "extract_features": ["videos", "--output_dir", "o", "--work_dir", "w", "--clip_model", "c",
                         "--clip_pretrained", "p", "--num_frames", "8", "--grid_size", "2", "--crop_size", "16",
                         "--batch_size", "2", "--clip_batch_size", "9", "--decode_workers", "1",
                         "--questions_output", "q", "--question_column", "text", "--keep_work_dir", "--no_progress"],
    "prepare_dataset": ["--format", "star", "a.json", "--output_dir", "o"],
    "demo": ["--output_dir", "o", "--train_videos", "5", "--test_videos", "3", "--config_overrides", "x=1",
             "--task_overrides", "y=2", "--skip_baseline"],
}  # fmt: skip


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_has_help_and_one_spelling_in_the_help(command, monkeypatch):
    parser = parser_of(command, ["--help"], monkeypatch)
    options = [action for action in parser._actions if action.option_strings and action.dest != "help"]
    assert any(action.dest == "debug" for action in options)
    for action in options:
        assert action.help and len(action.help) > 10, f"{command} {action.option_strings} has no help"
        assert all("_" not in option for option in action.option_strings), action.option_strings


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_underscore_spellings_are_accepted(command, monkeypatch):
    parser = parser_of(command, ["--help"], monkeypatch)
    args = parser.parse_args(COMMANDS[command])
    given = [arg for arg in COMMANDS[command] if arg.startswith("--")]
    for flag in given:
        dest = parser._option_string_actions[flag.replace("_", "-")].dest
        assert getattr(args, dest) not in (None, False), flag


def test_train_help_is_short_and_help_all_is_complete(capsys):
    assert mist(["train", "--help"]) == 0
    short = capsys.readouterr().out
    assert len(short.splitlines()) < 110
    flags = ("--dataset", "--features", "--preset", "--text-encoder", "--overwrite-output-dir", "--output-dir",
             "--resume-from-checkpoint", "--max-steps", "--learning-rate", "--save-strategy", "--debug")  # fmt: skip
    for flag in flags:
        assert f"\n  {flag} " in short or f"\n  {flag}\n" in short, flag
    assert "'minilm' = the offline all-MiniLM-L6-v2" in " ".join(short.split())
    assert "--help-all" in short and "_" not in "".join(
        line.split()[0] for line in short.splitlines() if line.startswith("  --")
    )
    preset_help = short[short.index("  --preset") : short.index("  --text-encoder")]
    assert preset_help.count("default") == 1

    assert mist(["train", "--help-all"]) == 0
    everything = capsys.readouterr().out
    assert len(everything.splitlines()) > 3 * len(short.splitlines()) and "--lr_scheduler_type" in everything


def test_train_accepts_both_spellings():
    options, args, _ = parse_with_preset(
        ["--preset", "tiny", "--output-dir", "o", "--max-steps", "3", "--learning_rate", "0.5",
         "--config-overrides", "hidden_size=64", "--eval_split", "none", "--overwrite-output-dir"],
        TrainOptions,
    )  # fmt: skip
    assert (args.output_dir, args.max_steps, args.learning_rate) == ("o", 3, 0.5)
    assert options.config_overrides == "hidden_size=64" and options.eval_split is None and options.overwrite_output_dir


def test_unknown_options_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exited:
        mist(["evaluate", "--model", "m", "--dataset", "d", "--features", "f", "--batch-sise", "3"])
    assert exited.value.code == 2 and "unrecognized arguments: --batch-sise" in capsys.readouterr().err


# ----- --help and usage errors answer without importing torch --------------------------------------------

USAGE_ERRORS = {
    # command: a command line refused while parsing (an unknown option, a bad choice or number, a missing option)
    "extract-features": ["videos", "--output-dir", "o", "--clip-dtype", "half"],
    "prepare-dataset": ["a.json", "--output-dir", "o", "--format", "bogus"],
    "train": ["--output-dir", "o", "--save-strategy", "bogus"],
    "evaluate": ["--model", "m", "--dataset", "d", "--features", "f", "--batch-sise", "3"],
    "predict": ["--model", "m"],
    "demo": ["--epochs", "many"],
    "app": ["--port", "http"],
}


def test_help_and_usage_errors_of_every_command_load_no_torch(monkeypatch, tmp_path):
    from tests.helpers import REPO_ROOT, run_python
    from training.cli import SUBCOMMANDS
    from training.cli.arguments import help_data

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    help_data()  # where help_data.json is for another transformers version: builds and caches it, as a first run

    assert set(USAGE_ERRORS) == set(SUBCOMMANDS)
    runs = [[command, "--help"] for command in SUBCOMMANDS] + [["demo", "--task", "patches", "--help"]]
    runs += [["train", "--help-all"]] + [[command, *argv] for command, argv in USAGE_ERRORS.items()]
    script = (  # one process: torch, once loaded by any run, stays in sys.modules for the runs after it
        "import contextlib, io, json, sys\n"
        "from training.cli import main\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()) as err:\n"
        "        try:\n"
        "            code = main(argv)\n"
        "        except SystemExit as exited:\n"
        "            code = exited.code\n"
        "    print(json.dumps([code, 'torch' in sys.modules, out.getvalue(), err.getvalue()]))\n"
    )
    result = run_python(["-c", script, json.dumps(runs)], cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    for argv, line in zip(runs, result.stdout.splitlines(), strict=True):
        code, torch_loaded, out, err = json.loads(line)
        assert not torch_loaded, f"mist {' '.join(argv)} imported torch"
        if argv[-1].startswith("--help"):
            assert code == 0 and out.startswith(f"usage: mist {argv[0]}"), (argv, err)
        else:
            assert code == 2 and err.splitlines()[-1].startswith(f"mist {argv[0]}"), (argv, err)


def test_stored_help_data_is_the_live_one_for_the_installed_transformers():
    from training.cli.arguments import HELP_DATA_FILE, help_data, live_help_data

    stored_for = json.loads(HELP_DATA_FILE.read_text())["transformers"]
    if stored_for != transformers.__version__:
        pytest.skip(
            f"training/cli/help_data.json was made for transformers {stored_for}, {transformers.__version__} is "
            "installed: `make help-data` updates it (until then the first --help builds it live and caches it)"
        )
    live = live_help_data()
    assert json.loads(HELP_DATA_FILE.read_text()) == live, "run `make help-data` and commit training/cli/help_data.json"
    assert live["transformers"] == transformers.__version__
    assert [spec["dest"] for spec in live["train_options"]] == [item.name for item in dataclasses.fields(TrainOptions)]
    assert help_data() == live


def test_help_data_of_another_transformers_version_is_built_live(monkeypatch, tmp_path):
    from training.cli import arguments

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    live = arguments.live_help_data()
    stale = {**live, "transformers": "4.0.0", "clip": {**live["clip"], "batch_size": 3}}
    monkeypatch.setattr(arguments, "HELP_DATA_FILE", tmp_path / "help_data.json")
    arguments.HELP_DATA_FILE.write_text(json.dumps(stale))
    assert arguments.help_data() == live  # the live values, not the stale copy
    arguments.write_help_data()
    assert json.loads(arguments.HELP_DATA_FILE.read_text()) == live


def test_help_data_built_live_is_cached_for_the_next_run(monkeypatch, tmp_path):
    from training.cli import arguments

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(arguments, "HELP_DATA_FILE", tmp_path / "help_data.json")  # no stored copy
    built = []
    live = arguments.live_help_data()
    monkeypatch.setattr(arguments, "live_help_data", lambda: built.append(1) or live)
    assert arguments.help_data() == live and arguments.help_data() == live
    assert built == [1]  # the second run read the cached copy
    cached = arguments.cached_help_data_file(transformers.__version__)
    assert cached.parent == tmp_path / "cache" / "mist" and json.loads(cached.read_text()) == live
