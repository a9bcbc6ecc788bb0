"""The app in a real browser: Debian's Chromium driven by Playwright (never a downloaded browser). Each tab gets an
upload, its result must show, and every tab is saved as a screenshot (in `$CERVIX_HF_TEST_ARTIFACTS` too when set).

`scripts/test.sh` installs Chromium where it is missing, so this runs in CI; it skips only without /usr/bin/chromium.
"""

import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

from .conftest import INTEL_SAMPLE, SHARED_DATA, launch_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RESULT_TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium; scripts/test.sh does it)",
    ),
]


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.requested_hosts = set()
    page.on("request", lambda request: page.requested_hosts.add(urlparse(request.url).netloc))
    page.goto(url, wait_until="networkidle")
    # The page is built by script after the network settles: wait until its tabs are there (a cold machine is slow).
    page.get_by_role("tab", name="Models").wait_for(timeout=RESULT_TIMEOUT_MS)
    return page


@pytest.fixture(scope="module")
def browser_page(chromium, running_app):
    page = open_page(chromium, running_app.local_url)
    yield page
    page.close()


@pytest.fixture(scope="module")
def untrained_page(chromium, tmp_path_factory):
    """The app as a fresh machine serves it: no trained weights anywhere (tiny untrained models stand in for the
    default ResNet-50 ones) and no examples folder given, so that it finds the sample data's examples itself."""
    from cervix_hf import app
    from cervix_hf.app.models import AppModels

    models = AppModels.from_settings(checkpoints_dir=tmp_path_factory.mktemp("empty"), untrained_size="tiny")
    demo = launch_app(app.build_demo(models))
    page = open_page(chromium, demo.local_url)
    yield page
    page.close()
    demo.close()


@pytest.fixture
def screenshot(browser_page, tmp_path):
    """Saves the page (the trained app's, or the one given) as `<name>.png`, and into `$CERVIX_HF_TEST_ARTIFACTS`."""

    def save(name: str, page=None) -> Path:
        page = page or browser_page
        path = tmp_path / f"{name}.png"
        page.wait_for_timeout(1000)  # let toasts and images finish fading in
        page.screenshot(path=path, full_page=True)
        artifacts = os.environ.get("CERVIX_HF_TEST_ARTIFACTS")
        if artifacts:
            Path(artifacts).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(artifacts) / path.name)
        assert path.stat().st_size > 10_000  # a rendered page, not a blank one
        return path

    return save


def opacity(page, component_id: str) -> float:
    """How opaque a component is drawn (the page's style greys an untrained model's results out)."""
    return float(page.locator(f"#{component_id}").evaluate("element => getComputedStyle(element).opacity"))


def image_source(page, component_id: str) -> str:
    return page.locator(f"#{component_id} img").first.get_attribute("src")


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def upload(page, component_id: str, path: Path) -> None:
    page.locator(f"#{component_id} input[type=file]").set_input_files(path)


def test_page_shows_the_banner_and_fetches_nothing_from_the_network(browser_page, running_app):
    assert browser_page.get_by_text("Research demo, not a diagnosis.").first.is_visible()
    assert [tab.strip() for tab in browser_page.get_by_role("tab").all_inner_texts()] == [
        "Cervix type",
        "Cell detection",
        "Pre/post fusion",
        "Pap cell",
        "Batch",
        "Models",
    ]
    assert browser_page.requested_hosts == {urlparse(running_app.local_url).netloc}


@pytest.mark.parametrize(
    "tab, explanation",
    [
        ("Cervix type", "Type 3: it lies partly or wholly inside the canal"),
        ("Cell detection", "koilocytotic and dyskeratotic cells are abnormal"),
        ("Pre/post fusion", "Positive: the model's estimate that the case is CIN2 or worse"),
    ],
)
def test_each_tab_says_what_its_labels_mean_and_links_the_card(browser_page, tab, explanation):
    open_tab(browser_page, tab)
    browser_page.get_by_text(explanation).wait_for(timeout=RESULT_TIMEOUT_MS)  # shown once the tab has opened
    link = browser_page.locator("a", has_text="model card").locator("visible=true")
    assert link.first.get_attribute("href").startswith("https://huggingface.co/cervix-hf/")


def test_the_batch_tab_predicts_uploaded_photos_into_a_table(browser_page, screenshot):
    open_tab(browser_page, "Batch")
    photos = [INTEL_SAMPLE / "train" / f"Type_{n}" / name for n, name in ((1, "1202.jpg"), (3, "1265.jpg"))]
    browser_page.locator("#batch-files input[type=file]").set_input_files(photos)
    browser_page.get_by_role("button", name="Predict all").click()
    browser_page.get_by_text("2 input(s)").wait_for(timeout=RESULT_TIMEOUT_MS)
    table = browser_page.locator("#batch-table")
    assert "1202.jpg" in table.inner_text() and "1265.jpg" in table.inner_text()
    screenshot("batch")


