"""Backend, local: the image folder an image job trains on, scanned and checked.

Image folders are messy (JPEG and PNG under any suffix case, grayscale and RGB, names with spaces): files that
cannot be decoded are skipped with a warning naming them; a class without a readable image is an error. The
layout (one sub-folder per class, hidden files left out) is capc.image_files.class_images, as the build reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from capc.errors import CapcError
from capc.image_files import IMAGE_SUFFIXES, class_images



@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path} ({self.reason})"


@dataclass
class ImageFolder:
    """A scanned image folder: readable images per class (sorted), and what was skipped and why."""

    root: Path
    classes: dict[str, list[Path]]
    skipped: list[SkippedFile] = field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        return list(self.classes)

    @property
    def image_count(self) -> int:
        return sum(len(files) for files in self.classes.values())

    def skipped_message(self) -> str | None:
        """One warning naming every skipped file, or None when nothing was skipped."""
        if not self.skipped:
            return None
        noun = "file" if len(self.skipped) == 1 else "files"
        return f"skipped {len(self.skipped)} unreadable {noun} in {self.root}: " + "; ".join(map(str, self.skipped))


def readable_image(path: Path) -> str | None:
    """None when `path` decodes as an image, else why not (a full decode: truncated files fail here too)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
    except UnidentifiedImageError:
        return "not an image Pillow can read"
    except (OSError, ValueError, SyntaxError) as exc:  # truncated data, broken headers
        return f"cannot decode: {exc}"
    return None


def scan_image_folder(root: Path, verify: bool = True) -> ImageFolder:
    """Classes (sub-folders, sorted) and their readable images; CapcError when the folder cannot be trained on.

    Files with an image suffix that do not decode are skipped (listed in `skipped`); other files are left out
    as the build's image listing leaves them out. verify=False trusts the suffixes (no decoding).
    """
    root = Path(root)
    if not root.is_dir():
        raise CapcError(f"image folder {root} does not exist.", "dataset.path of an image_folder spec names a folder with one sub-folder per class")
    classes: dict[str, list[Path]] = {}
    skipped: list[SkippedFile] = []
    for name, files in class_images(root).items():
        good = []
        for path in files:
            reason = readable_image(path) if verify else None
            if reason:
                skipped.append(SkippedFile(path, reason))
            else:
                good.append(path)
        classes[name] = good
    if len(classes) < 2:
        found = f"only {next(iter(classes))!r}" if classes else "none"
        raise CapcError(
            f"image folder {root} needs one sub-folder per class, at least two; found {found}.",
            "put each class's images in a sub-folder named after the class (e.g. yes/ and no/)",
        )
    empty = [name for name, files in classes.items() if not files]
    if empty:
        names = ", ".join(repr(n) for n in empty)
        suffixes = " ".join(sorted(IMAGE_SUFFIXES))
        raise CapcError(
            f"class {names} in {root} has no readable image" if len(empty) == 1 else f"classes {names} in {root} have no readable image",
            f"each class needs at least one image file ({suffixes})" + (f"; skipped: {'; '.join(map(str, skipped))}" if skipped else ""),
        )
    return ImageFolder(root, classes, skipped)
