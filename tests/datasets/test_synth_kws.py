"""synth-kws: a real espeak-ng + sox run into the Speech Commands layout, read back by the loader."""

import json
import shutil
import wave

import pytest

from lmu2neuro.cli import main
from lmu2neuro.datasets import get_dataset
from lmu2neuro.datasets.synth_kws import make_speakers, split_speakers
from lmu2neuro.core.errors import UserError

needs_tools = pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None,
                                 reason="espeak-ng and sox are needed to synthesise speech")


@needs_tools
def test_generate_two_words_and_load(tmp_path, capsys):
    out = tmp_path / "kws"
    assert main(["synth-kws", "--out", str(out), "--words", "yes,no", "--per-word", "4", "--seed", "1"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["clips"] == 8 and summary["training"] + summary["validation"] + summary["testing"] == 8
    wavs = sorted(out.glob("*/*_nohash_0.wav"))
    assert len(wavs) == 8
    with wave.open(str(wavs[0])) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 16000, 16000)
    val = (out / "validation_list.txt").read_text().split()
    test = (out / "testing_list.txt").read_text().split()
    assert val and test and not set(val) & set(test)
    speaker = lambda rel: rel.split("/")[1].split("_")[0]
    # split by speaker: a speaker is in one split only, and says every word
    assert not {speaker(r) for r in val} & {speaker(r) for r in test}
    assert sorted(r.split("/")[0] for r in val) == ["no", "yes"]
    d = get_dataset("synth-kws", root=out, n_mels=40, target_length=100)
    assert d.class_names == ["no", "yes"] and (len(d.train), len(d.val), len(d.test)) == (4, 2, 2)
    x, _ = d.train[0]
    assert x.shape == (100, 40) and float(x[:98].std()) > 0.05  # speech, not silence
    # the same seed writes the same audio
    again = tmp_path / "again"
    main(["synth-kws", "--out", str(again), "--words", "yes,no", "--per-word", "4", "--seed", "1"])
    assert (again / wavs[0].relative_to(out)).read_bytes() == wavs[0].read_bytes()


def test_speakers_are_distinct_and_split_disjoint():
    speakers = make_speakers(20, seed=0)
    assert len({s.id for s in speakers}) == 20
    train, val, test = split_speakers(speakers, seed=0)
    assert len(val) == 2 and len(test) == 2 and len(train) == 16
    assert not (set(train) & set(val)) and not (set(val) & set(test)) and not (set(train) & set(test))


@needs_tools
def test_bad_arguments(tmp_path):
    from lmu2neuro.datasets.synth_kws import generate

    with pytest.raises(UserError, match="--per-word 2: expected at least 3"):
        generate(tmp_path, ["yes"], per_word=2)
    with pytest.raises(UserError, match="--words"):
        generate(tmp_path, ["yes", "yes"], per_word=3)
    (tmp_path / "old.wav").write_bytes(b"")
    with pytest.raises(UserError, match="exists and is not an empty folder"):
        generate(tmp_path, ["yes"], per_word=3)
    with pytest.raises(UserError, match="synth-kws --out DIR"):
        get_dataset("synth-kws")