def test_cervix_type_tab_classifies_an_uploaded_photo(browser_page, screenshot):
    open_tab(browser_page, "Cervix type")
    upload(browser_page, "cervix-photo", INTEL_SAMPLE / "train" / "Type_2" / "1407.jpg")
    browser_page.get_by_text("Most probable:").wait_for(timeout=RESULT_TIMEOUT_MS)
    assert browser_page.get_by_text("Image accepted").locator("visible=true").first.is_visible()
    browser_page.locator("#cervix-grad-cam img").wait_for(timeout=RESULT_TIMEOUT_MS)
    assert browser_page.get_by_text("Grad-CAM for").is_visible()
    assert "Untrained model" not in browser_page.locator("body").inner_text()
    assert opacity(browser_page, "cervix-probabilities") == opacity(browser_page, "cervix-grad-cam") == 1.0
    screenshot("cervix-type")


def test_the_heat_map_opacity_blends_the_grad_cam_again(browser_page):
    open_tab(browser_page, "Cervix type")  # the photo of the test above is removed first: its map is not this one
    browser_page.locator("#cervix-photo").get_by_role("button", name="Remove Image").click()
    browser_page.get_by_text("Upload a photo to classify it.").wait_for(timeout=RESULT_TIMEOUT_MS)
    upload(browser_page, "cervix-photo", INTEL_SAMPLE / "train" / "Type_3" / "1265.jpg")
    browser_page.locator("#cervix-grad-cam img").wait_for(timeout=RESULT_TIMEOUT_MS)
    before = image_source(browser_page, "cervix-grad-cam")
    box = browser_page.locator("#cervix-opacity input[type=number]")
    box.fill("0")
    box.press("Enter")
    browser_page.wait_for_function(
        "before => { const image = document.querySelector('#cervix-grad-cam img'); "
        "return image && image.getAttribute('src') !== before; }",
        arg=before,
        timeout=RESULT_TIMEOUT_MS,
    )
    box.fill("0.45")
    box.press("Enter")


def test_removing_the_photo_clears_the_result_and_an_example_is_classified_when_chosen(browser_page):
    open_tab(browser_page, "Cervix type")  # the photo of the test above is there, classified
    browser_page.get_by_text("Most probable:").wait_for(timeout=RESULT_TIMEOUT_MS)
    browser_page.locator("#cervix-photo").get_by_role("button", name="Remove Image").click()
    browser_page.get_by_text("Upload a photo to classify it.").wait_for(timeout=RESULT_TIMEOUT_MS)
    assert not browser_page.get_by_text("Most probable:").locator("visible=true").count()
    assert not browser_page.locator("#cervix-grad-cam img").count()  # no heat map of the removed photo
    browser_page.locator(".gallery-item").locator("visible=true").first.click()  # an example, no button pressed
    browser_page.get_by_text("Most probable:").locator("visible=true").first.wait_for(timeout=RESULT_TIMEOUT_MS)
    browser_page.locator("#cervix-grad-cam img").wait_for(timeout=RESULT_TIMEOUT_MS)


def test_cell_detection_tab_draws_boxes_and_counts(browser_page, screenshot):
    open_tab(browser_page, "Cell detection")
    browser_page.locator("#cells-threshold input[type=number]").fill("0")  # the tiny test model scores low
    upload(browser_page, "cells-image", SHARED_DATA / "isbi2014-edf" / "EDF010.png")
    browser_page.get_by_text("cell(s) found").wait_for(timeout=RESULT_TIMEOUT_MS)
    browser_page.locator("#cells-annotated img").first.wait_for(timeout=RESULT_TIMEOUT_MS)
    assert browser_page.get_by_text("nucleus").first.is_visible()
    for kind in ("csv", "json"):  # the page shows each file's name and extension apart
        assert browser_page.locator(f"#cells-{kind}").inner_text().split()[2:4] == ["EDF010_detections", f".{kind}"]
    # the full-size PNG is written after the result shows, so that the boxes appear first: wait for it
    browser_page.locator("#cells-png", has_text="EDF010_annotated").wait_for(timeout=RESULT_TIMEOUT_MS)
    assert "EDF010_annotated .png" in " ".join(browser_page.locator("#cells-png").inner_text().split())
    assert "nucleus" in browser_page.locator("#cells-table").inner_text()  # the per-cell table, numbered as drawn
    assert "each with its number and score" in browser_page.locator("#cells-annotated").inner_text()
    screenshot("cell-detection")


