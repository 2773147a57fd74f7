"""ml.keys: every notation, both ways, for all 24 keys; enharmonics; clear errors."""

import pytest

from ml.keys import ALL_KEYS, NOTATIONS, Key, KeyParseError, Mode

CAMELOT = {
    "8B": "C major",
    "9B": "G major",
    "10B": "D major",
    "11B": "A major",
    "12B": "E major",
    "1B": "B major",
    "2B": "F# major",
    "3B": "Db major",
    "4B": "Ab major",
    "5B": "Eb major",
    "6B": "Bb major",
    "7B": "F major",
    "8A": "A minor",
    "9A": "E minor",
    "10A": "B minor",
    "11A": "F# minor",
    "12A": "C# minor",
    "1A": "Ab minor",
    "2A": "Eb minor",
    "3A": "Bb minor",
    "4A": "F minor",
    "5A": "C minor",
    "6A": "G minor",
    "7A": "D minor",
}


def test_index_order_is_majors_then_minors():
    assert [k.index for k in ALL_KEYS] == list(range(24))
    assert ALL_KEYS[0] == Key(tonic=0, mode=Mode.MAJOR)
    assert ALL_KEYS[21] == Key(tonic=9, mode=Mode.MINOR)


@pytest.mark.parametrize("key", ALL_KEYS, ids=str)
@pytest.mark.parametrize("notation", NOTATIONS)
def test_every_notation_round_trips(key, notation):
    text = key.to(notation)
    reader = {
        "mir_eval": Key.from_mir_eval,
        "camelot": Key.from_camelot,
        "open_key": Key.from_open_key,
        "jams": Key.from_jams,
        "id3": Key.from_id3,
    }[notation]
    assert reader(text) == key
    assert Key.parse(text) == key


@pytest.mark.parametrize(("camelot", "mir_eval"), CAMELOT.items())
def test_camelot_table(camelot, mir_eval):
    assert Key.from_camelot(camelot) == Key.from_mir_eval(mir_eval)
    assert Key.from_mir_eval(mir_eval).camelot == camelot


def test_open_key_is_camelot_minus_seven():
    assert Key.from_open_key("1d") == Key.from_mir_eval("C major")
    assert Key.from_open_key("1m") == Key.from_mir_eval("A minor")
    for key in ALL_KEYS:
        camelot_number = int(key.camelot[:-1])
        open_number = int(key.open_key[:-1])
        assert (open_number + 7 - 1) % 12 + 1 == camelot_number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Gb major", "F# major"),
        ("gb major", "F# major"),
        ("C# major", "Db major"),
        ("D# minor", "Eb minor"),
        ("Ab minor", "G# minor"),
        ("A# minor", "Bb minor"),
        ("Cb major", "B major"),
        ("E# minor", "F minor"),
        ("db major", "Db major"),
        ("Abm", "G# minor"),
        ("Eb\tminor", "Eb minor"),
        ("A min", "A minor"),
        ("F#:minor", "F# minor"),
        ("D:major", "D major"),
        ("Dbm", "C# minor"),
        ("B", "B major"),
    ],
)
def test_enharmonic_and_peer_spellings(text, expected):
    assert Key.parse(text).mir_eval == expected


def test_relations():
    c_major = Key.from_mir_eval("C major")
    assert c_major.relative == Key.from_mir_eval("A minor")
    assert c_major.parallel == Key.from_mir_eval("C minor")
    assert c_major.transpose(7) == Key.from_mir_eval("G major")
    assert c_major.transpose(-1) == Key.from_mir_eval("B major")
    for key in ALL_KEYS:
        assert key.relative.relative == key
        assert key.relative.camelot[:-1] == key.camelot[:-1]


def test_jams_no_key_and_modes():
    assert Key.from_jams("N") is None
    assert Key.from_jams("A:aeolian") == Key.from_mir_eval("A minor")
    assert Key.from_jams("G") == Key.from_mir_eval("G major")
    with pytest.raises(KeyParseError, match="dorian"):
        Key.from_jams("D:dorian")


@pytest.mark.parametrize(
    "bad", ["H major", "C mixolydian", "13A", "0B", "8C", "", "   ", "C##", "Cmm", "N", "X"]
)
def test_unknown_input_raises_clear_error(bad):
    with pytest.raises(KeyParseError) as error:
        Key.parse(bad)
    assert repr(bad) in str(error.value) or "empty" in str(error.value) or "no key" in str(error.value)


@pytest.mark.parametrize("bad", [-1, 12, 3.5])
def test_invalid_tonic(bad):
    with pytest.raises(KeyParseError):
        Key(tonic=bad, mode=Mode.MAJOR)


def test_unknown_notation():
    with pytest.raises(KeyParseError, match="unknown notation"):
        Key.from_index(0).to("solfege")
