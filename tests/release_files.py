"""Tiny invented files in each release's exact byte format (separators, headers, encodings,
line endings), so loader tests run without the licensed datasets."""

from __future__ import annotations

from pathlib import Path

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)


def _write(path: Path, lines: list[str], encoding: str = "ascii", newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + newline for line in lines).encode(encoding))
    return path


def _flags(*genres: str) -> str:
    return "|".join("1" if g in genres else "0" for g in ML100K_GENRES)


def write_ml100k(folder: Path) -> Path:
    """4 ratings by 3 users of 3 items; a 4th catalog item nobody rated; Latin-1 title."""
    _write(folder / "u.data", ["1\t10\t5\t881250949", "1\t20\t3\t881250950",
                               "2\t10\t4\t881250951", "3\t30\t1\t881250952"])
    _write(folder / "u.item", [
        f"10|Alpha Movie (1995)|01-Jan-1995||http://example.org/a|{_flags('Action', 'Comedy')}",
        f"20|Misérables, Les (1995)|01-Jan-1995||http://example.org/m|{_flags('Drama')}",
        f"30|Gamma (1971)|4-Feb-1971||http://example.org/g|{_flags('unknown')}",
        f"40|unknown||||{_flags('unknown')}",
    ], encoding="latin-1")
    _write(folder / "u.user", ["1|24|M|technician|85711", "2|53|F|other|94043",
                               "3|17|M|student|T8H1N"])
    _write(folder / "u.genre", [f"{g}|{i}" for i, g in enumerate(ML100K_GENRES)] + [""])
    return folder


def write_ml1m(folder: Path) -> Path:
    """``::``-separated, Latin-1, a title containing ':' and one rating by each of 2 users."""
    _write(folder / "ratings.dat", ["1::1193::5::978300760", "1::661::3::978302109",
                                    "2::1193::4::978298413"])
    _write(folder / "movies.dat", ["661::Voyage: The Return (1996)::Animation|Children's",
                                   "1193::Café Story (1975)::Drama",
                                   "2000::Never Rated (1990)::Comedy"], encoding="latin-1")
    _write(folder / "users.dat", ["1::F::1::10::48067", "2::M::56::16::70072"])
    return folder


def write_ml10m(folder: Path) -> Path:
    """Half-star ratings, UTF-8 titles, tags with repeated mixed-case values."""
    _write(folder / "ratings.dat", ["1::122::5::838985046", "1::185::4.5::838983525",
                                    "2::122::0.5::838983392"])
    _write(folder / "movies.dat", ["122::Boomerang (1992)::Comedy|Romance",
                                   "185::Net, The (1995)::Action|Crime|Thriller",
                                   "300::Quiz Show (1994)::(no genres listed)"])
    _write(folder / "tags.dat", ["15::122::Dark::1215184630", "20::122::dark ::1188263867",
                                 "20::185::Hacker::1188263880"])
    return folder


def write_ml_csv(folder: Path) -> Path:
    """ml-latest(-small) / ml-2xm: CRLF CSV with headers, quoted commas, no-genre marker."""
    _write(folder / "ratings.csv", ["userId,movieId,rating,timestamp", "1,1,4.0,964982703",
                                    "1,3,4.5,964981247", "5,1,0.5,1445714994"], newline="\r\n")
    _write(folder / "movies.csv", [
        "movieId,title,genres",
        "1,Toy Film (1995),Adventure|Animation",
        '3,"Good, the Bad and the Test, The (1966)",Western',
        "7,Untitled Project,(no genres listed)",
        '9,"Series, A (2006–2007)",Drama',
    ], encoding="utf-8", newline="\r\n")
    _write(folder / "tags.csv", ["userId,movieId,tag,timestamp", "2,1,Funny,1445714994",
                                 "3,1,funny,1445714996", '2,3,"slow, long",1445715000'],
           newline="\r\n")
    return folder


def write_lastfm2k(folder: Path) -> Path:
    """HetRec 2011 layout: headers, CRLF, Latin-1 tags, a tag on an artist not in the catalog."""
    _write(folder / "user_artists.dat", ["userID\tartistID\tweight", "2\t51\t13883",
                                         "2\t52\t11690", "3\t51\t5"], newline="\r\n")
    _write(folder / "artists.dat", ["id\tname\turl\tpictureURL",
                                    "51\tDuran Test\thttp://example.org/51\thttp://x.org/51.jpg",
                                    "52\tMorçheeba\thttp://example.org/52\t",
                                    "53\tNobody Plays\thttp://example.org/53\t"], encoding="utf-8")
    _write(folder / "tags.dat", ["tagID\ttagValue", "1\tmetal", "2\ttrip-hop", "3\tchillé"],
           encoding="latin-1", newline="\r\n")
    _write(folder / "user_taggedartists.dat", [
        "userID\tartistID\ttagID\tday\tmonth\tyear", "2\t52\t2\t1\t4\t2009",
        "3\t52\t2\t1\t5\t2009", "3\t52\t3\t1\t5\t2009", "2\t51\t1\t1\t4\t2009",
        "2\t99\t1\t1\t4\t2009"], newline="\r\n")
    return folder


EVENTS_1K = "userid-timestamp-artid-artname-traid-traname.tsv"


def write_lastfm1k(folder: Path) -> Path:
    """Listening events (no header); one artist without an MBID is identified by name."""
    mbid_a = "f1b1cf71-bd35-4e99-8624-24a6e15f133a"
    _write(folder / EVENTS_1K, [
        f"user_000001\t2009-05-04T23:08:57Z\t{mbid_a}\tDeep Test\t\tTrack \"One\"",
        f"user_000001\t2009-05-04T13:54:10Z\t{mbid_a}\tDeep Test\t\tTrack Two",
        "user_000001\t2009-05-03T10:00:00Z\t\tNo Id Band\t\tSong",
        f"user_000002\t2009-01-01T00:00:00Z\t{mbid_a}\tDeep Test\t\tTrack Two",
    ], encoding="utf-8")
    _write(folder / "userid-profile.tsv", ["#id\tgender\tage\tcountry\tregistered",
                                           "user_000001\tm\t\tJapan\tAug 13, 2006",
                                           "user_000002\tf\t23\tPeru\t"])
    return folder


PLAYS_360K = "usersha1-artmbid-artname-plays.tsv"


def write_lastfm360k(folder: Path) -> Path:
    """user sha1, artist MBID (may be empty), artist name, plays; profiles without header."""
    u1, u2 = "00000c289a1829a808ac09c00daf10bc3c4e223b", "00001411dc427966b17297bf4d69e7e193135d89"
    _write(folder / PLAYS_360K, [
        f"{u1}\t3bd73256-3905-4f3a-97e2-8b341527f805\tbetty test\t2137",
        f"{u1}\t\tunknown garage band\t12",
        f"{u2}\t3bd73256-3905-4f3a-97e2-8b341527f805\tbetty test\t40",
    ], encoding="utf-8")
    _write(folder / "usersha1-profile.tsv", [f"{u1}\tf\t22\tGermany\tFeb 1, 2007",
                                             f"{u2}\t\t\tCanada\tDec 4, 2007"])
    return folder
