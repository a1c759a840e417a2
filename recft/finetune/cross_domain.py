"""Transfer across domains whose ids share nothing: movies -> music, through item text.

A movies base and a music target have no user and no item in common, so only what the
items *say* can carry over: the base reads every item's text (``item_text``), and the
target's artists are encoded by the same sentence encoder into the same space. Zero-shot
through text is then possible: the target's users are represented by the projected text
of the artists they listened to, and artists are ranked by theirs.

Both datasets number their users and items with small integers, so their raw ids would
collide (MovieLens user 5 is not Last.fm user 5); ``namespaced`` prefixes them, making the
two vocabularies disjoint as they are in reality.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from recft.data.interactions import Interactions
from recft.data.vocabulary import Vocabulary
from recft.finetune.scenarios import Scenario

#: The sentence encoder both domains are read with (recft.text; weights from the lock).
CROSS_DOMAIN_ENCODER = "all-MiniLM-L6-v2"


def namespaced(data: Interactions, prefix: str) -> Interactions:
    """``data`` with raw ids ``"<prefix>-user:<id>"`` and ``"<prefix>:<id>"``; rows, features
    and texts unchanged (only the names of the ids change)."""
    users = np.asarray([f"{prefix}-user:{u}" for u in data.user_vocab.ids.tolist()], dtype=object)
    items = np.asarray([f"{prefix}:{i}" for i in data.item_vocab.ids.tolist()], dtype=object)
    return dataclasses.replace(
        data, user_vocab=Vocabulary(users, name=data.user_vocab.name),
        item_vocab=Vocabulary(items, name=data.item_vocab.name))


def movies_to_music_scenario(data_dir: str | Path | None = None, seed: int = 0) -> Scenario:
    """Pretrain on ml-latest-small (ids + text), fine-tune on lastfm-2k (no shared id).

    The target is every lastfm-2k user, split per user 80/10/10 (``seed`` varies the split
    and training); play counts are weighted by log1p like the music preset.
    """
    from recft.data.registry import load

    source = namespaced(load("ml-latest-small", data_dir=data_dir), "movie")
    target = namespaced(load("lastfm-2k", data_dir=data_dir), "music")
    return Scenario(
        name="movies-to-music", source=source, target=target,
        split_spec="random:0.8,0.1,0.1",
        description="ml-latest-small (ids + item text) -> lastfm-2k: no user or item id "
                    f"shared, items read by {CROSS_DOMAIN_ENCODER}; play counts weighted by "
                    "log1p; random 80/10/10 split of the target",
        recipe_overrides={"sample_weighting": "log1p"},
        item_text="id+text", text_encoder=CROSS_DOMAIN_ENCODER,
    )
