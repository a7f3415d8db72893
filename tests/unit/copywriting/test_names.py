"""misspelt_name: near misses of the brief's names are flagged, and repaired when unambiguous."""

from __future__ import annotations

import pytest

from copygen.copywriting.grounding import Evidence
from copygen.copywriting.names import edit_distance, max_distance, misspelt_names, repair_names
from copygen.domain import CopyBrief

NORTHWIND = Evidence.of(
    CopyBrief(product="Northwind rain jacket", description="A packable shell by Northwind.")
)
FITTRACK = Evidence.of(
    CopyBrief(
        product="FitTrack Pulse smart ring",
        description="A titanium ring from FitTrack that tracks sleep and heart rate.",
    )
)
TIDEWATER = Evidence.of(
    CopyBrief(
        product="Tidewater Kayak Tours",
        description="Guided sea-kayak tours along the estuary, run by Tidewater.",
    )
)
PETPAL = Evidence.of(CopyBrief(product="PetPal Veterinary Clinic"))
PIZZA = Evidence.of(CopyBrief(product="Maple Street Pizza", description="Wood-fired pizza."))
LUMEN = Evidence.of(CopyBrief(product="Lumen desk lamp", description="A dimmable desk lamp."))


def _written(text: str, evidence: Evidence) -> list[str]:
    return [flag.text for flag in misspelt_names(text, evidence)]


@pytest.mark.parametrize(
    ("text", "evidence", "flagged"),
    [
        # re-cased
        ("Stay dry with NorthWind", NORTHWIND, ["NorthWind"]),
        ("Sleep better with fittrack", FITTRACK, ["fittrack"]),
        ("FITTRACK PULSE: know your sleep", FITTRACK, ["FITTRACK PULSE"]),
        ("Slice into maple street pizza", PIZZA, ["maple street"]),
        # split and joined
        ("Fit Track Pulse Smart Ring", FITTRACK, ["Fit Track"]),
        ("North Wind jackets", NORTHWIND, ["North Wind"]),
        ("Order at MapleStreet tonight", PIZZA, ["MapleStreet"]),
        # letters off
        ("Northwinds keeps you dry", NORTHWIND, ["Northwinds"]),
        ("The Lumina Lamp", LUMEN, ["Lumina"]),
        # a different word where the name stands
        ("Tidal Kayak Rental", TIDEWATER, ["Tidal"]),
        ("PetPaws: your first step to wellness", PETPAL, ["PetPaws"]),
        ("PetPuppies: your best friend", PETPAL, ["PetPuppies"]),
    ],
)
def test_a_near_miss_of_a_name_is_flagged(
    text: str, evidence: Evidence, flagged: list[str]
) -> None:
    assert _written(text, evidence) == flagged


@pytest.mark.parametrize(
    ("text", "evidence"),
    [
        ("Northwind: stay dry on every trail", NORTHWIND),
        ("Northwind's lightest shell", NORTHWIND),
        ("FitTrack Pulse knows your pulse", FITTRACK),  # the ordinary word in lower case
        ("Guided Kayak Tours at sunrise", TIDEWATER),  # an ordinary word before "Kayak"
        ("Tidewater Kayak Tours", TIDEWATER),
        ("#FitTrackLife #fittrack", FITTRACK),  # hashtags join words by convention
        ("A lamp that lights up your desk", LUMEN),
        ("Park it at the Human Library", Evidence.of(CopyBrief(product="Parkly", language="en"))),
        ("Maple Street Pizza, wood-fired", PIZZA),
    ],
)
def test_the_exact_name_and_ordinary_words_pass(text: str, evidence: Evidence) -> None:
    assert _written(text, evidence) == []


@pytest.mark.parametrize(
    ("text", "evidence", "repaired"),
    [
        ("Stay dry with NorthWind", NORTHWIND, "Stay dry with Northwind"),
        ("Fit Track Pulse Smart Ring", FITTRACK, "FitTrack Pulse Smart Ring"),
        ("fittrack: sleep better", FITTRACK, "FitTrack: sleep better"),
        ("Tidal Kayak Rental", TIDEWATER, "Tidewater Kayak Rental"),
        ("Slice into maple street pizza", PIZZA, "Slice into Maple Street pizza"),
        ("PetPaws: your first step", PETPAL, "PetPal: your first step"),
        ("FITTRACK PULSE: sleep better", FITTRACK, "FitTrack Pulse: sleep better"),
    ],
)
def test_an_unambiguous_near_miss_is_repaired_to_the_exact_spelling(
    text: str, evidence: Evidence, repaired: str
) -> None:
    assert repair_names(text, evidence) == repaired
    assert misspelt_names(repaired, evidence) == ()


def test_a_different_brand_in_the_names_place_is_flagged_but_not_guessed() -> None:
    text = "PetPuppies: your best friend"
    assert repair_names(text, PETPAL) == text


def test_near_miss_distance_grows_with_the_name() -> None:
    assert [max_distance(name) for name in ("Oak", "Lumen", "Tidewater")] == [0, 2, 2]
    assert edit_distance("northwinds", "northwind") == 1
    assert edit_distance("nrothwind", "northwind") == 1  # two letters swapped
    assert edit_distance("lumina", "lumen") == 2
    assert edit_distance("abcdefgh", "zyxwvuts") == 3  # stops once over the limit
