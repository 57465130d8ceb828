"""The documentation site builds strictly (a broken link, a page left out of the navigation or
a docstring that fails to render fails the suite, and so CI), and the built site works as a
reader meets it: opened from disk, with search, typeset formulas, every figure shown."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# Sphinx roles show as literal text in mkdocstrings' pages (":meth:" then the name).
SPHINX_ROLE = re.compile(r":(?:py:)?(?:meth|class|func|attr|mod|data|obj|exc):`")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def _pages(site: Path) -> list[Path]:
    """The built pages (404.html is served from the site's root, with absolute links)."""
    pages = site.rglob("*.html")
    return [p for p in pages if "assets" not in p.relative_to(site).parts and p.name != "404.html"]


def _local_targets(page: Path, attribute: str) -> list[tuple[str, Path]]:
    """``(reference, resolved path)`` of each local ``attribute="..."`` in a page."""
    targets = []
    for ref in re.findall(rf'{attribute}="([^"]*)"', page.read_text(encoding="utf-8")):
        parts = urlsplit(ref)
        if parts.scheme or parts.netloc or not parts.path:  # external, or "#anchor" only
            continue
        targets.append((ref, (page.parent / unquote(parts.path)).resolve()))
    return targets


def test_docs_site_builds_strictly(site):
    assert (site / "index.html").is_file()
    assert (site / "reliability.html").is_file()
    # The API reference rendered the model's docstring.
    api = (site / "api" / "model.html").read_text(encoding="utf-8")
    assert "MultiTaskModule" in api


def test_every_link_opens_a_page_from_disk(site):
    # site/index.html opened as a file: a link to a folder would show a directory listing.
    html = (site / "index.html").read_text(encoding="utf-8")
    links = re.findall(r"<a [^>]*md-nav__link[^>]*>", html)
    nav = [re.search(r'href="([^"]+)"', link).group(1) for link in links]
    nav = [ref for ref in nav if not ref.startswith("#")]
    assert len(nav) > 30 and all(ref.endswith(".html") for ref in nav), nav
    broken = [
        f"{page.relative_to(site)}: {ref}"
        for page in _pages(site)
        for ref, target in _local_targets(page, "href")
        if not target.is_file()
    ]
    assert not broken, broken[:10]


def test_search_and_scripts_work_without_a_server_or_network(site):
    # The offline plugin inlines the index, which a page opened from disk can load as a
    # script; the Web Worker shim it needs is the shipped copy, not a CDN's.
    index = (site / "search" / "search_index.js").read_text(encoding="utf-8")
    assert index.startswith("var __index = ") and '"location":"reliability.html' in index
    for page in (site / "index.html", site / "experiments" / "table1" / "table.html"):
        html = page.read_text(encoding="utf-8")
        scripts = re.findall(r'<script[^>]* src="([^"]+)"', html)
        assert not [s for s in scripts if urlsplit(s).scheme], scripts
        assert any(s.endswith("vendor/iframe-worker/shim.js") for s in scripts)
        assert all(target.is_file() for _, target in _local_targets(page, "src"))


def test_formulas_are_typeset_by_the_shipped_katex(site):
    paper = (site / "paper.html").read_text(encoding="utf-8")
    formulas = re.findall(r'class="arithmatex">(.*?)</', paper, flags=re.S)
    assert len(formulas) >= 5 and any(f.startswith("\\[") for f in formulas)
    assert 'src="vendor/katex/katex.min.js"' in paper and 'src="javascripts/katex.js"' in paper
    # Every font the stylesheet asks for first (woff2) is shipped beside it.
    css = (site / "vendor" / "katex" / "katex.min.css").read_text(encoding="utf-8")
    fonts = set(re.findall(r"url\((fonts/[^)]+\.woff2)\)", css))
    assert len(fonts) == 20
    assert all((site / "vendor" / "katex" / font).is_file() for font in fonts)
    # No formula is left as a code span on the pages that explain the loss.
    for name in ("paper.html", "weighting.html", "tasks.html"):
        code = re.findall(r"<code>([^<]*)</code>", (site / name).read_text(encoding="utf-8"))
        assert not [c for c in code if re.search(r"\^\{|\\frac|\\sigma|exp\(-s", c)], name


def test_api_pages_show_no_sphinx_roles(site):
    pages = sorted((site / "api").glob("*.html"))
    assert len(pages) >= 10
    shown = [
        p.name for p in pages if re.search(r":(meth|class|func|attr|mod|data):<", p.read_text())
    ]
    assert not shown
    # In the sources too, so a new docstring does not bring them back.
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "mtlscene").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if SPHINX_ROLE.search(line)
    ]
    assert not found, found[:10]