def test_a_threshold_typed_in_and_entered_applies_at_once(browser_page):
    open_tab(browser_page, "Cell detection")  # EDF010 is there from the test above
    browser_page.get_by_text("scoring above 0.00").wait_for(timeout=RESULT_TIMEOUT_MS)
    box = browser_page.locator("#cells-threshold input[type=number]")
    box.fill("0.2")
    box.press("Enter")
    browser_page.get_by_text("scoring above 0.20").wait_for(timeout=RESULT_TIMEOUT_MS)
    box.press("ArrowUp")  # the keyboard's step, 0.01
    browser_page.get_by_text("scoring above 0.21").wait_for(timeout=RESULT_TIMEOUT_MS)


def test_prepost_tab_decides_on_an_uploaded_pair(browser_page, screenshot):
    open_tab(browser_page, "Pre/post fusion")
    case = SHARED_DATA / "iarc-colposcopy-atlas" / "images_low_grade" / "case_AABB"
    upload(browser_page, "prepost-pre", case / "1_After_normal_saline.jpg")
    upload(browser_page, "prepost-post", case / "2_After_acetic_acid.jpg")
    browser_page.get_by_role("button", name="Classify the pair").click()
    browser_page.get_by_text("Decision:").wait_for(timeout=RESULT_TIMEOUT_MS)
    browser_page.locator("#prepost-attention img").wait_for(timeout=RESULT_TIMEOUT_MS)
    screenshot("prepost")


def test_models_tab_says_where_each_model_came_from(browser_page, screenshot):
    open_tab(browser_page, "Models")
    loaded_from = browser_page.locator("li", has_text="Loaded from: local model")
    loaded_from.first.wait_for(timeout=RESULT_TIMEOUT_MS)
    assert loaded_from.count() == 3
    assert browser_page.locator("li", has_text="Trained: yes").count() == 3
    screenshot("models")


def test_a_bad_file_shows_its_error_in_the_page(browser_page, tmp_path, screenshot):
    not_a_photo = tmp_path / "notes.jpg"
    not_a_photo.write_text("Patient notes, not a photo.\n")
    open_tab(browser_page, "Cervix type")
    browser_page.locator("#cervix-photo").get_by_role("button", name="Remove Image").click()
    upload(browser_page, "cervix-photo", not_a_photo)
    # `first`: an error toast may be shown twice if the page sends the upload twice; once is what a user must see.
    error = browser_page.get_by_text("Cannot load image 'notes.jpg': not an image file")
    error.first.wait_for(timeout=RESULT_TIMEOUT_MS)
    # The previous photo's verdict and heat map are gone, not left beside the error.
    assert not browser_page.get_by_text("Most probable:").locator("visible=true").count()
    assert not browser_page.locator("#cervix-grad-cam img").count()
    screenshot("bad-file")


def test_the_fusion_tab_offers_the_operating_points_its_model_defines(browser_page, app_checkpoints, screenshot):
    import json

    config = json.loads((app_checkpoints["prepost_fusion"] / "config.json").read_text())
    defined = [name for name, point in (config.get("operating_points") or {}).items() if point["threshold"] is not None]
    open_tab(browser_page, "Pre/post fusion")
    # The model loads when the tab opens; the line under the choices says when they are the model's.
    info = browser_page.locator("#prepost-operating-point-info", has_text="Operating points this model defines")
    info.wait_for(timeout=RESULT_TIMEOUT_MS)
    assert sorted(info.inner_text().strip().rstrip(".").split(": ")[-1].split(", ")) == sorted(defined)
    radio = browser_page.locator("#prepost-operating-point")
    labels = [text.strip() for text in radio.locator("label").all_inner_texts()]
    assert labels[0] == "model default" and labels[-1] == "custom threshold"
    assert sorted(label.split(":")[0] for label in labels[1:-1]) == sorted(defined)
    assert all(f"{name}: threshold " in " ".join(labels) for name in defined)


def test_the_fusion_tab_decides_as_soon_as_both_images_are_there(browser_page):
    open_tab(browser_page, "Pre/post fusion")  # the pair of the test above is there
    for view in ("pre", "post"):
        browser_page.locator(f"#prepost-{view}").get_by_role("button", name="Remove Image").click()
    browser_page.get_by_text("Upload both images to classify the pair.").wait_for(timeout=RESULT_TIMEOUT_MS)
    assert not browser_page.get_by_text("Decision:").locator("visible=true").count()
    case = SHARED_DATA / "iarc-colposcopy-atlas" / "images_high_grade"
    case = sorted(path for path in case.iterdir() if path.is_dir())[0]
    upload(browser_page, "prepost-pre", next(case.glob("*_After_normal_saline.jpg")))
    browser_page.wait_for_timeout(500)
    assert not browser_page.get_by_text("Decision:").locator("visible=true").count()  # one image: nothing yet
    upload(browser_page, "prepost-post", next(case.glob("*_After_acetic_acid.jpg")))
    browser_page.get_by_text("Decision:").locator("visible=true").first.wait_for(timeout=RESULT_TIMEOUT_MS)
    browser_page.locator("#prepost-attention img").wait_for(timeout=RESULT_TIMEOUT_MS)


