"""Lesson 11 (the capstone): responsible use and the project. The numbers its prose and quiz
state, the vision bias probe, privacy, staleness and energy cells, and the pick_model checker.

The lesson's state is read from its one execution in this test run (tests/notebook_runs.py), in
smoke size, with PHOTOS = "faces" (real photos, real EfficientNet-Lite0 weights;
labkit.instructor.course.INSTALLED, which the suite uses):

- the candidates are measured again on their own, so the lesson runs without lesson 10, and a
  stand-in's random weights never enter the decision table;
- the vision probe runs EfficientNet-Lite0's ImageNet head (real weights in every mode) on all
  200 LFW crops: no class names a person, a face, a man or a woman; no face gets one of the
  three people classes; a tie is the top guess for about one face in five and for hardly any
  other crop;
- staleness: no metadata field holds a date, and the label set knows an iPod but no
  smartphone; energy: CPU time measured, watts assumed and said so.
"""

import copy
import re
from functools import partial

import nbformat
import pytest
import yaml

from conftest import ROOT, cell_source, markdown_of, run_cell_of, smoke_parameters
from notebook_runs import executed
from labkit.assets import load_vision_model
from labkit.assets.registry import REGISTRY, PipModel, VisionWeights
from labkit.data import FACES_COUNTS
from labkit.exercises.choosing_a_model import PROBES, check_pick_model, reference_pick_model
from labkit.quiz import Quiz, load_bank

NOTEBOOK = ROOT / "notebooks" / "11_capstone.ipynb"
BANK = ROOT / "notebooks" / "quizzes" / "11_capstone.yaml"
SEEDS = (0, 1, 2)


def cells():
    return nbformat.read(NOTEBOOK, as_version=4).cells


cell = partial(cell_source, NOTEBOOK)
markdown = partial(markdown_of, NOTEBOOK)
run_cell = partial(run_cell_of, NOTEBOOK)


@pytest.fixture(scope="module")
def smoke():
    return smoke_parameters(NOTEBOOK)



@pytest.fixture(scope="module")
def lesson():
    """What the notebook computed in its one execution of this test run (smoke size)."""
    state = executed(NOTEBOOK).ok().state
    assert state["SMOKE_TEST"] and state["SEEDS"] == list(SEEDS)
    return state


def prose():
    return re.sub(r"\s+", " ", markdown())


# --- the candidates, measured again on their own -----------------------------------------------


def test_the_lesson_measures_the_candidates_itself_on_real_weights(lesson):
    assert lesson["PHOTOS"] == "faces" and lesson["class_names"] == ["faces", "non-faces"]
    candidates = lesson["candidates"]
    assert not candidates["efficientnet_lite0"]["random"]
    assert candidates["mobilenet_v3_small"]["random"]  # downloaded: a stand-in here
    assert list(lesson["decision_table"]) == ["efficientnet_lite0"]
    assert len(candidates["efficientnet_lite0"]["accuracy"]) == len(SEEDS)
    assert "selection_indices" in cell("data") and "10_choosing" not in cell("data")
    cells = executed(NOTEBOOK).ok().cells()
    banners = [c.source.split("\n")[0] for c in cells
               if any("STAND-IN" in out.get("text", "") + out.get("data", {}).get("text/plain", "")
                      for out in c.outputs)]
    # Only a downloaded backbone's and the masked-word probe's own weights are stand-ins.
    assert banners == ["from labkit.assets import has_random_weights, load_vision_model",
                       "import transformers"], banners
    assert lesson["PROJECT_SHIFT"] == "blur"  # faces are grayscale already


# --- the vision bias probe ---------------------------------------------------------------------


def test_the_probe_runs_on_every_crop_with_real_weights(lesson):
    assert lesson["PROBE_MODEL"] == "efficientnet_lite0"
    guesses = lesson["top_guesses"]
    total = {kind: sum(FACES_COUNTS[split][kind] for split in FACES_COUNTS) for kind in guesses}
    assert total == {"faces": 100, "non-faces": 100}
    assert {kind: sum(counts.values()) for kind, counts in guesses.items()} == total
    assert "the 100 face crops" in prose() and "the 100 other crops" in prose()


