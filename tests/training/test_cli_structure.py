"""The `mist` command line: its command modules never import each other (only the shared
`training.cli.arguments`); --version and --help answer."""

import ast
from importlib.metadata import version
from pathlib import Path

from training.cli import SUBCOMMANDS, main

CLI_FOLDER = Path(__file__).resolve().parents[2] / "training" / "cli"
SHARED_MODULES = {"training.cli.arguments", ".arguments"}  # command-line code every command uses


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add(("." * node.level) + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_command_module_imports_another():
    command_modules = [CLI_FOLDER / f"{module}.py" for module, _ in SUBCOMMANDS.values()]
    assert all(path.exists() for path in command_modules)
    for path in command_modules:
        imports = imported_modules(path)
        offending = {
            name
            for name in imports
            if (name.startswith("training.cli") or name.startswith(".")) and name not in SHARED_MODULES
        }
        assert not offending, f"{path.name} imports {offending}"


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mist {version('mist-videoqa')}"
    assert main(["--help"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in SUBCOMMANDS)
    assert main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err
