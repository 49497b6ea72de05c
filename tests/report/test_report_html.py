"""The HTML report of a run folder: sections, plots, sign convention, robustness."""

from __future__ import annotations

import base64
import json
import math
import re
import sys

import pytest
from report_fake_run import NAMES, make_fake_run, summary

from mtlkit.report import load_run, render_report, write_report

SECTIONS = ["headline", "auxiliary", "training", "curves", "comparison", "confusion",
            "classification-reports", "weights", "aggregator", "conflicts", "sharing",
            "penalties", "sampling", "other", "config"]


def section(html: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', html, re.S)
    assert m, f"section {sid!r} missing"
    return m.group(1)


def images(html: str) -> list[str]:
    return re.findall(r"<img [^>]*>", html)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    run = make_fake_run(tmp_path_factory.mktemp("full"))
    path = write_report(run)
    return run, path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """No baselines, no conflicts, no learned sharing, no sampling."""
    run = make_fake_run(tmp_path_factory.mktemp("bare"), baselines=False, conflicts=False,
                        sharing=False, sampling=False)
    return run, write_report(run).read_text(encoding="utf-8")


def test_writes_report_html_in_the_run_folder(full):
    run, html = full
    assert (run / "report.html").exists()
    assert html.startswith("<!DOCTYPE html>")
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]  # atomic write cleaned up


def test_every_expected_section_is_present_and_listed_in_the_navigation(full):
    _, html = full
    for sid in SECTIONS:
        section(html, sid)
        assert f'href="#{sid}"' in html
    assert "could not be" not in html  # no plot or section failed


def test_plots_are_embedded_png_images(full):
    _, html = full
    imgs = images(html)
    # lr+score, loss, metric, bars, 2 confusion, weights, aggregator, heatmap, conflict curve,
    # norm ratio, gates, gates over epochs, cross-stitch, discriminator, scalars, penalties,
    # task steps, counts, probabilities
    assert len(imgs) >= 20
    for tag in imgs:
        src = re.search(r'src="data:image/png;base64,([^"]+)"', tag)
        assert src, tag[:80]
        assert base64.b64decode(src.group(1))[:8] == b"\x89PNG\r\n\x1a\n"
        assert re.search(r'alt="[^"]+"', tag)


def test_plots_sit_in_their_sections(full):
    _, html = full
    expect = {"curves": 2, "comparison": 1, "confusion": 2, "weights": 1, "aggregator": 1,
              "conflicts": 3, "sharing": 5, "penalties": 1, "sampling": 3}
    for sid, n in expect.items():
        assert len(images(section(html, sid))) == n, sid


def test_self_contained_no_network_no_scripts(full):
    _, html = full
    assert "http://" not in html and "https://" not in html
    for attr, value in re.findall(r'\b(src|href)\s*=\s*"([^"]*)"', html):
        assert value.startswith(("data:", "#")), (attr, value[:60])
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert "@import" not in html and "url(" not in html


def test_headline_states_delta_m_and_its_sign_convention(full):
    _, html = full
    head = section(html, "headline")
    assert "-0.3 %" in head
    assert "negative: the multi-task model is better on average" in head
    assert "Negative Δm means the multi-task model is better" in head
    assert "(M<sub>mtl</sub> − M<sub>stl</sub>) / M<sub>stl</sub> × 100" in head
    # per-task terms with their sign colour
    assert re.search(r'class="num dm good">-0\.94 %', head)
    assert re.search(r'class="num dm bad">\+0\.34 %', head)


def test_better_model_is_highlighted_with_the_metric_direction(full):
    _, html = full
    head, aux = section(html, "headline"), section(html, "auxiliary")
    assert '<td class="num better">0.912</td><td class="num">0.899</td>' in head  # acc ↑, MTL
    assert '<td class="num">0.861</td><td class="num better">0.872</td>' in head  # acc ↑, STL
    assert '<td class="num better">0.69</td>' in aux  # mae ↓: lower single-task wins
    assert '<td class="num better">0.93</td><td class="num">0.95</td>' in aux  # rmse ↓: MTL
    assert 'mae <span class="arrow" title="lower is better">↓</span>' in aux
    assert 'accuracy <span class="arrow" title="higher is better">↑</span>' in head