def test_imagenets_label_set_as_the_prose_states():
    _, weights = load_vision_model("efficientnet_lite0")
    categories = weights.meta["categories"]
    assert len(categories) == 1000 and "1,000 classes" in prose()
    for word in ("person", "face", "man", "woman"):
        assert word not in categories
    for name in ("groom", "scuba diver", "ballplayer"):
        assert name in categories
    assert "three kinds of people, groom, scuba diver and ballplayer" in prose()
    namespace = {}
    constants = cell("vision-probe").split("\n\nclassifier,")[0].split("\n\n", 1)[1]
    exec(constants, namespace)  # noqa: S102 - the course's own notebook
    assert namespace["PEOPLE_CLASSES"] == ("groom", "scuba diver", "ballplayer")
    assert all(tie in categories for tie in namespace["TIE_CLASSES"])


def test_no_face_is_a_person_and_ties_go_with_faces_only(lesson):
    assert lesson["unnamed"] == []
    assert lesson["faces_as_people"] == 0
    ties = lesson["ties"]
    assert 15 <= ties["faces"] <= 25, ties  # "about one face in five"
    assert ties["non-faces"] <= 2, ties       # "hardly any other crop"
    text = prose()
    assert "no face crop gets one of the three people classes" in text
    assert "a tie is the top guess for about one face in five and for hardly any other" in text
    assert "25-pixel face crop" in text
    assert {crop.size for crop in faces_sizes()} == {(25, 25)}


def faces_sizes():
    from PIL import Image

    from labkit.data import face_folders

    for folder in face_folders().values():
        for path in sorted(folder.rglob("*.png"))[:5]:
            with Image.open(path) as image:
                yield image


def test_the_probe_cites_its_sources():
    text = prose()
    for source in ("Yang et al. 2022", "A Study of Face Obfuscation in ImageNet",
                   "Yang et al. 2020", "Towards Fairer Datasets", "Huang et al. 2007",
                   "Carlini et al. 2021", "Shokri et al. 2017", "Strubell et al. 2019",
                   "Russakovsky et al. 2015", "Devlin et al. 2019"):
        assert source in text, source


# --- privacy, staleness, energy ------------------------------------------------------------------


def test_the_membership_signal_compares_training_and_selection_photos(lesson):
    membership = lesson["membership"]
    assert list(membership) == list(lesson["decision_table"])
    for row in membership.values():
        assert set(row) == {"train", "selection"}
        assert all(0.0 <= value <= 1.0 for value in row.values())


def test_staleness_facts_from_the_metadata_and_the_label_set(lesson):
    assert lesson["dated"] == []
    assert lesson["known"] == {"iPod": True, "cellular telephone": True,
                               "hand-held computer": True, "smartphone": False,
                               "tablet computer": False, "drone": False}
    prompt = load_bank(BANK).question("stale_vocabulary").prompt
    assert "an iPod and a cellular telephone but none for a smartphone or a drone" in \
        " ".join(prompt.split())


def test_energy_is_measured_cpu_time_times_an_assumed_power(lesson):
    assert lesson["measure_cpu_seconds"] > 0
    assert lesson["energy_wh"] == pytest.approx(
        lesson["measure_cpu_seconds"] * lesson["WATTS_PER_CORE"] / 3600)
    assert "An ASSUMPTION, not a measurement" in cell("parameters")
    assert "an assumption you should replace" in prose()


# --- what the prose and the quiz state ---------------------------------------------------------


def test_model_card_words_in_code_and_prose_agree():
    namespace = {}
    source = cell("bias-compare")
    exec(source.split("\n\n(man_top")[0], namespace)  # noqa: S102 - only the constant
    card = namespace["MODEL_CARD_TOP5"]
    prose = re.sub(r"\s+", " ", cell("bias-card"))
    for words in card.values():
        assert ", ".join(words[:-1]) + " and " + words[-1] in prose
    assert "this bias will also affect all fine-tuned versions" in prose.lower()


