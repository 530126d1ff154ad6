"""The verified healthy pool (issue 27): a healthy CT that is a labeled CT of an imported dataset,
whatever its file name, orientation, dtype or scaling, is refused with both ids named; an atlas
CT without lesion mask files is an error unless --assume-healthy."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from test_data_importers import AFFINE, ORGAN, SHAPE, TARGET, _atlas, _msd, _save, _volumes
from benchmark.cli import main
from benchmark.data import Dataset, import_dataset
from benchmark.data.healthy_pool import content_fingerprint
from benchmark.data.resample import to_ras
from benchmark.errors import InputError


def _canonical(img) -> np.ndarray:
    array = np.asanyarray(img.dataobj).astype(np.float32)
    return to_ras(array, img.affine)[0]


def _twins(msd_ct: nib.Nifti1Image) -> dict[str, nib.Nifti1Image]:
    """The same scan re-saved four ways."""
    hu = np.asanyarray(msd_ct.dataobj)
    ras = nib.as_closest_canonical(msd_ct)
    flipped = nib.Nifti1Image(np.asanyarray(ras.dataobj).astype(np.float32), ras.affine)  # RAS, float32
    shifted = nib.Nifti1Image((hu.astype(np.int32) + 1024).astype(np.uint16), msd_ct.affine)
    shifted.header.set_slope_inter(1.0, -1024.0)  # uint16 storage, HU through the intercept
    swap = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    permuted = nib.Nifti1Image(np.ascontiguousarray(hu.transpose(1, 0, 2)), msd_ct.affine @ swap)  # axes swapped
    noisy = nib.Nifti1Image(hu.astype(np.float32) + np.float32(0.3), msd_ct.affine)  # rounds to the same HU
    return {"flipped": flipped, "shifted": shifted, "permuted": permuted, "noisy": noisy}


def test_fingerprint_is_the_scan_not_the_file(tmp_path):
    ct, _ = _volumes()
    original = nib.Nifti1Image(ct, AFFINE)
    want = content_fingerprint(_canonical(original))
    for name, twin in _twins(original).items():
        path = tmp_path / f"{name}.nii.gz"
        nib.save(twin, str(path))
        loaded = nib.load(str(path))
        array = np.asanyarray(loaded.dataobj)
        assert content_fingerprint(to_ras(array, loaded.affine)[0]) == want, name
    other = ct.copy()
    other[0, 0, 0] += 1  # one voxel one HU off: another scan
    assert content_fingerprint(_canonical(nib.Nifti1Image(other, AFFINE))) != want


def _healthy_twins(root, msd_src):
    """An atlas folder with the MSD CTs liver_1 (flipped, float32) and liver_2 (uint16 + intercept)
    under other names, and one real healthy CT."""
    src = _atlas(root, ["liver"], n=1, lesion_case=False)
    for case, (msd_id, kind) in {"BDMAP_00000002": ("liver_1", "flipped"),
                                 "BDMAP_00000003": ("liver_2", "shifted")}.items():
        twin = _twins(nib.load(str(msd_src / "imagesTr" / f"{msd_id}.nii.gz")))[kind]
        (src / case / "segmentations").mkdir(parents=True)
        nib.save(twin, str(src / case / "ct.nii.gz"))
        organ = np.zeros(SHAPE, np.uint8)
        organ[ORGAN] = 1
        organ = nib.Nifti1Image(organ, AFFINE)
        if kind == "flipped":  # its masks are re-saved in the same orientation as the CT
            organ = nib.as_closest_canonical(organ)
        nib.save(organ, str(src / case / "segmentations" / "liver.nii.gz"))
        nib.save(nib.Nifti1Image(np.zeros(organ.shape, np.uint8), organ.affine),
                 str(src / case / "segmentations" / "liver_tumor.nii.gz"))
    return src


def test_a_healthy_twin_of_a_labeled_ct_is_refused_with_both_ids(tmp_path):
    msd = _msd(tmp_path)
    import_dataset("msd", msd, "liver", tmp_path / "data" / "liver", spacing=TARGET, progress=False)
    atlas = _healthy_twins(tmp_path, msd)
    # a new dataset next to the labeled one
    with pytest.raises(InputError, match=r"healthy CT BDMAP_00000002 is the same scan as labeled CT liver_1 .*"
                                         r"healthy CT BDMAP_00000003 is the same scan as labeled CT liver_2"):
        import_dataset("atlas", atlas, "liver", tmp_path / "data" / "healthy", spacing=TARGET, progress=False)
    assert not (tmp_path / "data" / "healthy").exists()
    # appended to the labeled dataset itself: nothing half-written
    before = (tmp_path / "data" / "liver" / "cases.csv").read_text()
    with pytest.raises(InputError, match="BDMAP_00000002 is the same scan as labeled CT liver_1"):
        import_dataset("atlas", atlas, "liver", tmp_path / "data" / "liver", spacing=TARGET, append=True,
                       progress=False)
    assert (tmp_path / "data" / "liver" / "cases.csv").read_text() == before
    assert not list((tmp_path / "data" / "liver").glob(".import-staging-*"))
    # elsewhere on disk: named with --against
    assert main(["data", "import", "--format", "atlas", str(atlas), "--organ", "liver", "--out",
                 str(tmp_path / "elsewhere" / "h"), "--spacing", *map(str, TARGET), "--against",
                 str(tmp_path / "data" / "liver")]) == 2
    # the real healthy CT alone goes in
    for case in ("BDMAP_00000002", "BDMAP_00000003"):
        import shutil

        shutil.rmtree(atlas / case)
    import_dataset("atlas", atlas, "liver", tmp_path / "data" / "liver", spacing=TARGET, append=True, progress=False)
    assert Dataset.open(tmp_path / "data" / "liver").case_ids("healthy") == ["BDMAP_00000001"]


def test_atlas_ct_without_lesion_files_needs_assume_healthy(tmp_path, capsys):
    src = _atlas(tmp_path, ["liver"], n=2, lesion_case=False, lesion_files=False)
    out = tmp_path / "liver"
    with pytest.raises(InputError, match=r"no lesion mask \(liver_tumor.nii.gz, liver_lesion.nii.gz\) for 2 CT\(s\)"
                                         r" \(first BDMAP_00000001\).*--assume-healthy"):
        import_dataset("atlas", src, "liver", out, spacing=TARGET, progress=False)
    assert not out.exists()
    assert main(["data", "import", "--format", "atlas", str(src), "--organ", "liver", "--out", str(out),
                 "--spacing", *map(str, TARGET), "--assume-healthy"]) == 0
    assert Dataset.open(out).case_ids("healthy") == ["BDMAP_00000001", "BDMAP_00000002"]