def test_auxiliary_tasks_have_their_own_section_and_are_out_of_the_headline(full):
    _, html = full
    head, aux = section(html, "headline"), section(html, "auxiliary")
    metrics = re.search(r'<table class="metrics">.*?</table>', head, re.S).group(0)
    assert ">size<" not in metrics and ">digit<" in metrics and ">parity<" in metrics
    assert ">size<" in aux and "excluded from the headline Δm" in aux
    assert "-0.43 %" in aux  # Δm over all tasks, for information


def test_costs_parameters_and_inference(full):
    _, html = full
    head = section(html, "headline")
    assert "61,234" in head and "120,300" in head and "3 models" in head
    assert "inference time (ms per 1000 samples)" in head
    assert "0.51× (49 % fewer)" in head


def test_non_finite_values_are_shown_as_na(full):
    _, html = full
    head = section(html, "headline")
    # parity roc_auc of the MTL model is NaN (null in summary.json): n/a, and no Δ
    assert re.search(r'roc_auc .*?<td class="num na">n/a</td><td class="num">0\.93</td>'
                     r'<td class="num na">n/a</td>', head)
    text = re.sub(r"<[^>]+>", " ", re.sub(r'src="[^"]+"', "", html))
    assert not re.search(r"\b(nan|NaN|inf|Infinity|None|null)\b", text.replace("n/a", ""))


def test_nan_and_inf_passed_in_python_become_na():
    s = summary()
    s["mtl"]["test"]["digit"]["accuracy"] = float("nan")
    s["delta_m"] = float("inf")
    s["mtl"]["params"] = None
    del s["confusion"]
    html = render_report(s)
    head = section(html, "headline")
    assert '<div class="dm-value">n/a</div>' in head
    assert re.search(r'accuracy .*?<td class="num na">n/a</td>', head)
    assert ">nan<" not in html and ">inf<" not in html


def test_learned_sharing_known_and_unknown_keys(full):
    _, html = full
    sh = section(html, "sharing")
    for alt in ("gate weights", "cross-stitch units", "discriminator accuracy", "sharing scalars"):
        assert f'alt="{alt}"' in sh
    # AdaShare policy as a task × block table
    assert "block 4" in sh and sh.count('class="policy select"') == 7
    assert sh.count('class="policy skip"') == 5
    # an unknown key is shown as a JSON table, not dropped
    assert "mystery" in sh and "unknown key" in sh


def test_weights_sampling_conflicts_content(full):
    _, html = full
    assert "dwa" in section(html, "weights")
    assert "pcgrad" in section(html, "aggregator")
    conf = section(html, "conflicts")
    assert "conflicting pairs 0.667" in conf
    samp = section(html, "sampling")
    assert "temperature" in samp and "Last epoch (8)" in samp
    assert "<td>size</td>" in samp


def test_confusion_and_classification_report(full):
    _, html = full
    conf = section(html, "confusion")
    assert 'alt="confusion matrix digit"' in conf and 'alt="confusion matrix parity"' in conf
    rep = section(html, "classification-reports")
    assert "macro avg" in rep and "weighted avg" in rep and "precision" in rep


def test_config_in_a_collapsible_block(full):
    _, html = full
    cfg = section(html, "config")
    assert "<details>" in cfg and "temperature: 2.0" in cfg
    assert "# mtlkit train examples/fake.yaml" in cfg


def test_nonfinite_steps_are_flagged(full):
    _, html = full
    assert "2 steps were skipped" in section(html, "training")


def test_without_baselines_conflicts_sharing_sampling(bare):
    _, html = bare
    head = section(html, "headline")
    assert "baselines were not trained" in head
    assert "single-task" not in re.search(r'<table class="metrics">.*?</table>', head, re.S).group(0)
    assert "dm-box" not in head
    for sid in ("conflicts", "sharing", "sampling", "comparison"):  # comparison: nothing to compare
        assert f'<section id="{sid}">' not in html
    for sid in ("curves", "confusion", "config"):
        section(html, sid)
    assert "could not be" not in html
    # the MTL-only confusion matrices and curves are still drawn
    assert len(images(section(html, "confusion"))) == 2
    assert len(images(section(html, "curves"))) == 2


