"""A small M3A release written in the release's exact file formats, for tests and smoke runs.

It has the quirks of the real release: a company name with ``&`` (``_`` in its folder), a
label row that repeats an earlier call, a label row whose call folder is absent, and empty
audio cells.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .data import AUDIO_DIM, TEXT_DIM


def write_m3a_fixture(root: str | Path, *, n_calls: int = 24, n_test: int = 6, max_utterances: int = 9,
                      seed: int = 0) -> Path:
    """Write a release with ``n_calls`` call folders under ``root/m3a``; return that folder.

    Labels depend on the mean of the first text feature, so a model can learn them. The last
    ``n_test`` calls by date form the test split, as in the release, whose test calls are its latest.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "m3a"
    dataset = folder / "Dataset"
    dataset.mkdir(parents=True, exist_ok=True)
    audio_names = [f"eGeMAPS_feature_{i}" for i in range(AUDIO_DIM)]
    rows = []
    for index in range(n_calls):
        company = "Smith&Sons" if index == 1 else f"Company{index}"
        stem = f"A_Buyer{index}_{company}"
        day = pd.Timestamp("2017-01-02") + pd.Timedelta(days=7 * index)
        call_folder = dataset / f"{stem.replace('&', '_')}_{day.date().isoformat()}"
        call_folder.mkdir(exist_ok=True)
        n = int(rng.integers(3, max_utterances + 1))
        text = rng.normal(size=(n, TEXT_DIM)).round(6)
        text[:, 0] += rng.normal()
        speaker = rng.integers(0, 4, size=n)
        text_frame = pd.DataFrame(text, columns=[str(i) for i in range(1, TEXT_DIM + 1)])
        text_frame.insert(0, "Speaker", speaker)
        text_frame.to_csv(call_folder / "Text.csv")
        audio = pd.DataFrame(rng.normal(size=(n, AUDIO_DIM)).round(6), columns=audio_names)
        if index % 5 == 2:
            audio.iloc[0, :] = np.nan  # an utterance without audio
            audio.iloc[-1, 3] = np.nan  # one empty cell
        audio.to_csv(call_folder / "Audio.csv")
        signal = float(text[:, 0].mean())
        rows.append({
            "File Name": f"{stem}.pdf",
            "Date": f"{day.month}/{day.day}/{day.year}",
            "volatility": [3.5 + 0.5 * signal + 0.05 * h for h in (0, 1, 2)],
            "movement": [int(signal > 0), int(signal > 0.1), int(signal > -0.1)],
        })
    rows.append({**rows[3]})  # a repeated call, as the release repeats four
    rows.append({"File Name": "A_Nobody_NoFolder.pdf", "Date": "3/4/2018", "volatility": [3.0, 3.1, 3.2],
                 "movement": [1, 0, 1]})  # a row with no call folder
    names = [r["File Name"] for r in rows]
    dates = [r["Date"] for r in rows]
    vol = pd.DataFrame({"File Name": names, "Date": dates})
    mov = vol.copy()
    for h, column in enumerate(("vFuture3", "vFuture7", "vFuture15")):
        vol[column] = [r["volatility"][h] for r in rows]
    for h, column in enumerate(("YT3", "YT7", "YT15")):
        mov[column] = [r["movement"][h] for r in rows]
    vol.to_csv(folder / "Y_Volatility.csv", index=False)
    mov.to_csv(folder / "Y_Movement.csv", index=False)
    train = list(range(n_calls - n_test)) + [n_calls, n_calls + 1]
    pd.DataFrame({"index": train}).to_csv(folder / "Train_index.csv", index=False)
    pd.DataFrame({"index": list(range(n_calls - n_test, n_calls))}).to_csv(folder / "Test_index.csv", index=False)
    return folder
