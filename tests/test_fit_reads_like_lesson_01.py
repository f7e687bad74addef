"""``fit??`` reads like lesson 01: the calls in ``fit``'s batch loop come in the order, and with
the names, of the loop lesson 01 writes by hand (issue 21). Both are read as source with ``ast``:
the notebook cell and labkit/train.py, so a drift in either fails here."""

import ast
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
LESSON_01 = ROOT / "notebooks" / "01_transfer_learning.ipynb"
TRAIN = ROOT / "labkit" / "train.py"
LESSON_LOOP_CELL = "1aa38ebb"

# What fit writes differently but means the same: the scaler does nothing when AMP is off.
#   scaler.scale(loss / accumulate).backward()  is  loss.backward()
#   scaler.step(optimizer)                      is  optimizer.step()


def _name(node: ast.AST) -> str:
    """The variable a call is made on: ``loss`` in ``loss``, ``loss / accumulate``,
    ``scaler.scale(loss / accumulate)``."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
            and node.func.attr == "scale":
        return _name(node.args[0])
    if isinstance(node, ast.BinOp):
        return _name(node.left)
    return ast.unparse(node)


def _step(call: ast.Call) -> str | None:
    """One step of the training loop, in lesson 01's words, or None for anything else."""
    func = call.func
    if isinstance(func, ast.Name) and func.id in ("model", "loss_fn"):
        return f"{func.id}({', '.join(ast.unparse(arg) for arg in call.args)})"
    if not isinstance(func, ast.Attribute):
        return None
    owner = _name(func.value)
    if func.attr == "step" and owner == "scaler":
        return f"{_name(call.args[0])}.step()"
    if func.attr in ("to", "zero_grad", "backward", "step"):
        return f"{owner}.{func.attr}()"
    return None


def batch_loop(tree: ast.AST) -> ast.For:
    """The ``for`` loop over batches that unpacks ``images, labels``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.For) and "images, labels" in ast.unparse(node.target):
            return node
    raise AssertionError("no `for ... images, labels in ...` loop found")


def steps(loop: ast.For) -> list[str]:
    """The loop's steps in source order, each with the names it assigns: e.g.
    ``logits = model(images)``, ``loss.backward()``."""
    found = []
    for node in ast.walk(loop):
        if isinstance(node, ast.Call) and node is not loop.iter and _step(node):
            found.append((node.lineno, node.col_offset, -node.end_col_offset, _step(node)))
    found = [step for *_, step in sorted(found)]
    assigned = {}
    for node in ast.walk(loop):
        if isinstance(node, ast.Assign):
            calls = [_step(c) for c in ast.walk(node.value) if isinstance(c, ast.Call)]
            for call in filter(None, calls):
                assigned[call] = ast.unparse(node.targets[0]).strip("()")
    return [f"{assigned[s]} = {s}" if s in assigned else s for s in found]


def lesson_loop() -> ast.For:
    cells = {cell.get("id"): cell for cell in nbformat.read(LESSON_01, as_version=4).cells}
    return batch_loop(ast.parse(cells[LESSON_LOOP_CELL].source))


def fit_function() -> ast.FunctionDef:
    tree = ast.parse(TRAIN.read_text(encoding="utf-8"))
    return next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "fit")


def test_the_lesson_loop_is_the_one_this_test_knows():
    assert steps(lesson_loop()) == [
        "images, labels = images.to()", "images, labels = labels.to()",
        "logits = model(images)", "loss = loss_fn(logits, labels)",
        "optimizer.zero_grad()", "loss.backward()", "optimizer.step()", "scheduler.step()"]


def test_fits_loop_makes_lesson_01s_calls_in_lesson_01s_order_with_its_names():
    assert steps(batch_loop(fit_function())) == steps(lesson_loop())


def test_fit_is_at_most_60_lines_and_uses_the_lessons_names():
    fit = fit_function()
    assert isinstance(fit.body[0], ast.Expr) and isinstance(fit.body[0].value, ast.Constant)
    body_lines = fit.body[-1].end_lineno - fit.body[1].lineno + 1  # the docstring left out
    assert body_lines <= 60, f"fit's body is {body_lines} lines"
    names = {node.id for node in ast.walk(fit) if isinstance(node, ast.Name)}
    assert {"images", "labels", "logits", "loss", "model", "loss_fn", "optimizer"} <= names
    assert not {"inputs", "targets", "outputs", "net"} & names  # the names issue 21 replaced


def test_the_module_docstring_sends_the_reader_to_lesson_01():
    doc = ast.get_docstring(ast.parse(TRAIN.read_text(encoding="utf-8")))
    assert "fit??" in doc and "Lesson 01" in doc and LESSON_01.name in doc