def test_equal_weights_are_a_note_not_a_plot(tmp_path):
    recs = [{"epoch": e, "train_loss": {"a": 1.0 / e, "b": 2.0 / e}, "weights": {"a": 1.0, "b": 1.0},
             "steps": 10, "task_steps": {"a": 10, "b": 10}, "lr": 0.01, "time_s": 0.1,
             "nonfinite_skipped": 0} for e in (1, 2, 3)]
    html = render_report({"name": "eq", "tasks": [{"name": "a", "kind": "binary"},
                                                  {"name": "b", "kind": "regression"}]}, recs)
    w = section(html, "weights")
    assert "same loss weight" in w and "<img" not in w
    assert '<section id="sampling">' not in html  # every step trained every task
    assert '<section id="aggregator">' not in html


def test_empty_and_minimal_run_folders_render(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    html = write_report(empty).read_text(encoding="utf-8")
    assert "summary.json is missing" in html and "metrics.jsonl is missing" in html
    minimal = tmp_path / "minimal"
    minimal.mkdir()
    (minimal / "summary.json").write_text(json.dumps({"tasks": [{"name": "y", "kind": "regression"}],
                                                      "mtl": {"test": {"y": {"mae": 1.5}}}}))
    html = write_report(minimal).read_text(encoding="utf-8")
    assert "minimal" in html and "1.5" in section(html, "headline")


def test_truncated_metrics_line_is_skipped_with_a_warning(tmp_path):
    run = make_fake_run(tmp_path, sharing=False)
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"epoch": 9, "train_loss": {"dig')
    data = load_run(run)
    assert len(data.records) == 8 and data.records[-1]["epoch"] == 8
    html = render_report({"name": "t"}, warnings=data.warnings)
    assert "metrics.jsonl line 9 is not valid JSON" in html


def test_malformed_optional_parts_do_not_break_the_report():
    recs = [{"epoch": 1, "train_loss": {"a": 1.0}, "weights": {"a": 1.0}, "steps": 1,
             "task_steps": {"a": 1}, "conflicts": {"cosine_matrix": "oops", "mean_cosine": None},
             "sharing": {"gates": [1, 2], "cross_stitch": {"x": "y"}, "policy": 3},
             "sampling": {"probabilities": None}}]
    html = render_report({"tasks": [{"name": "a", "kind": "binary"}], "confusion": {"a": "bad"},
                          "classification_report": {"a": 5}}, recs)
    sh = section(html, "sharing")
    assert "gates" in sh and "cross_stitch" in sh and "policy" in sh  # shown as JSON instead


def test_strings_from_the_run_are_escaped():
    s = summary(baselines=False)
    s["name"] = "<b>bold</b>"
    del s["confusion"]
    html = render_report(s, config_text="name: <script>alert(1)</script>\n")
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "<script>" not in html


def test_rendering_is_deterministic_and_leaves_matplotlib_global_state_alone(bare):
    import matplotlib

    run, html = bare
    had_pyplot = "matplotlib.pyplot" in sys.modules
    backend = matplotlib.rcParams._get_backend_or_none()  # None until a backend is resolved
    keys = [k for k in matplotlib.rcParams if k != "backend"]  # reading it would resolve it
    rc = {k: matplotlib.rcParams[k] for k in keys}
    again = write_report(run).read_text(encoding="utf-8")
    assert again == html  # same run folder -> byte-identical report
    assert matplotlib.rcParams._get_backend_or_none() == backend
    assert {k: matplotlib.rcParams[k] for k in keys} == rc
    if not had_pyplot:
        assert "matplotlib.pyplot" not in sys.modules


def test_task_order_follows_the_summary(full):
    _, html = full
    tasks_table = re.search(r"<h3>Tasks</h3>(.*?)</table>", html, re.S).group(1)
    positions = [tasks_table.index(f"<td>{t}</td>") for t in NAMES]
    assert positions == sorted(positions)
    assert not math.isnan(positions[0])
