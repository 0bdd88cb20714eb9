"""Dataset loaders on the real-format files in ../shared/datasets, the cache, and bad input.

Every test works in a temporary data dir; downloads are never attempted (download=False or
BENCHMARK_OFFLINE).
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import place_raw, shared_dataset

from benchmark.data import (
    DatasetError,
    MissingRawData,
    UnknownDataset,
    dataset_names,
    get_dataset,
    load_split,
)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("BENCHMARK_OFFLINE", "1")


def zip_dir(src: Path, archive: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, prefix + p.relative_to(src).as_posix())
    return archive


def read_netflix_by_hand(paths: list[Path]) -> pd.DataFrame:
    """The format read line by line in plain Python: the reference for the fast parser."""
    rows, movie = [], None
    for path in paths:
        for line in path.read_text().splitlines():
            if line.endswith(":"):
                movie = int(line[:-1])
            elif line:
                customer, rating, _date = line.split(",")
                rows.append((int(customer), movie, int(rating)))
    return pd.DataFrame(rows, columns=["user", "item", "rating"])


# --- the built-in loaders on real files ----------------------------------------------------
def test_registry_lists_every_dataset_with_source_and_description():
    names = dataset_names()
    for name in ("synthetic", "ml-100k", "ml-1m", "ml-20m", "netflix", "msd", "lastfm"):
        assert name in names
        spec = get_dataset(name)
        assert spec.name == name and spec.description and spec.source
    expected = {"ml-20m": 10_000, "netflix": 40_000, "msd": 50_000, "ml-1m": 600, "ml-100k": 100, "lastfm": 200}
    for name, n in expected.items():
        assert get_dataset(name).protocol.n_heldout == n
    msd = get_dataset("msd").protocol
    assert (msd.min_rating, msd.min_item_users, msd.min_user_items) == (None, 200, 20)
    assert get_dataset("netflix").fetch is None
    assert all(get_dataset(n).fetch is not None for n in ("ml-100k", "ml-1m", "ml-20m", "lastfm", "msd"))


def test_ml100k_prepare_gives_the_published_counts(data_dir):
    place_raw(data_dir, "ml-100k", "ml-100k")
    s = load_split("ml-100k", data_dir=data_dir, download=False).stats()
    assert s["users"] == 938
    assert s["interactions"] == 55_361
    assert s["items_after_filter"] == 1_447
    assert s["items"] <= 1_447  # the catalogue of the training users
    assert (s["train_users"], s["valid_users"], s["test_users"]) == (738, 100, 100)


def test_ml20m_excerpt_and_zip_in_place(data_dir):
    raw = place_raw(data_dir, "ml-20m", "ml-20m-excerpt")
    spec = get_dataset("ml-20m")
    df = spec.read_raw(raw)
    assert len(df) == 9  # header skipped, CRLF handled
    assert df.iloc[0].tolist()[:3] == [1, 2, 3.5] and df.iloc[-1].tolist()[:3] == [1, 253, 4.0]
    assert list(df.columns) == ["user", "item", "rating", "timestamp"]  # kept: --protocol temporal
    assert df["user"].dtype == np.int32 and df["rating"].dtype == np.float32
    # the official archive, not unzipped, works the same way
    zdir = data_dir / "z" / "raw"
    zdir.mkdir(parents=True)
    zip_dir(raw / "ml-20m-excerpt", zdir / "ml-20m.zip", prefix="ml-20m/")
    assert spec.raw_present(zdir) and spec.raw_files(zdir) == [zdir / "ml-20m.zip"]
    pd.testing.assert_frame_equal(spec.read_raw(zdir), df)


def test_ml1m_double_colon_format(tmp_path):
    raw = tmp_path / "raw" / "ml-1m"
    raw.mkdir(parents=True)
    # the first lines of ml-1m/ratings.dat (UserID::MovieID::Rating::Timestamp)
    (raw / "ratings.dat").write_text(
        "1::1193::5::978300760\n1::661::3::978302109\n1::914::3::978301968\n2::1357::5::978298709\n"
    )
    df = get_dataset("ml-1m").read_raw(tmp_path / "raw")
    assert df[["user", "item", "rating"]].to_numpy().tolist() == [[1, 1193, 5], [1, 661, 3], [1, 914, 3], [2, 1357, 5]]
    (raw / "ratings.dat").write_text("1::1193::5::978300760\n1::661:3::978302109\n")
    with pytest.raises(DatasetError, match=r"ratings\.dat, line 2: malformed"):
        get_dataset("ml-1m").read_raw(tmp_path / "raw")


@pytest.mark.parametrize("layout", ["combined", "training_set", "kaggle_zip"])
def test_netflix_layouts(tmp_path, layout):
    src = shared_dataset("netflix-prize-excerpt")
    raw = tmp_path / "raw"
    raw.mkdir()
    if layout == "combined":
        shutil.copy(src / "combined_data_1.txt", raw)
    elif layout == "training_set":
        shutil.copytree(src / "training_set", raw / "training_set")
    else:
        with zipfile.ZipFile(raw / "netflix-prize-data.zip", "w") as zf:
            zf.write(src / "combined_data_1.txt", "combined_data_1.txt")
            zf.write(src / "movie_titles.txt", "movie_titles.csv")
    spec = get_dataset("netflix")
    assert spec.raw_present(raw)
    df = spec.read_raw(raw)
    assert len(df) == 63 and (df["item"] == 1).all()
    assert df.iloc[0].tolist() == [1488844, 1, 3] and df.iloc[1].tolist() == [822109, 1, 5]
    pd.testing.assert_frame_equal(
        df.astype("int64"), read_netflix_by_hand([src / "combined_data_1.txt"]), check_dtype=False
    )


def test_netflix_movie_ids_carry_over_blocks_and_files(tmp_path):
    """Several movies per file and several files: each rating gets its block's movie."""
    src = shared_dataset("netflix-prize-excerpt")
    raw = tmp_path / "raw" / "training_set"
    raw.mkdir(parents=True)
    real = (src / "training_set" / "mv_0000001.txt").read_text().splitlines()
    shutil.copy(src / "training_set" / "mv_0000001.txt", raw)
    # movie 2 in its own file: the real rows again, under a different header, no final newline
    (raw / "mv_0000002.txt").write_text("2:\n" + "\n".join(real[1:11]))
    # a combined file: movie 3 then movie 4 in one file (as combined_data_*.txt are)
    combined = tmp_path / "raw2"
    combined.mkdir()
    (combined / "combined_data_1.txt").write_text("\n".join(["3:"] + real[1:6] + ["4:"] + real[6:9]) + "\n")
    spec = get_dataset("netflix")
    df = spec.read_raw(tmp_path / "raw")
    expected = read_netflix_by_hand(sorted(raw.glob("mv_*.txt")))
    pd.testing.assert_frame_equal(df.astype("int64"), expected)
    assert df["item"].value_counts().to_dict() == {1: 63, 2: 10}
    df2 = spec.read_raw(combined)
    assert df2["item"].tolist() == [3] * 5 + [4] * 3
    assert df2["user"].tolist() == [int(r.split(",")[0]) for r in real[1:9]]


