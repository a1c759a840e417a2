"""Item texts from the user's own data: a side file, or a text column of the interactions file.

Both are the same table shape: an item-id column and a text column, in CSV, TSV or
Parquet. In an interactions file an item appears on many lines; its text must then be the
same on each (an empty field counts as "no text here" and never conflicts).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recft.errors import DataError

_SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
_COMPRESSIONS = (".gz", ".bz2", ".zip", ".xz", ".zst")


def read_item_texts(path: str | Path, item: str = "item_id", text: str = "text",
                    sep: str | None = None) -> dict[object, str]:
    """``{raw item id: text}`` from a .csv/.tsv (optionally compressed) or .parquet file.

    Args:
        path: the file; the first line of a CSV/TSV is its header.
        item: the item-id column (the same ids as the interactions).
        text: the text column (e.g. ``item_text`` in an interactions file).
        sep: field separator (default from the suffix).

    Returns:
        Every item of the file with its text (``""`` where it has none). Align it with a
        dataset by ``recft.text.texts_for_vocabulary(result, x.item_vocab)``.

    Raises:
        DataError: missing file or column (listing the columns found), an empty item id,
            or one item with two different texts; it names the file, line and field.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    suffixes = [s.lower() for s in path.suffixes]
    base = suffixes[-2] if len(suffixes) > 1 and suffixes[-1] in _COMPRESSIONS else (
        suffixes[-1] if suffixes else "")
    if base == ".parquet":
        try:
            frame = pd.read_parquet(path).astype(object)
        except Exception as error:  # pyarrow raises several types for corrupt files
            raise DataError(f"cannot read Parquet: {error}", path=path) from None
        first_line = None
    else:
        if sep is None and base not in _SEPARATORS:
            raise DataError(f"cannot tell the format from the suffix {''.join(suffixes)!r}; "
                            "use .csv, .tsv, .parquet (optionally .gz), or pass sep=", path=path)
        try:
            frame = pd.read_csv(path, sep=sep or _SEPARATORS[base], dtype=str,
                                keep_default_na=False, na_values=[], skip_blank_lines=False)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
            raise DataError(f"cannot parse: {error}", path=path) from None
        first_line = 2  # the header is line 1
    return item_texts_from_frame(frame, item, text, path=path, first_line=first_line)


def item_texts_from_frame(frame: pd.DataFrame, item: str = "item_id", text: str = "text", *,
                          path: Path | None = None,
                          first_line: int | None = None) -> dict[object, str]:
    """``{raw item id: text}`` from a DataFrame (errors name the row label, or the line)."""
    for column in (item, text):
        if column not in frame.columns:
            raise DataError(f"no column {column!r}; the columns are {list(frame.columns)}",
                            path=path, field=column)

    labels = frame.index.tolist()  # plain Python labels: messages show 6, not np.int64(6)

    def where(position: int) -> dict[str, object]:
        if first_line is not None:
            return {"path": path, "line": first_line + position}
        return {"path": path if path is not None else f"row {labels[position]!r}"}

    texts: dict[object, str] = {}
    source: dict[object, int] = {}  # position of the line each item's text came from
    for position, (raw, value) in enumerate(zip(frame[item].tolist(), frame[text].tolist())):
        if _is_missing(raw) or str(raw).strip() == "":
            raise DataError("empty item id", field=item, **where(position))
        key = raw.strip() if isinstance(raw, str) else raw
        value = "" if _is_missing(value) else " ".join(str(value).split())
        if not texts.get(key):  # first sighting, or every earlier line had an empty text
            texts[key] = value
            source[key] = position
        elif value and value != texts[key]:
            earlier = (f"on line {first_line + source[key]}" if first_line is not None
                       else f"at row {labels[source[key]]!r}")
            raise DataError(f"item {key!r} has another text than {earlier}", field=text,
                            **where(position))
    return texts


def _is_missing(value: object) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))
