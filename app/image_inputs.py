"""Image inputs shared by the vision tabs (Visual Token Pruning, Information Flow).

A generated validation scene, one of the real photographs scikit-image ships in its wheel (no download), or an
upload. Uploads go through :func:`engine.vision.images.load_image` (size caps, decompression bombs, animated,
multi-page, 16-bit and RGBA files), so a bad file gets a clear message and is never executed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from engine.registry import InputError

__all__ = ["SOURCES", "MAX_SCENE", "EXAMPLES", "example_paths", "get_image", "image_input_components"]

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


def get_image(
    source: str, scene_index, example: str | None, upload, *, names: tuple[str, ...] = EXAMPLES,
    with_questions: bool = False,
) -> tuple[np.ndarray, list[str], str]:  # fmt: skip
    """RGB uint8 image ``[H, W, 3]``, notices, and a description of the input.

    ``with_questions`` appends a generated scene's questions and answers to the description.
    """
    from engine.vision.images import load_image

    if source == "Generated scene":
        from engine.vision import scenes

        try:
            i = int(scene_index)
        except (TypeError, ValueError):
            raise InputError(f"scene index must be a whole number, got {scene_index!r}") from None
        if not 0 <= i <= MAX_SCENE:
            raise InputError(f"scene index must be in 0..{MAX_SCENE}, got {i}")
        b = scenes.make_batch("val", i, 1)
        img = (b.images[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        desc = f"validation scene {i}"
        if with_questions:
            qs = "; ".join(
                f"{b.question_text(0, j)} {b.answer_text(0, j)}" for j in range(len(scenes.QTYPES))
            )
            desc += f" (its questions: {qs})"
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
        path = upload if isinstance(upload, str) else getattr(upload, "name", None) or upload.get("path")
        img, notices = load_image(path)
        return img, notices, f"uploaded {Path(path).name}"
    raise InputError(f"unknown image source {source!r}; choose one of {list(SOURCES)}")


def image_input_components(names: tuple[str, ...] = EXAMPLES):
    """The image-source controls of a vision tab (call inside a layout): source, scene index, example, upload."""
    import gradio as gr

    source = gr.Radio(list(SOURCES), value="Generated scene", label="Image")
    scene_index = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SCENE, label="Scene index")
    ex = sorted(example_paths(names))
    example = gr.Dropdown(ex, value=ex[0] if ex else None, label="Example photo (scikit-image)")
    upload = gr.File(label="Upload an image", file_types=["image"], type="filepath")
    return source, scene_index, example, upload
