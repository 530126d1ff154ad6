"""Physical units: the same physical lesions and predictions drawn on a 1 mm and a 3 mm grid get
the same detection answers (lesion hits, counted lesions, patient calls), and the patient call
follows the official DiffTumor rule (tumor AND organ at 1 mm, 3x3x3 erosion, > th mm³)."""
import numpy as np
import pytest

from benchmark.metrics import evaluate_case
from benchmark.patient_detection import eroded_tumor_mm3, patient_call

FOV_MM = (72, 72, 72)
ORGAN_MM = ((6, 66), (6, 66), (6, 66))
# (low corner, size) in mm, listed in raster order of the lesions found; every edge a multiple of 3 mm so both grids draw them exactly
REF_LESIONS_MM = [((12, 12, 12), (9, 9, 9)),     # 729 mm^3, r 5.6 mm
                  ((36, 12, 12), (6, 6, 3)),     # 108 mm^3, r 3.0 mm: one 3 mm voxel would be 27 mm^3
                  ((12, 42, 42), (15, 15, 15))]  # 3375 mm^3
PRED_MM = [((15, 15, 15), (6, 6, 3)),   # overlaps lesion 1 with 108 mm^3 (4 voxels at 3 mm)
           ((36, 12, 12), (3, 3, 3)),   # overlaps lesion 2 with 27 mm^3 (1 voxel at 3 mm)
           ((45, 45, 45), (12, 12, 12))]  # 1728 mm^3 false positive: patient positive


def draw(boxes_mm, spacing_mm: float, value: int, labels: np.ndarray) -> np.ndarray:
    for low, size in boxes_mm:
        labels[tuple(slice(round(a / spacing_mm), round((a + n) / spacing_mm)) for a, n in zip(low, size))] = value
    return labels


def case(spacing_mm: float, pred_boxes=PRED_MM):
    shape = tuple(round(f / spacing_mm) for f in FOV_MM)
    organ = draw([(tuple(a for a, _ in ORGAN_MM), tuple(b - a for a, b in ORGAN_MM))], spacing_mm, 1,
                 np.zeros(shape, np.uint8))
    return draw(pred_boxes, spacing_mm, 2, organ.copy()), draw(REF_LESIONS_MM, spacing_mm, 2, organ.copy())


def answers(result):
    return ([round(les["volume_mm3"]) for les in result["lesions"]], [les["detected"] for les in result["lesions"]],
            [round(fp["volume_mm3"]) for fp in result["false_positives"]], result["pred_has_tumor"])


def test_same_physical_lesions_give_the_same_answers_on_1mm_and_3mm_grids():
    fine = evaluate_case(*case(1.0), (1.0, 1.0, 1.0))
    coarse = evaluate_case(*case(3.0), (3.0, 3.0, 3.0))
    assert answers(fine) == answers(coarse) == ([729, 3375, 108], [True, False, True], [1728], True)
    assert fine["pred_tumor_eroded_mm3"] == coarse["pred_tumor_eroded_mm3"]  # same 1 mm erosion on both


def test_small_predictions_alone_give_the_same_negative_patient_call_on_both_grids():
    """Only the two small overlapping calls: hits on both grids, and the official rule calls the
    patient negative on both (108 mm^3 erodes to 4x4x1 = 16 mm^3, the 3 mm cube to 1 mm^3: 17 <= 70)."""
    small = PRED_MM[:2]
    fine = evaluate_case(*case(1.0, small), (1.0, 1.0, 1.0))
    coarse = evaluate_case(*case(3.0, small), (3.0, 3.0, 3.0))
    assert answers(fine) == answers(coarse) == ([729, 3375, 108], [True, False, True], [], False)
    assert fine["pred_tumor_eroded_mm3"] == coarse["pred_tumor_eroded_mm3"] == 17.0


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.5, 0.5, 0.5), (3.0, 3.0, 3.0)])
def test_official_patient_rule_erodes_one_mm_at_1mm_whatever_the_grid(spacing):
    """A 6 mm cube is 216 mm^3; at 1 mm the 3x3x3 erosion leaves a 4 mm cube = 64 mm^3, so it is
    negative at th 70 and positive at th 30 (the official README example) on every grid."""
    shape = tuple(round(30 / s) for s in spacing)
    tumor = np.zeros(shape, bool)
    tumor[tuple(slice(round(12 / s), round(18 / s)) for s in spacing)] = True
    organ = np.ones(shape, bool)
    assert eroded_tumor_mm3(tumor, organ, spacing) == 64.0
    assert patient_call(tumor, organ, spacing) == (False, 64.0)
    assert patient_call(tumor, organ, spacing, threshold_mm3=30.0) == (True, 64.0)
    assert patient_call(tumor, np.zeros(shape, bool), spacing) == (False, 0.0)  # tumor AND organ
