"""Words to speakers, segments re-cut at speaker changes, speakers renamed in order."""

from __future__ import annotations

from proxyai.pipeline.align import assign_speakers, rename_in_order, speaker_for, speakers_in_order
from proxyai.pipeline.asr import Segment, Word
from proxyai.pipeline.diarize import Turn

TURNS = [Turn(0.0, 4.0, "A"), Turn(5.0, 9.0, "B"), Turn(10.0, 14.0, "A")]


def words(*spans: tuple[float, float, str]) -> list[Word]:
    return [Word(s, e, f" {w}", 0.9) for s, e, w in spans]


def segment(*spans: tuple[float, float, str], channel: int | None = None) -> Segment:
    ws = words(*spans)
    return Segment(ws[0].start, ws[-1].end, "".join(w.word for w in ws).strip(), ws, channel=channel)


# --- speaker_for -------------------------------------------------------------------------------


def test_word_inside_turn() -> None:
    assert speaker_for(1.0, 1.5, TURNS) == "A"
    assert speaker_for(6.0, 6.4, TURNS) == "B"
    assert speaker_for(12.0, 12.5, TURNS) == "A"


def test_word_overlapping_two_turns_takes_larger_overlap() -> None:
    turns = [Turn(0.0, 3.0, "A"), Turn(3.0, 6.0, "B")]
    assert speaker_for(2.0, 3.4, turns) == "A"  # 1.0 s with A, 0.4 s with B
    assert speaker_for(2.8, 4.0, turns) == "B"  # 0.2 s with A, 1.0 s with B


def test_word_in_gap_takes_nearest_turn() -> None:
    assert speaker_for(4.1, 4.3, TURNS) == "A"  # 0.1 s after A, 0.7 s before B
    assert speaker_for(4.7, 4.9, TURNS) == "B"
    assert speaker_for(9.1, 9.2, TURNS) == "B"
    assert speaker_for(9.8, 9.9, TURNS) == "A"


def test_word_before_first_and_after_last_turn() -> None:
    assert speaker_for(-1.0, -0.5, [Turn(1.0, 2.0, "X"), Turn(3.0, 4.0, "Y")]) == "X"
    assert speaker_for(20.0, 21.0, TURNS) == "A"


def test_nearest_turn_found_behind_shorter_turns() -> None:
    # B is long and starts first; C is short and ends just before the word; nearest is C
    turns = [Turn(0.0, 2.0, "B"), Turn(2.5, 5.0, "C"), Turn(8.0, 9.0, "D")]
    assert speaker_for(5.1, 5.3, turns) == "C"


def test_nearest_turn_is_a_long_turn_that_started_early() -> None:
    # A talks from 0 to 10 s while B and C cut in briefly (overlapping turns, as pyannote gives);
    # a word just after A's turn ended is 0.1 s from A and 6 s from C
    turns = [Turn(0.0, 10.0, "A"), Turn(1.0, 2.0, "B"), Turn(3.0, 4.0, "C"), Turn(20.0, 21.0, "D")]
    assert speaker_for(10.1, 10.2, turns) == "A"


def test_overlapping_turns() -> None:
    # a word after a short interjection inside a long turn overlaps only the long turn
    turns = [Turn(0.0, 10.0, "A"), Turn(4.0, 5.0, "B")]
    assert speaker_for(6.0, 6.5, turns) == "A"
    assert speaker_for(4.0, 5.5, turns) == "A"  # A: 1.5 s, B: 1.0 s
    # the overlap is summed per speaker
    turns = [Turn(0.0, 2.0, "A"), Turn(1.0, 1.6, "B"), Turn(1.7, 2.5, "B")]
    assert speaker_for(1.0, 2.4, turns) == "B"  # B: 0.6 + 0.7 = 1.3 s, A: 1.0 s


def test_no_turns() -> None:
    assert speaker_for(0.0, 1.0, []) is None


# --- assign_speakers ---------------------------------------------------------------------------


def test_words_inside_turns_get_speaker() -> None:
    seg = segment((0.5, 0.9, "hello"), (1.0, 1.4, "there"), (1.5, 2.0, "friend"))
    out = assign_speakers([seg], TURNS)
    assert len(out) == 1
    assert out[0].speaker == "A"
    assert [w.speaker for w in out[0].words] == ["A", "A", "A"]
    assert out[0].text == "hello there friend"
    assert (out[0].start, out[0].end) == (0.5, 2.0)


def test_segment_cut_at_speaker_change() -> None:
    seg = segment((3.0, 3.4, "are"), (3.5, 3.9, "you"), (5.1, 5.4, "yes"), (5.5, 5.9, "I"), (6.0, 6.3, "am"))
    out = assign_speakers([seg], TURNS)
    assert [s.speaker for s in out] == ["A", "B"]
    assert [s.text for s in out] == ["are you", "yes I am"]
    assert (out[0].start, out[0].end) == (3.0, 3.9)
    assert (out[1].start, out[1].end) == (5.1, 6.3)
    for s in out:
        assert {w.speaker for w in s.words} == {s.speaker}
    # no word lost, none duplicated, probabilities kept
    assert [w.word for s in out for w in s.words] == [w.word for w in seg.words]
    assert all(w.probability == 0.9 for s in out for w in s.words)