def test_netflix_missing_says_how_to_get_the_kaggle_archive(data_dir):
    with pytest.raises(MissingRawData) as exc:
        load_split("netflix", data_dir=data_dir)
    msg = str(exc.value)
    raw = str(data_dir / "netflix" / "raw")
    for needle in ("netflix-prize-data", "kaggle datasets download", raw, "combined_data_1.txt", "training_set"):
        assert needle in msg


@pytest.mark.parametrize(
    "bad,lineno",
    [("1488844,3,2005-09-06\n123\n", 3), ("abc,3,2005-09-06\n", 2), ("12,x,2005-09-06\n", 2), ("5::\n", 2)],
)
def test_netflix_malformed_line_named(tmp_path, bad, lineno):
    (tmp_path / "combined_data_1.txt").write_text("1:\n" + bad + "2:\n7,4,2005-01-01\n")
    with pytest.raises(DatasetError, match=rf"combined_data_1\.txt, line {lineno}: malformed"):
        get_dataset("netflix").read_raw(tmp_path)


def test_netflix_rating_before_any_movie(tmp_path):
    (tmp_path / "combined_data_1.txt").write_text("7,4,2005-01-01\n1:\n8,3,2005-01-01\n")
    with pytest.raises(DatasetError, match=r"line 1: .*before the first 'MovieID:'"):
        get_dataset("netflix").read_raw(tmp_path)


