from typer.testing import CliRunner

from miaflow.cli import app


def test_index_command_reports_indexed_then_reused(corpus_dir, real_embedder, tmp_path):
    runner = CliRunner()
    index_dir = tmp_path / "idx"
    first = runner.invoke(app, ["index", str(corpus_dir), "--index-dir", str(index_dir)])
    assert first.exit_code == 0, first.output
    assert "Documents indexed: 6" in first.output and "removed: 0" in first.output and "Time:" in first.output
    (corpus_dir / "cooking.txt").unlink()
    second = runner.invoke(app, ["index", str(corpus_dir), "--index-dir", str(index_dir), "-q", "volcano lava"])
    assert second.exit_code == 0, second.output
    assert "Documents indexed: 0" in second.output and "reused: 5" in second.output and "removed: 1" in second.output
    assert "[1] science/volcanoes.txt" in second.output


def test_index_command_fails_clearly_on_missing_corpus(tmp_path):
    result = CliRunner().invoke(app, ["index", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "Corpus not found" in result.output