def test_segment_switching_back_and_forth() -> None:
    seg = segment((3.5, 3.9, "one"), (5.5, 5.9, "two"), (10.5, 10.9, "three"))
    out = assign_speakers([seg], TURNS)
    assert [s.speaker for s in out] == ["A", "B", "A"]
    assert [s.text for s in out] == ["one", "two", "three"]


def test_segment_cut_at_long_pause() -> None:
    turns = [Turn(0.0, 20.0, "A")]
    seg = segment((0.0, 0.5, "before"), (0.6, 1.0, "the"), (5.0, 5.5, "pause"))
    out = assign_speakers([seg], turns)
    assert [s.text for s in out] == ["before the", "pause"]
    assert len(assign_speakers([seg], turns, max_pause=10.0)) == 1


def test_segments_sorted_and_channel_kept() -> None:
    late = segment((10.5, 11.0, "late"), channel=1)
    early = segment((0.5, 1.0, "early"), channel=0)
    out = assign_speakers([late, early], TURNS)
    assert [s.text for s in out] == ["early", "late"]
    assert [s.channel for s in out] == [0, 1]


def test_words_with_a_speaker_keep_it() -> None:
    ws = [Word(0.5, 1.0, " mine", 0.9, speaker="CH1"), Word(1.1, 1.5, " too", 0.9)]
    out = assign_speakers([Segment(0.5, 1.5, "mine too", ws)], TURNS)
    assert [s.speaker for s in out] == ["CH1", "A"]


def test_segment_speaker_applies_to_its_words() -> None:
    seg = segment((5.5, 6.0, "channel"), (6.1, 6.5, "speech"))
    seg.speaker = "CH0"
    out = assign_speakers([seg], TURNS)
    assert len(out) == 1
    assert out[0].speaker == "CH0"
    assert all(w.speaker == "CH0" for w in out[0].words)


def test_segment_without_words() -> None:
    out = assign_speakers([Segment(5.5, 8.0, " no words here", [])], TURNS)
    assert len(out) == 1
    assert out[0].speaker == "B"
    assert out[0].text == "no words here"
    assert (out[0].start, out[0].end) == (5.5, 8.0)


def test_unsorted_turns() -> None:
    seg = segment((6.0, 6.5, "b"), (11.0, 11.5, "a"))
    out = assign_speakers([seg], list(reversed(TURNS)))
    assert [s.speaker for s in out] == ["B", "A"]


def test_without_turns_speakers_stay_empty() -> None:
    seg = segment((0.5, 1.0, "hello"), (1.1, 1.5, "world"))
    out = assign_speakers([seg], [])
    assert len(out) == 1
    assert out[0].speaker is None
    assert out[0].text == "hello world"


def test_input_not_modified() -> None:
    seg = segment((3.5, 3.9, "one"), (5.5, 5.9, "two"))
    assign_speakers([seg], TURNS)
    assert seg.speaker is None
    assert all(w.speaker is None for w in seg.words)


# --- renaming ----------------------------------------------------------------------------------


def test_rename_in_order_of_transcript() -> None:
    turns = [Turn(0.0, 2.0, "SPEAKER_01"), Turn(2.0, 5.0, "SPEAKER_00"), Turn(6.0, 8.0, "SPEAKER_02")]
    # nothing was said in the first turn: the transcript starts with SPEAKER_00's words
    segs = assign_speakers([segment((2.5, 3.0, "first"), (6.5, 7.0, "second"))], turns)
    new_segs, new_turns = rename_in_order(segs, turns)
    assert [s.speaker for s in new_segs] == ["SPEAKER_00", "SPEAKER_01"]
    assert [w.speaker for s in new_segs for w in s.words] == ["SPEAKER_00", "SPEAKER_01"]
    # the same people in the turns; the silent one comes last
    assert [t.speaker for t in new_turns] == ["SPEAKER_02", "SPEAKER_00", "SPEAKER_01"]
    assert [(t.start, t.end) for t in new_turns] == [(t.start, t.end) for t in turns]
    assert [s.text for s in new_segs] == ["first", "second"]


def test_rename_keeps_unassigned() -> None:
    segs = [Segment(0.0, 1.0, "x", [Word(0.0, 1.0, "x", 1.0)])]
    new_segs, new_turns = rename_in_order(segs, [])
    assert new_segs[0].speaker is None
    assert new_segs[0].words[0].speaker is None
    assert new_turns == []


def test_speakers_in_order() -> None:
    segs = [Segment(0.0, 1.0, "a", speaker="Z"), Segment(1.0, 2.0, "b", speaker="Y"), Segment(2.0, 3.0, "c")]
    turns = [Turn(5.0, 6.0, "X"), Turn(0.0, 1.0, "Z"), Turn(3.0, 4.0, "W")]
    assert speakers_in_order(segs, turns) == ["Z", "Y", "W", "X"]