def test_msd_excerpt_plain_and_zipped(tmp_path):
    src = shared_dataset("msd-taste-profile-excerpt")
    spec = get_dataset("msd")
    a = tmp_path / "a"
    a.mkdir()
    shutil.copy(src / "train_triplets.txt", a)
    df = spec.read_raw(a)
    lines = [ln.split("\t") for ln in (src / "train_triplets.txt").read_text().splitlines()]
    assert df["user"].astype(str).tolist() == [u for u, _, _ in lines]
    assert df["item"].astype(str).tolist() == [s for _, s, _ in lines]
    assert df["count"].tolist() == [int(c) for _, _, c in lines]
    b = tmp_path / "b"
    b.mkdir()
    with zipfile.ZipFile(b / "train_triplets.txt.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(src / "train_triplets.txt", "train_triplets.txt")
    assert spec.raw_files(b) == [b / "train_triplets.txt.zip"]
    pd.testing.assert_frame_equal(spec.read_raw(b), df)


def test_msd_protocol_runs_on_triplets(tmp_path):
    """The MSD filters (songs >= 200 users, then users >= 20 songs) on the real format."""
    from benchmark.data.preprocess import make_split

    src = shared_dataset("msd-taste-profile-excerpt")
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(src / "train_triplets.txt", raw)
    df = get_dataset("msd").read_raw(raw)
    # 4 triplets of one user: below every threshold, so the split is refused with the reason
    with pytest.raises(ValueError, match="too few"):
        make_split(df, get_dataset("msd").protocol)


def test_lastfm_full_file(data_dir):
    raw = place_raw(data_dir, "lastfm", "hetrec2011-lastfm-2k")
    df = get_dataset("lastfm").read_raw(raw)
    # the readme's statistics: 92,834 pairs, 1,892 users, 17,632 artists
    assert len(df) == 92_834 and df["user"].nunique() == 1_892 and df["item"].nunique() == 17_632
    assert df.iloc[0].tolist() == [2, 51, 13883]
    s = load_split("lastfm", data_dir=data_dir).stats()
    per_user = df.groupby("user").size()
    assert s["users"] == int((per_user >= 5).sum())
    assert s["interactions"] == int(per_user[per_user >= 5].sum())
    assert s["valid_users"] == s["test_users"] == 200


# --- bad input ------------------------------------------------------------------------------
def _ml100k_with_line(data_dir: Path, lineno: int, text: str) -> Path:
    raw = place_raw(data_dir, "ml-100k", "ml-100k")
    udata = raw / "ml-100k" / "u.data"
    lines = udata.read_text().splitlines(keepends=True)
    lines[lineno - 1] = text
    udata.write_text("".join(lines))
    return udata


@pytest.mark.parametrize(
    "text,why",
    [
        ("196\t242\tthree\t881250949\n", "'rating' = 'three' is not a number"),
        ("196\t242\t3\n", "expected 4 fields"),
        ("196\t242\t3\t881250949\t7\n", "expected 4 fields"),
        ("196,242,3,881250949\n", "expected 4 fields"),
        ("x196\t242\t3\t881250949\n", "'user' = 'x196' is not an integer"),
    ],
)
def test_malformed_line_is_named_and_no_cache_is_written(data_dir, text, why):
    _ml100k_with_line(data_dir, 50_001, text)
    with pytest.raises(DatasetError, match=r"u\.data, line 50001: malformed") as exc:
        load_split("ml-100k", data_dir=data_dir)
    assert why in str(exc.value)
    processed = data_dir / "ml-100k" / "processed"
    assert not processed.exists() or not any(processed.iterdir())


def test_ml20m_line_numbers_count_the_header(data_dir):
    raw = place_raw(data_dir, "ml-20m", "ml-20m-excerpt")
    f = raw / "ml-20m-excerpt" / "ratings.csv"
    lines = f.read_bytes().split(b"\r\n")
    lines[3] = b"1,32,,1112484819"  # the 4th line: empty rating
    f.write_bytes(b"\r\n".join(lines))
    with pytest.raises(DatasetError, match=r"ratings\.csv, line 4: .*'rating' = '' is not a number"):
        get_dataset("ml-20m").read_raw(raw)


def test_missing_raw_file_names_file_source_and_place(data_dir):
    with pytest.raises(MissingRawData) as exc:
        load_split("ml-100k", data_dir=data_dir, download=False)
    msg = str(exc.value)
    assert "u.data" in msg and "https://files.grouplens.org/datasets/movielens/ml-100k.zip" in msg
    assert str(data_dir / "ml-100k" / "raw") in msg
    for name, needle in (("ml-20m", "ratings.csv"), ("ml-1m", "ratings.dat"), ("msd", "train_triplets.txt"), ("lastfm", "user_artists.dat")):
        with pytest.raises(MissingRawData, match=needle):
            load_split(name, data_dir=data_dir)
    assert not any(p.is_file() for p in data_dir.rglob("*"))


def test_unknown_dataset_lists_the_names():
    with pytest.raises(UnknownDataset) as exc:
        get_dataset("ml-30m")
    for name in dataset_names():
        assert name in str(exc.value)
    assert "file:PATH" in str(exc.value)


def test_truncated_archive_in_raw_is_a_clear_error(data_dir):
    raw = data_dir / "ml-20m" / "raw"
    raw.mkdir(parents=True)
    src = shared_dataset("ml-20m-excerpt")
    full = zip_dir(src, raw / "ml-20m.zip", prefix="ml-20m/").read_bytes()
    (raw / "ml-20m.zip").write_bytes(full[: len(full) * 3 // 4])
    # the central directory is gone: the zip is not recognised, so the file is "missing"
    # with the instructions, and extracting it names the damage
    with pytest.raises(MissingRawData, match=r"ml-20m\.zip is not a readable zip archive \(truncated"):
        load_split("ml-20m", data_dir=data_dir)
    from benchmark.data.download import ArchiveError, extract_zip

    with pytest.raises(ArchiveError, match="truncated or damaged"):
        extract_zip(raw / "ml-20m.zip", raw)


# --- the cache --------------------------------------------------------------------------
def entries(data_dir: Path, name: str) -> list[str]:
    d = data_dir / name.replace(":", "_").replace("/", "_") / "processed"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_cache_reused_and_a_changed_raw_file_gives_a_new_entry(data_dir):
    raw = place_raw(data_dir, "ml-100k", "ml-100k")
    s1 = load_split("ml-100k", data_dir=data_dir)
    (key1,) = entries(data_dir, "ml-100k")
    assert load_split("ml-100k", data_dir=data_dir).split_hash == s1.split_hash
    assert entries(data_dir, "ml-100k") == [key1]
    # a new user with 5 positive ratings appended to u.data
    with open(raw / "ml-100k" / "u.data", "a") as f:
        for item in (1, 2, 3, 4, 5):
            f.write(f"9999\t{item}\t5\t881250949\n")
    s2 = load_split("ml-100k", data_dir=data_dir)
    assert len(entries(data_dir, "ml-100k")) == 2 and key1 in entries(data_dir, "ml-100k")
    assert s2.stats()["users"] == s1.stats()["users"] + 1
    # a changed parameter: a third entry; the old ones stay valid
    load_split("ml-100k", data_dir=data_dir, protocol_overrides={"n_heldout": 50})
    assert len(entries(data_dir, "ml-100k")) == 3


def test_failed_save_leaves_no_half_written_entry(data_dir, monkeypatch):
    import benchmark.protocol as protocol

    place_raw(data_dir, "ml-100k", "ml-100k")

    def broken(path, arrays):
        Path(path).write_bytes(b"PK partial")
        raise OSError("disk full")

    monkeypatch.setattr(protocol, "_savez_deterministic", broken)
    # the split is made: it is used without a cache (nothing computed is lost), with a warning
    with pytest.warns(UserWarning, match=r"could not cache the split.*disk full"):
        assert load_split("ml-100k", data_dir=data_dir).stats()["users"] == 938
    processed = data_dir / "ml-100k" / "processed"
    assert not processed.exists() or list(processed.iterdir()) == []
    monkeypatch.undo()
    monkeypatch.setenv("BENCHMARK_OFFLINE", "1")
    assert load_split("ml-100k", data_dir=data_dir).stats()["users"] == 938


# --- file:PATH --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def udata() -> pd.DataFrame:
    path = shared_dataset("ml-100k") / "u.data"
    return pd.read_csv(path, sep="\t", header=None, names=["user", "item", "rating", "timestamp"])


ML100K_AS_FILE = {"min_rating": 3.5, "n_heldout": 100}


@pytest.mark.parametrize("fmt", ["csv_header", "tsv", "dat", "parquet", "csv_gz", "semicolon"])
def test_file_dataset_equals_the_builtin_split(tmp_path, udata, ml100k_split, fmt):
    """The same ratings as a user's file give the very split of the built-in ml-100k."""
    if fmt == "csv_header":
        path = tmp_path / "ratings.csv"
        udata.rename(columns={"user": "userId", "item": "movieId"}).to_csv(path, index=False)
    elif fmt == "tsv":
        path = tmp_path / "ratings.tsv"
        udata.to_csv(path, sep="\t", index=False, header=False)
    elif fmt == "dat":
        path = tmp_path / "ratings.dat"
        path.write_text("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in udata.itertuples(index=False)))
    elif fmt == "parquet":
        path = tmp_path / "ratings.parquet"
        udata.to_parquet(path)
    elif fmt == "csv_gz":
        path = tmp_path / "ratings.csv.gz"
        udata.to_csv(path, index=False, header=False)
    else:
        path = tmp_path / "ratings.txt"
        udata.to_csv(path, sep=";", index=False)
    split = load_split(f"file:{path}", data_dir=tmp_path / "d", protocol_overrides=ML100K_AS_FILE)
    assert split.split_hash == ml100k_split.split_hash
    assert split.users["test"].tolist() == ml100k_split.users["test"].tolist()


def test_file_dataset_named_columns_and_string_ids(tmp_path, udata):
    path = tmp_path / "clicks.csv"
    df = pd.DataFrame(
        {
            "ts": udata["timestamp"],
            "stars": udata["rating"],
            "product": "p" + udata["item"].astype(str),
            "visitor": "v" + udata["user"].astype(str),
        }
    )
    df.to_csv(path, index=False)
    opts = {"user_col": "visitor", "item_col": "product", "rating_col": "stars"}
    spec = get_dataset(f"file:{path}", **opts)
    got = spec.read_raw(Path("unused"))
    assert got["user"].astype(str).tolist()[:2] == ["v196", "v186"] and got["rating"].tolist()[:2] == [3, 3]
    split = load_split(f"file:{path}", data_dir=tmp_path / "d", file_options=opts,
                       protocol_overrides={"min_rating": 3.5})
    s = split.stats()
    assert s["users"] == 938 and s["interactions"] == 55_361
    assert s["valid_users"] == s["test_users"] == 938 // 10  # default: 10% each
    with pytest.raises(DatasetError, match="column 'nope' not found.*'visitor'"):
        get_dataset(f"file:{path}", user_col="nope").read_raw(Path("unused"))


def test_file_dataset_cache_key_follows_the_file(tmp_path, udata):
    path = tmp_path / "ratings.csv"
    udata.to_csv(path, index=False)
    d = tmp_path / "d"
    load_split(f"file:{path}", data_dir=d, protocol_overrides=ML100K_AS_FILE)
    load_split(f"file:{path}", data_dir=d, protocol_overrides=ML100K_AS_FILE)
    assert len(entries(d, f"file:{path}")) == 1
    udata.iloc[:-10].to_csv(path, index=False)  # changed content (size and mtime)
    load_split(f"file:{path}", data_dir=d, protocol_overrides=ML100K_AS_FILE)
    assert len(entries(d, f"file:{path}")) == 2


def test_file_dataset_errors(tmp_path):
    with pytest.raises(MissingRawData, match="no such file.*CSV, TSV or Parquet"):
        load_split(f"file:{tmp_path / 'nope.csv'}", data_dir=tmp_path / "d")
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,rating\n1,10,5\n1,11,4\n2,10,x\n")
    with pytest.raises(DatasetError, match=r"bad\.csv, line 4: .*'rating' = 'x' is not a number"):
        load_split(f"file:{bad}", data_dir=tmp_path / "d")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(DatasetError, match="not a readable Parquet file"):
        load_split(f"file:{junk}", data_dir=tmp_path / "d")
    assert not list((tmp_path / "d").rglob("*.npz"))


def test_separator_sniffing():
    from benchmark.data.files import sniff_separator

    assert sniff_separator(["1\t2\t3", "4\t5\t6"]) == "\t"
    assert sniff_separator(["user,item", "1,2", "3,4"], ".csv") == ","
    assert sniff_separator(["1;2;3.5", "1;3;4"]) == ";"
    assert sniff_separator(["1::2::5::9", "1::3::4::9"]) == "::"
    assert sniff_separator(["1 2", "3 4"]) == " "
    with pytest.raises(DatasetError, match="cannot tell the separator"):
        sniff_separator(["abc", "def"])


def test_zip_member_source_reads_like_a_file(tmp_path):
    from benchmark.data.readers import Source, read_delimited

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x/t.tsv", "1\t2\n3\t4\n")
    (tmp_path / "a.zip").write_bytes(buf.getvalue())
    df = read_delimited(Source(tmp_path / "a.zip", "x/t.tsv"), [("u", "int32"), ("i", "int32")], sep="\t")
    assert df.to_numpy().tolist() == [[1, 2], [3, 4]]


def test_too_few_users_is_a_dataset_error_without_cache(tmp_path):
    path = tmp_path / "small.csv"
    path.write_text("user,item\n1,2\n1,3\n2,2\n")
    with pytest.raises(DatasetError, match=r"0 users remain after the filters.*users with >= 5 items: 0 rows.*removed every row"):
        load_split(f"file:{path}", data_dir=tmp_path / "d")
    assert not list((tmp_path / "d").rglob("*.npz"))
