"""Image inputs shared by the vision tabs (Visual Token Pruning, Information Flow).

A generated validation scene, one of the real photographs scikit-image ships in its wheel (no download), or an
upload. Uploads go through :func:`engine.vision.images.load_image` (size caps, decompression bombs, animated,
multi-page, 16-bit and RGBA files), so a bad file gets a clear message and is never executed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from app.inputs import as_int, upload_path
from engine.registry import InputError

__all__ = [
    "SOURCES", "MAX_SCENE", "EXAMPLES", "example_paths", "scene_image", "cli_image", "get_image",
    "image_input_components",
]  # fmt: skip

SOURCES = ("Generated scene", "Example photo", "Upload")
MAX_SCENE = 100_000
EXAMPLES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg", "camera.png")


def example_paths(names: tuple[str, ...] = EXAMPLES) -> dict[str, Path]:
    """Paths of the scikit-image example photographs that this install has."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return {}
    d = Path(next(iter(spec.submodule_search_locations))) / "data"
    return {n: d / n for n in names if (d / n).exists()}


def scene_image(index, *, with_questions: bool = False) -> tuple[np.ndarray, str]:
    """Validation scene ``index`` of the built-in generator as RGB uint8 ``[H, W, 3]``, and its description
    (with its questions and answers when ``with_questions``)."""
    from engine.vision import scenes

    i = as_int(index, "scene index", 0, MAX_SCENE)
    b = scenes.make_batch("val", i, 1)
    desc = f"validation scene {i}"
    if with_questions:
        qs = "; ".join(f"{b.question_text(0, j)} {b.answer_text(0, j)}" for j in range(len(scenes.QTYPES)))
        desc += f" (its questions: {qs})"
    return b.image_uint8(0), desc


def cli_image(path: str | None, scene: int | None) -> tuple[np.ndarray, list[str]]:
    """The image of a command's ``--image PATH`` or ``--scene I`` flag, and the notices of loading it."""
    from engine.vision.images import load_image

    if path:
        return load_image(path)
    return scene_image(scene)[0], []


def get_image(
    source: str, scene_index, example: str | None, upload, *, names: tuple[str, ...] = EXAMPLES,
    with_questions: bool = False,
) -> tuple[np.ndarray, list[str], str]:  # fmt: skip
    """RGB uint8 image ``[H, W, 3]``, notices, and a description of the input.

    ``with_questions`` appends a generated scene's questions and answers to the description.
    """
    from engine.vision.images import load_image

    if source == "Generated scene":
        img, desc = scene_image(scene_index, with_questions=with_questions)
        return img, [], desc
    if source == "Example photo":
        paths = example_paths(names)
        if not example or example not in paths:
            raise InputError(f"pick an example photo: {sorted(paths)}")
        img, notices = load_image(paths[example])
        return img, notices, f"scikit-image example {example}"
    if source == "Upload":
        if upload is None:
            raise InputError("upload an image file first")
        path = upload_path(upload)
        img, notices = load_image(path)
        return img, notices, f"uploaded {Path(path).name}"
    raise InputError(f"unknown image source {source!r}; choose one of {list(SOURCES)}")


def image_input_components(names: tuple[str, ...] = EXAMPLES):
    """The image-source controls of a vision tab (call inside a layout): source, scene index, example, upload."""
    import gradio as gr

    source = gr.Radio(list(SOURCES), value="Generated scene", label="Image")
    # no precision=0: gradio would round 2.5 silently and fail on NaN with a vague message; as_int says what is wrong
    scene_index = gr.Number(value=0, minimum=0, maximum=MAX_SCENE, step=1, label="Scene index")
    ex = sorted(example_paths(names))
    example = gr.Dropdown(ex, value=ex[0] if ex else None, label="Example photo (scikit-image)")
    upload = gr.File(label="Upload an image", file_types=["image"], type="filepath")
    return source, scene_index, example, upload
