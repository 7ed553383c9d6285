"""How the project builds transformers' common tests from the sdist, and when it skips them."""

import io
import tarfile

import pytest
import transformers

from tests.hf_common.common_tests_build import CACHE, PACKAGE, IndexUnreachable, _download_sdist, _extract, build_common_tests


def write_sdist(path, files: dict[str, str]):
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(f"transformers-9.9.9/{name}")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))


def test_the_common_files_and_stand_ins_are_extracted_with_the_version(tmp_path):
    common = {f"tests/{name}": f"# {name}\n" for name in ("test_modeling_common.py", "test_configuration_common.py")}
    common["tests/test_processing_common.py"] = "# processing\n"
    common["tests/models/bert/test_modeling_bert.py"] = "# not needed\n"
    write_sdist(tmp_path / "transformers-9.9.9.tar.gz", common)
    _extract(tmp_path / "transformers-9.9.9.tar.gz", "9.9.9", tmp_path / PACKAGE)
    package = tmp_path / PACKAGE
    assert (package / "test_processing_common.py").read_text() == "# processing\n"
    assert not (package / "models").exists()
    assert "class ExportTesterMixin" in (package / "exporters" / "test_export.py").read_text()
    assert "class GenerationTesterMixin" in (package / "generation" / "test_utils.py").read_text()
    assert (package / "exporters" / "__init__.py").exists() and (package / "__init__.py").exists()
    assert (package / "TRANSFORMERS_VERSION").read_text() == "9.9.9\n"


def test_an_sdist_without_the_common_tests_is_an_error_naming_them(tmp_path):
    write_sdist(tmp_path / "transformers-9.9.9.tar.gz", {"tests/test_modeling_common.py": "#\n"})
    with pytest.raises(RuntimeError, match="has no test_configuration_common.py, test_processing_common.py; expected"):
        _extract(tmp_path / "transformers-9.9.9.tar.gz", "9.9.9", tmp_path / PACKAGE)


def test_no_reachable_index_is_a_skip_reason_saying_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens on the discard port
    with pytest.raises(IndexUnreachable, match=r"transformers==\S+ sdist and pip could not fetch it .*HF_COMMON_TESTS_SDIST"):
        _download_sdist(transformers.__version__, tmp_path)


def test_the_build_in_the_clone_matches_the_installed_transformers():
    assert build_common_tests() == CACHE
    assert (CACHE / PACKAGE / "TRANSFORMERS_VERSION").read_text().strip() == transformers.__version__
    assert (CACHE / "utils" / "fetch_hub_objects_for_ci.py").exists()
