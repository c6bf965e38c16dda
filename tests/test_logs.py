"""Reading a practitioner's own logs: formats, ids, values, and a report of every drop."""

from __future__ import annotations

import pandas as pd
import pytest

from tailrec.logs import (
    Columns,
    detect_encoding,
    detect_separator,
    parse_times,
    read_attribute_table,
    read_interactions,
)


def write(path, text: str, encoding: str = "utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("sep", ["\t", ",", ";", "|"])
def test_separator_is_detected(tmp_path, sep):
    rows = ["user_id,item_id,rating", "u1,i1,5", "u2,i1,3", "u2,i2,4"]
    path = write(tmp_path / "log.txt", "\n".join(r.replace(",", sep) for r in rows) + "\n")
    frame, _, reading = read_interactions(path)
    assert reading["sep"] == sep
    assert frame["user_id"].tolist() == ["u1", "u2", "u2"]
    assert frame["rating"].tolist() == [5.0, 3.0, 4.0]


def test_a_quoted_separator_inside_a_field_does_not_fool_detection():
    text = 'item_id,title\n1,"Princess Bride, The"\n2,"Heat"\n3,"Seven, a film"\n'
    assert detect_separator(text, "items.csv") == ","


def test_undetectable_separator_asks_for_sep(tmp_path):
    path = write(tmp_path / "log.txt", "user item\nu1 i1\nu2 i2\n")
    with pytest.raises(ValueError, match="--sep"):
        read_interactions(path)


def test_latin1_file_is_read_and_reported(tmp_path):
    text = "user_id,item_id\nJosé,Café\nZoë,Crème\n"
    path = write(tmp_path / "latin.csv", text, encoding="latin-1")
    frame, report, reading = read_interactions(path)
    assert reading["encoding"] == "cp1252"
    assert frame["user_id"].tolist() == ["José", "Zoë"]
    assert "cp1252" in report.text()


def test_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path):
    path = write(tmp_path / "bom.csv", "user_id,item_id\nu1,i1\n", encoding="utf-8-sig")
    frame, _, reading = read_interactions(path)
    assert reading["encoding"] == "utf-8-sig"
    assert frame["user_id"].tolist() == ["u1"]


def test_utf16_with_bom_is_detected():
    assert detect_encoding("user_id,item_id\n".encode("utf-16")) == "utf-16"


def test_wrong_encoding_given_names_the_flag(tmp_path):
    path = write(tmp_path / "latin.csv", "user_id,item_id\nJosé,Café\n", encoding="latin-1")
    with pytest.raises(ValueError, match="--encoding"):
        read_interactions(path, encoding="utf-8")


