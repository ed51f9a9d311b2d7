"""Training image sources (superpoint_training/data/images.py): one folder, several folders,
.txt lists, and the errors a user meets."""

import cv2
import numpy as np
import pytest

from superpoint_ros.errors import ConfigError, InputError
from superpoint_ros.frontend import preprocess
from superpoint_training.data.images import ImageSet, list_images, prepare_image


@pytest.fixture
def folders(tmp_path):
    for folder, names in {"kodak": ["a.png", "sub/b.jpg"], "urban": ["c.png"]}.items():
        for n in names:
            p = tmp_path / folder / n
            p.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(p), np.full((40, 60, 3), 100, np.uint8))
    (tmp_path / "kodak" / "notes.md").write_text("not an image")
    return tmp_path


def test_one_folder_names_are_relative(folders):
    s = ImageSet.from_sources(folders / "kodak")
    assert s.names == ("a.png", "sub/b.jpg")
    assert s.path("sub/b.jpg") == folders / "kodak" / "sub" / "b.jpg"
    assert list_images(folders / "kodak") == ["a.png", "sub/b.jpg"]


def test_several_folders_are_prefixed_by_their_names(folders):
    s = ImageSet.from_sources([folders / "kodak", str(folders / "urban")])
    assert s.names == ("kodak/a.png", "kodak/sub/b.jpg", "urban/c.png")
    assert s.path("urban/c.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(InputError, match="not under --images"):
        s.path("a.png")


def test_links_to_files_are_followed(folders, tmp_path):
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "x.png").symlink_to(folders / "urban" / "c.png")
    assert ImageSet.from_sources(linked).names == ("x.png",)


def test_text_list(folders, tmp_path):
    listing = tmp_path / "train.txt"
    listing.write_text("# my set\nkodak/a.png\n\n" + str(folders / "urban" / "c.png") + "\n")
    s = ImageSet.from_sources(listing)
    assert s.names[0] == "kodak/a.png" and s.path("kodak/a.png") == tmp_path / "kodak/a.png"
    assert s.names[1].endswith("urban/c.png") and not s.names[1].startswith("/")
    with pytest.raises(ConfigError, match="'kodak/a.png' appears twice"):
        ImageSet.from_sources([listing, folders / "kodak"])  # prefixed: kodak/a.png again
    listing.write_text("kodak/missing.png\n")
    with pytest.raises(InputError, match="train.txt:1: image not found"):
        ImageSet.from_sources(listing)


def test_errors(folders, tmp_path):
    other = tmp_path / "elsewhere" / "kodak"
    other.mkdir(parents=True)
    with pytest.raises(ConfigError, match="same name 'kodak'"):
        ImageSet.from_sources([folders / "kodak", other])
    with pytest.raises(InputError, match="not found"):
        ImageSet.from_sources(tmp_path / "nope")
    with pytest.raises(InputError, match="neither a folder"):
        ImageSet.from_sources(folders / "kodak" / "notes.md")
    with pytest.raises(ConfigError, match="no image source"):
        ImageSet.from_sources([])


def test_prepare_image_crops_to_the_training_size(folders):
    img = prepare_image(folders / "kodak" / "a.png", (24, 32))
    assert img.shape == (24, 32) and img.dtype == np.uint8 and int(img[0, 0]) == 100
    with pytest.raises(InputError, match="cannot read"):
        prepare_image(folders / "kodak" / "notes.md", (24, 32))


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_training_sees_the_node_pixels(tmp_path, suffix):
    """A colour file gives the training (``prepare_image``, at the file's own size: no resize)
    exactly the grey the node's front-end computes from the same decoded BGR image; decoding
    straight to grey (``IMREAD_GRAYSCALE``, what the training did before) differs on some JPEG
    pixels, which is why there is one reader."""
    rng = np.random.default_rng(3)
    colour = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    path = tmp_path / f"c{suffix}"
    cv2.imwrite(str(path), colour)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    node = preprocess.to_gray(bgr)  # what superpoint_node feeds the network
    assert np.array_equal(prepare_image(path, (48, 64)), node)
    if suffix == ".jpg":
        direct = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        assert not np.array_equal(direct, node)