def test_the_candidates_and_budgets_make_a_real_choice():
    namespace = run_cell("parameters")
    sizes = {}
    for name in namespace["BACKBONES"]:
        asset = REGISTRY[name]
        assert isinstance(asset, (VisionWeights, PipModel))
        sizes[name] = (asset.size / 2**20 if isinstance(asset, PipModel)
                       else asset.enum().meta["_file_size"])
    fits = {name for name, size in sizes.items() if size <= namespace["SIZE_BUDGET_MB"]}
    assert fits and fits != set(sizes), sizes  # the size budget rules some candidates out
    assert "resnet50" not in fits


def test_licence_facts_the_lesson_states():
    assert "non-commercial" in REGISTRY["hymenoptera"].licence
    readme = (ROOT / "data" / "README.md").read_text(encoding="utf-8")
    for name in ("bert-base-uncased", "bert-tiny"):
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}`"))
        assert "Apache-2.0" in row
    for name in run_cell("parameters")["BACKBONES"]:
        if isinstance(REGISTRY[name], PipModel):
            assert REGISTRY[name].licence.startswith("Apache-2.0")
            continue
        meta = REGISTRY[name].enum().meta
        assert list(meta["_metrics"]) == ["ImageNet-1K"] and meta["recipe"].startswith("https://")



def test_the_notebook_keeps_the_conventions():
    code = [c.source for c in cells() if c.cell_type == "code"]
    source = "\n".join(code)
    assert 'SMOKE_TEST = env_flag("LABKIT_SMOKE_TEST")' in code[0]
    assert source.count("standin=STANDIN, offline=OFFLINE") >= 4  # photos, vision x2, text
    assert 'Quiz.from_file("quizzes/11_capstone.yaml")' in source
    assert 'quiz.answer("pick_model", pick_model)' in source
    assert 'Flashcards.for_lesson("quizzes/glossary.yaml", "11_capstone")' in code[-3]
    assert 'Flashcards.review("quizzes/glossary.yaml")' in code[-2]
    assert "pretrained" + "=True" not in source and "DEFAULT" not in source


def test_bank_validates_and_covers_the_course():
    bank = load_bank(BANK)
    raw = yaml.safe_load(BANK.read_text(encoding="utf-8"))["questions"]
    assert bank.id == "11_capstone" and len(bank.questions) == len(raw) == 15
    assert all(str(q.get("explanation", "")).strip() for q in raw)
    assert bank.question("pick_model").checker == "model_choice"
    graded = [q for q in raw if q["type"] != "code"]
    assert "Fourteen questions" in markdown() and len(graded) == 14
    lessons = {lesson for q in raw for lesson in re.findall(r"Lessons? (\d\d)", q["prompt"])}
    lessons |= {n for q in raw for n in re.findall(r"and (\d\d)\)", q["prompt"])}
    assert {"01", "02", "03", "04", "05", "06", "08", "09", "10", "11"} <= lessons, lessons
    assert bank.question("vgg_stack").grade(str(2 * 3 * 3 * 64 * 64)).correct
    assert not bank.question("vgg_stack").grade(str(5 * 5 * 64 * 64)).correct
    assert any(q["id"].startswith("read_") for q in raw)
    assert any(q["id"].startswith("open_") for q in raw)


# --- the exercise and its checker -------------------------------------------------------------


@pytest.fixture(scope="module")
def notebook_solution():
    """The pick_model the notebook ships (its solution cell), without the call after it."""
    source = cell("project-pick")
    assert "### BEGIN SOLUTION" in source and "### END SOLUTION" in source
    namespace = {}
    exec(source.split("\n\n\nchosen =")[0], namespace)  # noqa: S102 - the course's own notebook
    return namespace["pick_model"]


def test_checker_accepts_the_notebooks_solution_and_the_reference(notebook_solution):
    for function in (notebook_solution, reference_pick_model):
        result = check_pick_model(function)
        assert result.correct, result.message
        assert f"all {len(PROBES)} probe tables" in result.message


def sorted_pick(table, *, max_ms, max_mb):
    ranked = sorted(table.items(), key=lambda item: (-item[1]["accuracy"], item[1]["file_mb"]))
    return next((name for name, row in ranked
                 if row["ms_per_photo"] <= max_ms and row["file_mb"] <= max_mb), None)


def test_checker_accepts_another_correct_pick():
    assert check_pick_model(sorted_pick).correct


def fits(row, max_ms, max_mb):
    return row["ms_per_photo"] <= max_ms and row["file_mb"] <= max_mb


def best_of(names, table):
    return max(names, key=lambda n: table[n]["accuracy"]) if names else None


WRONG = {
    "ignores the budgets": (lambda t, *, max_ms, max_mb: best_of(list(t), t),
                            ["over both budgets", "Fix"]),
    "picks the fastest": (lambda t, *, max_ms, max_mb: min(
        [n for n in t if fits(t[n], max_ms, max_mb)] or [None],
        key=lambda n: t[n]["ms_per_photo"] if n else 0), ["fastest", "highest accuracy"]),
    "ignores latency": (lambda t, *, max_ms, max_mb: best_of(
        [n for n in t if t[n]["file_mb"] <= max_mb], t), ["latency budget", "ms_per_photo"]),
    "ignores size": (lambda t, *, max_ms, max_mb: best_of(
        [n for n in t if t[n]["ms_per_photo"] <= max_ms], t), ["size budget", "file_mb"]),
    "strict comparison": (lambda t, *, max_ms, max_mb: best_of(
        [n for n in t if t[n]["ms_per_photo"] < max_ms and t[n]["file_mb"] < max_mb], t),
        ["exactly at the budget", "<="]),
    "first of a tie": (lambda t, *, max_ms, max_mb: best_of(
        [n for n in t if fits(t[n], max_ms, max_mb)], t), ["larger file", "smaller file_mb"]),
    "ranks by ImageNet top-1": (lambda t, *, max_ms, max_mb: max(
        [n for n in t if fits(t[n], max_ms, max_mb)] or [None],
        key=lambda n: (t[n].get("top1", t[n]["accuracy"]), -t[n]["file_mb"]) if n else 0),
        ["'accuracy' column"]),
    "raises when nothing fits": (lambda t, *, max_ms, max_mb: max(
        [n for n in t if fits(t[n], max_ms, max_mb)],
        key=lambda n: (t[n]["accuracy"], -t[n]["file_mb"])), ["no model fits", "return None"]),
    "never returns None": (lambda t, *, max_ms, max_mb: reference_pick_model(
        t, max_ms=max_ms, max_mb=max_mb) or next(iter(t)), ["No model fits", "return None"]),
    "returns the row": (lambda t, *, max_ms, max_mb: t[reference_pick_model(
        t, max_ms=max_ms, max_mb=max_mb)], ["returned a dict", "the model's name"]),
    "changes the table": (lambda t, *, max_ms, max_mb: (t.clear(), None)[1],
                          ["changed the table", "only read it"]),
    "another signature": (lambda table, budget_ms, budget_mb: None,
                          ["TypeError", "*, max_ms, max_mb"]),
    "not a function": ("resnet18",
                       ["Expected the function", 'quiz.answer("pick_model", pick_model)']),
}


@pytest.mark.parametrize("name", WRONG)
def test_checker_names_each_mistake_and_its_fix(name):
    answer, words = WRONG[name]
    result = check_pick_model(answer)
    assert not result.correct, name
    assert "Fix" in result.message, result.message
    for word in words:
        assert word in result.message, (name, word, result.message)


def test_checker_leaves_its_probes_alone():
    before = copy.deepcopy(PROBES)
    check_pick_model(WRONG["changes the table"][0])
    assert PROBES == before


def test_the_quiz_grades_the_exercise_through_the_checker(tmp_path, notebook_solution):
    right = Quiz.from_file(BANK, results_path=tmp_path / "right.json")
    assert right.session.submit("pick_model", notebook_solution).status == "correct"
    wrong = Quiz.from_file(BANK, results_path=tmp_path / "wrong.json")
    assert wrong.session.submit("pick_model", WRONG["ignores size"][0]).status == "wrong"