def test_headerless_file_with_numbered_columns(tmp_path):
    path = write(tmp_path / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    frame, _, reading = read_interactions(path, Columns("1", "2", "3", "4"), header=False)
    assert reading["header"] is False
    assert frame["user_id"].tolist() == ["196", "186"]
    assert frame["timestamp"].tolist() == [881250949.0, 891717742.0]


def test_missing_column_names_the_columns_found_and_the_flag(tmp_path):
    path = write(tmp_path / "log.csv", "who,what\nc1,s1\n")
    with pytest.raises(ValueError, match=r"--user-col.*--item-col") as error:
        read_interactions(path)
    assert "'who'" in str(error.value)
    with pytest.raises(ValueError, match=r"no user column 'user'.*--user-col"):
        read_interactions(path, Columns(user="user", item="what"))


def test_data_in_the_header_row_suggests_no_header(tmp_path):
    path = write(tmp_path / "u.data", "196\t242\t3\n186\t302\t3\n")
    with pytest.raises(ValueError, match="--no-header"):
        read_interactions(path, Columns(user="user_id", item="item_id"))


def test_empty_and_header_only_files(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        read_interactions(write(tmp_path / "empty.csv", "\n\n"))
    frame, report, _ = read_interactions(write(tmp_path / "head.csv", "user_id,item_id\n"))
    assert len(frame) == 0 and "kept 0 interaction" in report.text()


def test_ids_stay_strings_exactly(tmp_path):
    path = write(tmp_path / "log.csv", "user_id,item_id\n007,01\n7,1\n 7 ,1\nNA,null\n")
    frame, report, _ = read_interactions(path)
    # "007" and "7" are different users; " 7 " is "7" again (reported); "NA" is kept, reported.
    assert frame["user_id"].tolist() == ["007", "7", "NA"]
    assert frame["item_id"].tolist() == ["01", "1", "null"]
    text = report.text()
    assert "1 user id(s) had spaces around them, removed (1 row(s))" in text
    assert "missing value" in text
    assert "later row has the same user and item" in text


def test_rows_without_ids_are_dropped_and_bad_ratings_kept_empty(tmp_path):
    text = "user_id,item_id,rating\nu1,i1,5\n,i2,4\nu2,,4\nu3,i3,five\nu4,i4,inf\nu5,i5"
    frame, report, _ = read_interactions(write(tmp_path / "log.csv", text))
    # The model needs no rating: those interactions stay, rating empty (the last line is cut).
    assert frame["user_id"].tolist() == ["u1", "u3", "u4", "u5"]
    assert frame["rating"].isna().tolist() == [False, True, True, True]
    assert report.dropped == {"no user id or no item id": 2}
    assert "3 rating(s) in 'rating' are missing or not numbers" in report.text()


def test_decimal_commas_in_ratings_of_a_semicolon_file(tmp_path):
    text = "user_id;item_id;rating\nu1;i1;4,5\nu2;i1;3\n"
    frame, _, _ = read_interactions(write(tmp_path / "euro.csv", text))
    assert frame["rating"].tolist() == [4.5, 3.0]


def test_a_mostly_utf8_file_with_one_latin1_line_is_refused_naming_the_line(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes("user_id,item_id\nJosé,café\n".encode() + b"Zo\xeb,x\n")
    with pytest.raises(ValueError, match="line 3 is not UTF-8"):
        read_interactions(path)


def test_an_encoding_that_would_garble_utf8_text_is_refused(tmp_path):
    path = write(tmp_path / "utf8.csv", "user_id,item_id\nJosé,café\n")
    with pytest.raises(ValueError, match="leave --encoding out"):
        read_interactions(path, encoding="latin-1")


def test_utf16_without_a_byte_order_mark_is_named():
    with pytest.raises(ValueError, match="utf-16-le"):
        detect_encoding("user_id,item_id\nu1,i1\n".encode("utf-16-le"))


def test_a_separator_of_several_characters(tmp_path):
    path = write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
    frame, _, _ = read_interactions(path, Columns("1", "2", "3", "4"), sep="::", header=False)
    assert frame["item_id"].tolist() == ["1193", "661"]


def test_numbered_columns_without_no_header_are_refused(tmp_path):
    path = write(tmp_path / "log.csv", "user_id,item_id\nu1,i1\n")
    with pytest.raises(ValueError, match="--no-header"):
        read_interactions(path, Columns("1", "2"))
    with pytest.raises(ValueError, match="numbered from 1"):
        read_interactions(path, Columns("0", "1"), header=False)


def test_one_column_for_two_roles_is_refused(tmp_path):
    path = write(tmp_path / "log.csv", "user_id,item_id\nu1,i1\n")
    with pytest.raises(ValueError, match="two roles"):
        read_interactions(path, Columns("user_id", "user_id"))


@pytest.mark.parametrize("header", ["userId,movieId", "User ID,Item ID", "USERID,PRODUCT_ID"])
def test_usual_column_names_are_found_in_any_case_or_spelling(tmp_path, header):
    frame, _, _ = read_interactions(write(tmp_path / "log.csv", f"{header}\nu1,i1\n"))
    assert frame[["user_id", "item_id"]].values.tolist() == [["u1", "i1"]]


def test_only_the_missing_id_column_is_named(tmp_path):
    with pytest.raises(ValueError, match="the item id column") as error:
        read_interactions(write(tmp_path / "log.csv", "user_id,what\nu1,i1\n"))
    assert "user id column" not in str(error.value)


def test_times_in_a_wrong_unit_are_reported(tmp_path):
    text = "user_id,item_id,timestamp\nu1,i1,20231114\nu2,i2,2023-11-14\n"
    frame, report, _ = read_interactions(write(tmp_path / "log.csv", text))
    assert len(frame) == 2  # kept: maybe right, but flagged
    assert "1 time(s) fall before 1971 or in the future" in report.text()


def test_parquet_is_recognised_by_its_content_whatever_the_name(tmp_path):
    path = tmp_path / "export.bin"
    pd.DataFrame({"user_id": ["u1"], "item_id": ["i1"]}).to_parquet(path)
    frame, _, reading = read_interactions(path)
    assert frame["user_id"].tolist() == ["u1"] and reading["sep"] is None


def test_extra_columns_are_ignored_and_named(tmp_path):
    path = write(tmp_path / "log.csv", "user_id,item_id,price,store\nu1,i1,9.99,north\n")
    _, report, _ = read_interactions(path)
    assert "columns ignored: 'price', 'store'" in report.text()


def test_a_row_with_too_many_fields_names_the_line(tmp_path):
    path = write(tmp_path / "log.csv", "user_id,item_id\nu1,i1\nu2,i2,oops\nu3,i3\n")
    with pytest.raises(ValueError, match="line 3"):
        read_interactions(path, sep=",")


def test_mixed_time_formats_agree():
    values = pd.Series(["881250949", "881250949000", "1997-12-04T15:55:49Z", "yesterday", ""])
    seconds, kinds = parse_times(values)
    assert seconds[0] == 881250949 and seconds[1] == 881250949
    assert seconds[2] == pd.Timestamp("1997-12-04T15:55:49Z").timestamp()
    assert seconds[3:].isna().all()
    assert kinds == {"epoch seconds": 1, "epoch milliseconds": 1, "ISO text": 1}


def test_duplicate_pairs_keep_the_latest_row(tmp_path):
    text = "u,i,r,t\na,x,1,2020-01-02\na,x,5,2020-01-01\nb,y,2,100\nb,y,3,100\n"
    frame, report, _ = read_interactions(
        write(tmp_path / "log.csv", text), Columns("u", "i", "r", "t")
    )
    # By time, then by position: a re-rating replaces the older one.
    assert dict(zip(frame["user_id"], frame["rating"], strict=True)) == {"a": 1.0, "b": 3.0}
    assert report.dropped["a later row has the same user and item (the latest is kept)"] == 2


def test_unparseable_times_are_dropped(tmp_path):  # the split needs every time
    text = "user_id,item_id,timestamp\nu1,i1,2020-01-01\nu2,i2,not a date\n"
    frame, report, _ = read_interactions(write(tmp_path / "log.csv", text))
    assert frame["user_id"].tolist() == ["u1"]
    assert sum(report.dropped.values()) == 1


def test_parquet_keeps_string_ids_and_prints_whole_float_ids_plainly(tmp_path):
    path = tmp_path / "log.parquet"
    pd.DataFrame({"user_id": ["007", "7"], "item_id": [1.0, 2.0]}).to_parquet(path)
    frame, report, reading = read_interactions(path)
    assert frame["user_id"].tolist() == ["007", "7"]
    assert frame["item_id"].tolist() == ["1", "2"]
    assert reading["sep"] is None and "decimal numbers" in report.text()


def test_a_damaged_parquet_file_is_refused_clearly(tmp_path):
    path = write(tmp_path / "log.parquet", "not parquet at all")
    with pytest.raises(ValueError, match="could not be read as Parquet"):
        read_interactions(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_interactions(tmp_path / "nope.csv")


def test_attribute_table_joins_columns_and_reports_duplicates(tmp_path):
    text = "sku;name;about;price\nA1;Heat;A heist film;9\nA2;;;3\nA1;Heat again;;1\n"
    texts, report = read_attribute_table(
        write(tmp_path / "items.csv", text), "sku", ["name", "about"], "item"
    )
    headerless, _ = read_attribute_table(
        write(tmp_path / "u.item", "1|Heat|1995\n2|Fargo|1996\n"), "1", ["2"], "item", header=False
    )
    assert headerless.to_dict() == {"1": "Heat", "2": "Fargo"}
    assert texts.to_dict() == {"A1": "name: Heat. about: A heist film", "A2": ""}
    assert "the item id occurs earlier" in report.text()
    with pytest.raises(ValueError, match="--item-text-cols"):
        read_attribute_table(tmp_path / "items.csv", "sku", ["title"], "item")


def test_ratings_outside_a_given_scale_are_reported_and_left_empty(tmp_path):
    text = "user_id,item_id,rating\nu1,i1,5\nu2,i1,7\nu3,i1,0\n"
    frame, report, _ = read_interactions(write(tmp_path / "log.csv", text), rating_range=(1, 5))
    assert frame["rating"].tolist()[0] == 5.0 and frame["rating"].isna().sum() == 2
    assert "2 rating(s) lie outside 1 to 5" in report.text()