def test_an_untrained_model_s_answers_are_greyed_out_and_called_random_in_every_tab(untrained_page, screenshot):
    page = untrained_page
    open_tab(page, "Cervix type")  # an example found without --examples, chosen: it runs the model
    page.locator(".gallery-item").locator("visible=true").first.click()
    page.get_by_text("Untrained model, random output: Most probable:").wait_for(timeout=RESULT_TIMEOUT_MS)
    assert page.get_by_text("%: meaningless").locator("visible=true").count()
    page.locator("#cervix-grad-cam img").wait_for(timeout=RESULT_TIMEOUT_MS)
    assert opacity(page, "cervix-probabilities") < 0.6 and opacity(page, "cervix-grad-cam") < 0.6
    screenshot("untrained-cervix-type", page)

    open_tab(page, "Cell detection")
    upload(page, "cells-image", SHARED_DATA / "isbi2014-edf" / "EDF010.png")
    page.get_by_text("Untrained model, random output:").locator("visible=true").first.wait_for(
        timeout=RESULT_TIMEOUT_MS
    )
    page.locator("#cells-annotated img").first.wait_for(timeout=RESULT_TIMEOUT_MS)
    assert opacity(page, "cells-annotated") < 0.6
    assert "score (UNTRAINED MODEL: output is meaningless)" in page.locator("#cells-table").inner_text()
    screenshot("untrained-cell-detection", page)

    open_tab(page, "Pre/post fusion")
    radio = page.locator("#prepost-operating-point")
    page.get_by_text("This model defines no operating points").wait_for(timeout=RESULT_TIMEOUT_MS)
    # A model without operating points (the untrained default) offers none of them.
    assert [text.strip() for text in radio.locator("label").all_inner_texts()] == ["model default", "custom threshold"]
    case = SHARED_DATA / "iarc-colposcopy-atlas" / "images_low_grade" / "case_AABB"
    upload(page, "prepost-pre", case / "1_After_normal_saline.jpg")
    upload(page, "prepost-post", case / "1_After_normal_saline.jpg")  # the same picture twice: said, not decided
    same = page.get_by_text("The pre-stain and post-stain images are the same picture")
    same.first.wait_for(timeout=RESULT_TIMEOUT_MS)
    assert not page.get_by_text("Decision:").locator("visible=true").count()
    upload(page, "prepost-post", case / "2_After_acetic_acid.jpg")
    page.get_by_text("Untrained model, random output: Decision:").wait_for(timeout=RESULT_TIMEOUT_MS)
    assert page.get_by_text(": meaningless").locator("visible=true").count()
    assert opacity(page, "prepost-probabilities") < 0.6 and opacity(page, "prepost-attention") < 0.6
    screenshot("untrained-prepost", page)

    open_tab(page, "Models")
    page.get_by_text("no: UNTRAINED MODEL").first.wait_for(timeout=RESULT_TIMEOUT_MS)
    screenshot("untrained-models", page)


def test_with_every_card_open_the_models_tab_stays_a_few_screens_tall(chromium, app_checkpoints, tmp_path):
    from cervix_hf import app
    from cervix_hf.app.models import AppModels
    from cervix_hf.app.models_tab import CARD_MAX_HEIGHT

    colponet = tmp_path / "colponet"  # the trained model with a card as long as a real one's
    colponet.mkdir()
    for path in app_checkpoints["colponet"].iterdir():
        if path.is_file():
            (colponet / path.name).symlink_to(path)
    card = "\n\n".join(f"## Section {n}\n\nA paragraph of the card, number {n}." for n in range(120))
    (colponet / "README.md").unlink(missing_ok=True)
    (colponet / "README.md").write_text(card)
    models = AppModels.from_settings(
        {"colponet": str(colponet)}, checkpoints_dir=tmp_path / "none", untrained_size="tiny"
    )
    demo = launch_app(app.build_demo(models))
    page = open_page(chromium, demo.local_url)
    try:
        open_tab(page, "Models")
        page.locator("li", has_text="Loaded from: local model").first.wait_for(timeout=RESULT_TIMEOUT_MS)
        page.evaluate("document.querySelectorAll('details').forEach(details => details.open = true)")
        page.wait_for_timeout(300)
        assert page.get_by_text("A paragraph of the card, number 119.").count() == 1
        for name in ("colponet", "cell_detector", "prepost_fusion"):
            card = page.locator(f"#card-{name}")
            assert card.locator("details[open]").count() == 1
            assert card.bounding_box()["height"] <= CARD_MAX_HEIGHT + 40, name
    finally:
        page.close()
        demo.close()