def test_every_figure_in_the_docs_is_shown_on_a_page(site):
    shown = {target for page in _pages(site) for _, target in _local_targets(page, "src")}
    figures = {p.resolve() for p in site.rglob("*.png") if "assets" not in p.parts}
    assert not sorted(str(p.relative_to(site)) for p in figures - shown)
    table1 = site / "experiments" / "table1" / "table.html"
    names = {target.name for _, target in _local_targets(table1, "src") if target.suffix == ".png"}
    assert names == {
        "tradeoff_semantic_instance.png",
        "tradeoff_semantic_depth.png",
        "tradeoff_instance_depth.png",
        "sigma_evolution.png",
    }


def _section(markdown: str, heading: str) -> str:
    start = markdown.index(f"\n## {heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end >= 0 else None]


def _boundary_by_hand(labels: list[list[int]]) -> list[list[float]]:
    """1.0 where the 3x3 neighbourhood (inside the image) holds more than one label."""
    rows, cols = len(labels), len(labels[0])
    return [
        [
            float(
                len(
                    {
                        labels[rr][cc]
                        for rr in range(max(r - 1, 0), min(r + 2, rows))
                        for cc in range(max(c - 1, 0), min(c + 2, cols))
                    }
                )
                > 1
            )
            for c in range(cols)
        ]
        for r in range(rows)
    ]


def test_the_adding_a_task_example_runs_as_written(tmp_path, monkeypatch):
    import math

    import torch
    import yaml

    from mtlscene.tasks import get_task, import_task_modules, registry

    text = (DOCS / "tasks.md").read_text(encoding="utf-8")
    # Right after the introduction, not after the pages on per-pixel uncertainty.
    assert text.index("\n## Adding a task\n") < text.index("\n## Per-pixel uncertainty\n")
    section = _section(text, "Adding a task")
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    config = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, flags=re.S).group(1))
    assert "boundary" in config["model"]["tasks"]
    # Imported the way the config's model.task_modules imports it, into a throwaway registry.
    (tmp_path / "my_tasks.py").write_text(code, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.delitem(sys.modules, "my_tasks", raising=False)
    try:
        import_task_modules(config["model"]["task_modules"])
        head = get_task("boundary")(in_channels=4, hidden_channels=8, num_layers=1)
    finally:
        sys.modules.pop("my_tasks", None)

    # Two classes split between columns 2 and 3; the top-left pixel is void (255).
    labels = [[0, 0, 0, 1, 1, 1] for _ in range(4)]
    labels[0][0] = 255
    target = _boundary_by_hand(labels)
    valid = [(r, c) for r in range(4) for c in range(6) if labels[r][c] != 255]
    batch = {"semantic": torch.tensor([labels])}
    logits = [[2.0 if c in (2, 3) else -2.0 for c in range(6)] for _ in range(4)]
    prediction = torch.tensor([[logits]])
    bce = [math.log1p(math.exp(logits[r][c])) - logits[r][c] * target[r][c] for r, c in valid]
    assert float(head.loss(prediction, batch)) == pytest.approx(sum(bce) / len(bce), rel=1e-6)
    # Called wrongly: the three valid pixels next to the void one (a boundary, logit -2).
    metric = head.make_metrics()
    head.update_metrics(metric, prediction, batch)
    assert float(metric.compute()) == pytest.approx(3 / 23)
    # The head trains: its output has the image's size and the loss reaches its decoder.
    output = head(torch.randn(1, 4, 2, 3), (4, 6))
    assert output.shape == (1, 1, 4, 6)
    head.loss(output, batch).backward()
    assert all(p.grad is not None for p in head.decoder.parameters())
    # A batch without a labelled pixel gives a zero loss, not NaN.
    void = {"semantic": torch.full((1, 4, 6), 255)}
    assert float(head.loss(prediction, void)) == 0.0


def test_the_experiments_overview_is_short_and_leads_to_each_topic(site):
    overview = (DOCS / "experiments" / "index.md").read_text(encoding="utf-8")
    assert len(overview.split()) < 1000  # it was a 5,700-word page
    topics = [
        "running.md",
        "reading.md",
        "learned_vs_fixed.md",
        "weight_sweeps.md",
        "fixed_weight_search.md",
        "uncertainty_experiment.md",
    ]
    nav = (site / "experiments" / "index.html").read_text(encoding="utf-8")
    for topic in topics:
        assert f"]({topic})" in overview, topic
        assert f'href="{topic.replace(".md", ".html")}"' in nav, topic
