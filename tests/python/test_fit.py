"""The steps-to-target fit S(B) = S_min + E_min/B, and the target crossing
placed between evaluations (--interpolate), eval lines included."""

import pytest

from mpitrain_study.fit import fit_steps_to_target
from mpitrain_study.runs import interpolate_crossing

B = [32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]


def test_fit_on_exact_points():
    fit = fit_steps_to_target(B, [100 + 12800 / b for b in B])
    assert fit["s_min"] == pytest.approx(100, abs=1e-6)
    assert fit["e_min"] == pytest.approx(12800, abs=1e-6)
    assert fit["b_crit"] == pytest.approx(128, abs=1e-6)
    assert fit["r2"] == pytest.approx(1, abs=1e-9)
    assert fit["problem"] is None and fit["n"] == len(B)


def test_relative_weights_recover_exact_points_too():
    rel = fit_steps_to_target(B, [100 + 12800 / b for b in B], relative=True)
    assert rel["b_crit"] == pytest.approx(128, abs=1e-6)


def test_fewer_than_three_batches_give_no_fit():
    assert fit_steps_to_target([64, 128], [300, 200]) is None
    assert fit_steps_to_target([64, 64, 128], [300, 310, 200]) is None


def test_steps_that_grow_with_b_are_flagged():
    rising = fit_steps_to_target([64, 128, 256], [100, 120, 150])
    assert rising["e_min"] < 0 and rising["problem"].startswith("E_min <= 0")


def test_a_negative_s_min_is_flagged():
    perfect = fit_steps_to_target([64, 128, 256], [400, 190, 90])
    assert perfect["s_min"] < 0 and perfect["problem"].startswith("S_min <= 0")


EPOCHS = [dict(epoch=1, step=100, samples=6400, time_s=1.0, test_acc=0.80),
          dict(epoch=2, step=200, samples=12800, time_s=3.0, test_acc=0.90)]


def test_crossing_half_way_between_evaluations():
    # test_acc 0.80 after epoch 1 (step 100), 0.90 after epoch 2 (step 200):
    # the target 0.85 is crossed half-way, at step 150.
    got = interpolate_crossing(dict(target="test_acc>=0.85", target_epoch=2, epochs=EPOCHS))
    assert [round(v, 9) for v in got] == [150.0, 9600.0, 2.0]


def test_crossing_of_a_falling_metric():
    epochs = [dict(epoch=1, step=10, samples=10, time_s=1.0, test_loss=0.9),
              dict(epoch=2, step=20, samples=20, time_s=2.0, test_loss=0.4)]
    got = interpolate_crossing(dict(target="test_loss<=0.5", target_epoch=2, epochs=epochs))
    assert [round(v, 9) for v in got] == [18.0, 18.0, 1.8]


def test_no_crossing_before_the_first_evaluation_or_without_the_metric():
    assert interpolate_crossing(dict(target="test_acc>=0.85", target_epoch=1, epochs=EPOCHS)) is None
    assert interpolate_crossing(dict(target="val_acc>=0.85", target_epoch=2, epochs=EPOCHS)) is None
    assert interpolate_crossing(dict(target="garbled", target_epoch=2, epochs=EPOCHS)) is None


def test_crossing_between_eval_lines_not_from_the_epoch_end():
    # Epoch 1 ends at step 100 (0.80); eval lines at 125 (0.82) and 150 (0.86): the target 0.85 held first at
    # step 150 (recorded there, S=150) and is crossed 3/4 of the way from 125, at step 143.75, not between
    # the epoch ends.
    evals = [dict(type="eval", epoch=2, step=125, samples=8000, time_s=1.5, test_acc=0.82),
             dict(type="eval", epoch=2, step=150, samples=9600, time_s=2.0, test_acc=0.86)]
    got = interpolate_crossing(dict(target="test_acc>=0.85", S=150, target_epoch=2, epochs=EPOCHS, evals=evals))
    assert [round(v, 9) for v in got] == [143.75, 9200.0, 1.875]


def test_crossing_at_an_epoch_end_after_eval_lines():
    # The target held first at the epoch end (step 200, 0.90), after an eval at 150 (0.84): 1/6 of the way.
    evals = [dict(type="eval", epoch=2, step=150, samples=9600, time_s=2.0, test_acc=0.84)]
    got = interpolate_crossing(dict(target="test_acc>=0.85", S=200, target_epoch=2, epochs=EPOCHS, evals=evals))
    assert got == pytest.approx((150 + 50 / 6, 9600 + 3200 / 6, 2 + 1 / 6))


def test_crossing_at_the_first_eval_line_of_the_run():
    evals = [dict(type="eval", epoch=1, step=50, samples=3200, time_s=0.5, test_acc=0.86)]
    assert interpolate_crossing(dict(target="test_acc>=0.85", S=50, target_epoch=1, epochs=EPOCHS,
                                     evals=evals)) is None
